"""Where a record came from: library versions, device and git commit (embedded in every record)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from thtl_bench.io import git_label


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def device_name(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


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
        "git_commit": git_label(),
        "deterministic": deterministic,
    }
