"""Train-time augmentation on batched tensors (GPU when the model is there): no PIL, no workers.

Input and output are float NCHW images in [0, 1] (before ImageNet normalisation). Flips and a
small rotation are folded into one affine matrix per image and applied with a single
`grid_sample`; a flip alone lands exactly on pixel centres, so it is lossless. Brightness is an
additive shift, contrast a scale about each image's mean. All draws come from the caller's seeded
`torch.Generator` (on the images' device), a fixed number per image, so a resumed run that
restores the generator state reproduces the same augmentations.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def augment(x: torch.Tensor, gen: torch.Generator, aug: dict) -> torch.Tensor:
    n = x.shape[0]
    # Always draw the same 5 numbers per image so the stream does not depend on which options are on.
    u = torch.rand((n, 5), generator=gen, device=gen.device).to(x.device)
    sx = torch.where((u[:, 0] < 0.5) & bool(aug.get("hflip")), -1.0, 1.0)
    sy = torch.where((u[:, 1] < 0.5) & bool(aug.get("vflip")), -1.0, 1.0)
    angle = (u[:, 2] * 2 - 1) * math.radians(float(aug.get("rotate_deg") or 0.0))
    if aug.get("hflip") or aug.get("vflip") or aug.get("rotate_deg"):
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos * sx, -sin * sy, zero], 1),
                             torch.stack([sin * sx, cos * sy, zero], 1)], 1).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    b = float(aug.get("brightness") or 0.0)
    c = float(aug.get("contrast") or 0.0)
    if b or c:
        shift = ((u[:, 3] * 2 - 1) * b).view(n, 1, 1, 1).to(x.dtype)
        scale = (1 + (u[:, 4] * 2 - 1) * c).view(n, 1, 1, 1).to(x.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * scale + mean + shift).clamp_(0.0, 1.0)
    return x


def to_float(batch_u8_nhwc: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1]."""
    # contiguous NCHW (on uint8, the cheapest place): a permuted view makes CPU convolutions ~25 % slower
    return batch_u8_nhwc.permute(0, 3, 1, 2).contiguous().to(dtype).div_(255.0)


@functools.cache
def _imagenet(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    # Built once per device and dtype: a tensor made from Python numbers on CUDA is a blocking
    # host-to-device copy, which inside a training step would drain the stream every batch.
    mean = torch.tensor(IMAGENET_MEAN, dtype=dtype).view(1, 3, 1, 1).to(device)
    std = torch.tensor(IMAGENET_STD, dtype=dtype).view(1, 3, 1, 1).to(device)
    return mean, std


def normalise(x: torch.Tensor) -> torch.Tensor:
    mean, std = _imagenet(x.device, x.dtype)
    return (x - mean) / std
