"""Device, precision, seeding and determinism for one case (all driven by params.yaml `train:`)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import shutil
import subprocess

import numpy as np
import torch

from thtl_bench.errors import UserError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def device_type(train: dict) -> str:
    """The device type a train section asks for, without touching CUDA when it names one: "cuda"
    for cuda / cuda:N, "cpu" for cpu, and for auto whichever is here. The case identity is
    computed from this, so a GPU case has the same id on a login node as on the GPU node."""
    want = str(train.get("device", "auto"))
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if want.startswith("cuda") else want


def resolve_device(train: dict) -> torch.device:
    """The device a case runs on. `auto` takes CUDA when it comes up, else the CPU; `cuda` (the
    paper profile) never falls back: a GPU run that silently trains on the CPU would take days
    and its records would describe another run. The error says why CUDA did not come up."""
    want = str(train.get("device", "auto"))
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"train.device={want}, but CUDA did not come up on this machine.\n"
                            + "\n".join(f"  - {line}" for line in cuda_diagnosis())
                            + "\nRun where a GPU is visible, or choose the CPU on purpose: -S train.device=cpu")
        index = torch.device(want).index
        if index is not None and index >= torch.cuda.device_count():
            raise UserError(f"train.device={want}, but only {torch.cuda.device_count()} GPU(s) are visible "
                            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); use cuda or cuda:0")
    return torch.device(want)


def _version(text: str | None) -> tuple[int, ...] | None:
    m = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def nvidia_smi() -> dict:
    """What the driver says (`nvidia-smi`): {"found", "driver", "cuda" (the newest CUDA the driver
    supports), "gpus", "error"}; found False where the tool is absent (no driver, or a container
    started without --gpus)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"found": False, "driver": None, "cuda": None, "gpus": [], "error": "nvidia-smi not found"}
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=30)
        gpus = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"found": True, "driver": None, "cuda": None, "gpus": [], "error": f"{type(exc).__name__}: {exc}"}
    text = out.stdout + out.stderr
    driver = re.search(r"Driver Version:\s*([\d.]+)", text)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", text)
    return {"found": True, "driver": driver and driver.group(1), "cuda": cuda and cuda.group(1),
            "gpus": [g.strip() for g in gpus.splitlines() if g.startswith("GPU ")],
            "error": None if out.returncode == 0 else (text.strip().splitlines() or ["?"])[-1][:300]}


def cuda_diagnosis() -> list[str]:
    """Why CUDA is not available here, in the terms that fix it: this torch's CUDA build against the
    driver's supported CUDA version (nvidia-smi), the device mask, and torch's own reason."""
    lines = []
    wheel = torch.version.cuda
    if wheel is None:
        lines.append(f"this torch ({torch.__version__}) is a CPU-only build: install the CUDA build "
                     "(requirements/torch.txt on Linux, or the project's CUDA image)")
    smi = nvidia_smi()
    if not smi["found"]:
        lines.append("nvidia-smi not found: no NVIDIA driver here, or a container started without "
                     "`--gpus all` (NVIDIA Container Toolkit)")
    elif smi["error"]:
        lines.append(f"nvidia-smi fails: {smi['error']}")
    else:
        lines.append(f"driver {smi['driver']} supports CUDA up to {smi['cuda']}; this torch is built for "
                     f"CUDA {wheel}; GPUs: {'; '.join(smi['gpus']) or 'none listed'}")
        have, need = _version(smi["cuda"]), _version(wheel)
        if have and need and have[0] < need[0]:
            lines.append(f"the driver is too old for this torch build: update the driver to one that supports "
                         f"CUDA {wheel} (or install a torch build for CUDA {smi['cuda']} or older)")
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None and mask.strip() in ("", "-1", "none", "NoDevFiles"):
        lines.append(f"CUDA_VISIBLE_DEVICES={mask!r} hides every GPU")
    if wheel is not None:
        try:
            torch.cuda.init()
        except Exception as exc:  # noqa: BLE001 - torch's own reason, whatever its type
            lines.append(f"torch says: {str(exc).strip().splitlines()[0][:300]}")
    return lines


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


def compile_setting(train: dict, device: torch.device) -> tuple[bool, str | None]:
    """(whether torch.compile is used, why not when it is not): on CUDA only, when asked for."""
    if not train.get("compile"):
        return False, "train.compile is false"
    if not accelerated(device):
        return False, f"torch.compile is used on CUDA only; this run is on {device.type}"
    return True, None


def compiled(train: dict, device: torch.device) -> bool:
    return compile_setting(train, device)[0]


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


def determinism(train: dict, device: torch.device) -> dict:
    """What a run can claim about repeating itself, stated in the record. Deterministic mode
    (the CPU default) is strict: torch refuses a kernel without a deterministic implementation
    rather than warning, so a record that says bitwise deterministic is. Off (the GPU profile),
    cuDNN autotunes its algorithms and atomic-add kernels reorder sums: seeds are still fixed, the
    last bits are not."""
    det = bool(train.get("deterministic"))
    where = "on the same machine type and thread count" if device.type == "cpu" else "on the same GPU model"
    if det:
        text = f"bitwise deterministic for a given seed {where} (torch deterministic algorithms, strict)"
    elif device.type == "cuda":
        text = ("not bitwise deterministic: cuDNN autotuning (benchmark mode) and atomic-add kernels may change "
                "the last bits between runs; seeds are fixed")
    else:
        text = "not guaranteed bitwise deterministic (torch deterministic algorithms off); seeds are fixed"
    return {"bitwise": det, "cudnn_benchmark": device.type == "cuda" and not det, "statement": text}


def configure(train: dict, device: torch.device) -> None:
    """Threads and determinism (see `determinism`). Deterministic mode is strict on every device;
    on CUDA it also turns cuDNN autotuning off and fixes cuBLAS's workspace. Off, cuDNN autotunes
    (benchmark mode: the fastest algorithm per shape)."""
    if int(train.get("num_threads") or 0) > 0:
        torch.set_num_threads(int(train["num_threads"]))
    det = bool(train.get("deterministic"))
    if device.type == "cuda":
        if det:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not det
        torch.backends.cudnn.deterministic = det
    torch.use_deterministic_algorithms(det)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor (indices of an epoch) on `device` without blocking the host: on CUDA from
    pinned memory, asynchronously (a plain copy from pageable memory synchronises the stream)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


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


SYNC_ENV = "THTL_SYNC_DEBUG"  # warn | error: scripts/gpu_check.sh runs the engine with "error"


@contextlib.contextmanager
def sync_check(device: torch.device, mode: str | None = None):
    """Around the steps of a training epoch, an evaluation pass or the feature-cache build: on
    CUDA, torch.cuda.set_sync_debug_mode(mode or $THTL_SYNC_DEBUG), so that any blocking host
    round trip inside (.item(), a copy to the host, a copy from pageable memory) warns or raises.
    Nothing on the CPU or when unset."""
    mode = mode or os.environ.get(SYNC_ENV) or "default"
    if device.type != "cuda" or mode == "default":
        yield
        return
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(before)


def synchronize(device: torch.device) -> None:
    # Timings on CUDA must wait for queued kernels.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
