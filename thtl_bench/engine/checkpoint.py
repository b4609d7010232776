"""Checkpoint files: atomic saves, weight copies, and a digest of weights for provenance checks.

Strict loading is the model's own (`StagedModel.load_strict`): missing, unexpected or mis-shaped
keys are an error, except the replaced head, whose keys are returned and recorded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch


def save(obj, path: str | os.PathLike) -> None:
    """torch.save via a temporary file + os.replace: a kill mid-write keeps the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike) -> dict:
    # Our own files: they hold RNG states (numpy/python objects), so full unpickling is needed.
    return torch.load(path, map_location="cpu", weights_only=False)


def state_copy(module: torch.nn.Module) -> dict:
    """A deep copy of the weights (on CPU): the 'best' state must not alias the live model."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def state_digest(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().to("cpu").contiguous().reshape(-1)  # 0-d tensors cannot be viewed as bytes
        h.update(k.encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
