"""Model compute in FLOPs, counted with torch's FlopCounterMode (multiply-add = 2 FLOPs).

The cost projection (stats.projection) scales measured case times by counted FLOPs to another
image size and to models that were not measured; the throughput benchmark divides achieved
FLOP/s by the card's measured matmul peak (MFU).

Training FLOPs are 3x the forward count (backward = 2x forward: input and weight gradients), the
usual MFU convention. FlopCounterMode's own backward count is not used: torch's
convolution_backward formula ignores `groups`, so a depthwise convolution's backward is counted as
a dense one (mobilenet_v2 and the efficientnets come out at 20-40x their forward; tested).
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from thtl_bench.errors import UserError

TRAIN_PER_FORWARD = 3


def forward(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass of `model` on batch `x` (no gradients are recorded)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def train_step(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one full training step (forward + backward) of `model` on batch `x`."""
    return TRAIN_PER_FORWARD * forward(model, x)


@functools.cache
def per_image(name: str, image_size: int, num_classes: int = 2) -> int | None:
    """Forward FLOPs per image of registry model `name` at `image_size` px.

    Built and run on the meta device: no weights, no memory, about a second per model. None when
    the model cannot take that size (e.g. vit_b_16 needs a multiple of its patch size 16) or
    cannot be counted there (an op without a meta kernel): callers then fall back to pixel
    count and say so (stats.projection's compute_scale).
    """
    from thtl_bench import models

    try:
        with torch.device("meta"):
            model = models.build(name, num_classes, init="random", image_size=int(image_size)).eval()
            x = torch.empty(1, 3, int(image_size), int(image_size))
            return forward(model, x)
    except (UserError, RuntimeError, NotImplementedError, ValueError, TypeError):
        return None
