"""Device, precision, seeding and determinism for one case (all driven by params.yaml `train:`)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random

import numpy as np
import torch

from thtl_bench.errors import UserError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(train: dict) -> torch.device:
    want = str(train.get("device", "auto"))
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={want} but CUDA is not available; use -S train.device=cpu")
    return torch.device(want)


def accelerated(device: torch.device) -> bool:
    """Whether the accelerator execution settings (AMP, torch.compile) apply: on CUDA only. CPU
    runs stay fp32 eager (CPU autocast is slower on most x86 cores). Tests patch this to drive
    those code paths on CPU."""
    return device.type == "cuda"


def amp_dtype(train: dict, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for plain fp32 (always None off the accelerator)."""
    name = str(train.get("precision", "fp32"))
    if name not in PRECISIONS:
        raise UserError(f"train.precision={name!r}; choose one of {sorted(PRECISIONS)}")
    return PRECISIONS[name] if accelerated(device) else None


def channels_last(train: dict, device: torch.device) -> bool:
    """train.channels_last on any device: on CPU too it is a speed setting (measured 1.4x per
    efficientnet_lite0 training step at 64 px, batch 16, 2 threads, AVX2); it changes the last
    bits of the numbers, so it is part of a case's execution identity."""
    return bool(train.get("channels_last"))


def compiled(train: dict, device: torch.device) -> bool:
    return bool(train.get("compile")) and accelerated(device)


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def subseed(seed: int, purpose: str) -> int:
    """An independent seed per purpose (init, data order, augmentation), so adding a consumer of
    randomness does not shift the others."""
    return int(hashlib.sha256(f"{seed}/{purpose}".encode()).hexdigest()[:15], 16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def threads(train: dict) -> int:
    """The intra-op thread count a case runs with: train.num_threads, else torch's default here."""
    n = int(train.get("num_threads") or 0)
    return n if n > 0 else torch.get_num_threads()


def configure(train: dict, device: torch.device) -> None:
    """Threads and determinism. Deterministic mode is strict on CPU; on CUDA some kernels (e.g.
    adaptive pooling backward) have no deterministic version, so there it warns instead of failing,
    and cuDNN autotuning is off."""
    if int(train.get("num_threads") or 0) > 0:
        torch.set_num_threads(int(train["num_threads"]))
    det = bool(train.get("deterministic"))
    if device.type == "cuda":
        if det:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not det
        torch.backends.cudnn.deterministic = det
    torch.use_deterministic_algorithms(det, warn_only=det and device.type == "cuda")


def rng_state(gens: dict[str, torch.Generator]) -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "gens": {k: g.get_state() for k, g in gens.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, gens: dict[str, torch.Generator]) -> None:
    """Restore `rng_state`'s output, also as read back from a checkpoint (where numpy's key array
    is a tensor and Python's tuples may come back as lists)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    for k, g in gens.items():
        g.set_state(state["gens"][k])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def synchronize(device: torch.device) -> None:
    # Timings on CUDA must wait for queued kernels.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
