"""Where a record came from: library versions, the machine and the git commit (in every record).

The machine facts say what could make two runs of one case differ in their last bits: the CPU
model, the SIMD level numpy and torch dispatched to on it, the thread count, the GPU.
`compare` prints them when two results come from different machines.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from importlib import metadata

from thtl_bench.io import git_label


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, macOS sysctl), else the architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def numpy_simd() -> str:
    """The highest SIMD target numpy dispatches to here (its baseline when nothing is above)."""
    try:
        from numpy._core import _multiarray_umath as mu
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as mu
    found = [f for f in mu.__cpu_dispatch__ if mu.__cpu_features__.get(f)]
    return (found or list(mu.__cpu_baseline__) or ["none"])[-1]


def machine(device=None) -> dict:
    """The machine facts of a run on `device` (none of them hashed: they describe, not define)."""
    import torch

    out = {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count(),
           "numpy_simd": numpy_simd(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "threads": torch.get_num_threads(), "gpu": None}
    if device is not None and torch.device(device).type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
        out["cuda"] = torch.version.cuda
    return out


def device_name(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()})"


def collect(device="cpu", deterministic: bool | None = None) -> dict:
    import torch

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "numpy": _version("numpy"),
        "device": str(device),
        "device_name": device_name(device),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "machine": machine(device),
        "git_commit": git_label(),
        "deterministic": deterministic,
    }
