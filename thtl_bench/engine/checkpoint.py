"""Checkpoint files: safe atomic saves and loads, weight copies, and a digest of weights.

Every checkpoint (best.pt, last.pt) holds tensors and plain Python values only, and is read with
`torch.load(weights_only=True)`: a file dropped into a shared checkpoints folder cannot run code.
numpy arrays (RNG states, probabilities) are stored as tensors (`plain`) and turned back where
numpy is needed. Writes go through thtl_bench.io (temporary file, fsync, rename, 0644), so a
power loss keeps the previous file; a damaged or foreign file raises CheckpointError naming it,
and the engine re-runs that case rather than stopping the grid.

Strict loading is the model's own (`StagedModel.load_strict`): missing, unexpected or mis-shaped
keys are an error, except the replaced head, whose keys are returned and recorded.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thtl_bench.errors import UserError
from thtl_bench.io import atomic_write


class CheckpointError(UserError):
    """A checkpoint file that cannot be read safely (truncated, foreign, or holding code)."""


def plain(obj: Any) -> Any:
    """`obj` with numpy arrays as tensors and numpy scalars as Python numbers, recursively: what
    torch's weights_only loader accepts."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(plain(v) for v in obj)
    return obj


def save(obj, path: str | os.PathLike) -> None:
    """torch.save of `plain(obj)`, atomically and fsynced."""
    data = plain(obj)
    atomic_write(path, lambda fh: torch.save(data, fh))


def load(path: str | os.PathLike) -> dict:
    """A checkpoint written by `save`, read with weights_only=True (no code runs); CheckpointError
    names the file when it is truncated, not a checkpoint, or holds anything but tensors and
    plain values."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: not a readable thtl-bench checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "it is truncated, written by something else, or holds objects other than tensors and plain "
            "values. Delete it: the case is then trained again.") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: a checkpoint is a dict, found {type(obj).__name__}; delete it")
    return obj


def try_load(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """(checkpoint, None), (None, why it cannot be used) or (None, None) when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return None, None
    try:
        return load(path), None
    except CheckpointError as exc:
        return None, str(exc)


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
