"""Model compute in FLOPs, counted with torch's FlopCounterMode (multiply-add = 2 FLOPs).

The cost projection (analysis.projection) scales measured case times by counted FLOPs to another
image size and to models that were not measured, and counts the paper grid's training FLOPs stage
by stage (which stages train, which are a cached frozen prefix); it reads them from the artefact
`artifact()` builds (`thtl-bench flops` -> report/flops.json), so the reporting side needs no
model code. The
throughput benchmark divides achieved FLOP/s by the card's measured matmul peak (MFU).

Training FLOPs are 3x the forward count (backward = 2x forward: input and weight gradients), the
usual MFU convention. FlopCounterMode's own backward count is not used: torch's
convolution_backward formula ignores `groups`, so a depthwise convolution's backward is counted as
a dense one (mobilenet_v2 and the efficientnets come out at 20-40x their forward; tested).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from thtl_bench import config
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
    count and say so (analysis.projection's compute_scale).
    """
    from thtl_bench import models

    try:
        with torch.device("meta"):
            model = models.build(name, num_classes, init="random", image_size=int(image_size)).eval()
            x = torch.empty(1, 3, int(image_size), int(image_size))
            return forward(model, x)
    except (UserError, RuntimeError, NotImplementedError, ValueError, TypeError):
        return None


@functools.cache
def staging(name: str, image_size: int, num_classes: int = 2) -> dict | None:
    """The stage structure of registry model `name` at `image_size` px, for the FLOP projection:
    {"stages": names in forward order, "groups": [[group, [stages]]] back to front,
    "forward": forward FLOPs per image of each stage, "out_numel": elements per image of each
    stage's output (what a feature cache of that prefix holds)}. Meta device, like `per_image`;
    None when the model cannot be built or counted at that size."""
    from thtl_bench import models

    try:
        with torch.device("meta"), torch.no_grad():
            model = models.build(name, num_classes, init="random", image_size=int(image_size)).eval()
            x = torch.empty(1, 3, int(image_size), int(image_size))
            fwd, numel = [], []
            for i in range(len(model.stages)):
                with FlopCounterMode(display=False) as counter:
                    x = model.forward_range(x, i, i + 1)
                fwd.append(int(counter.get_total_flops()))
                numel.append(int(x[0].numel()))
    except (UserError, RuntimeError, NotImplementedError, ValueError, TypeError):
        return None
    return {"stages": list(model.stages), "groups": [[g, list(st)] for g, st in model.groups],
            "forward": fwd, "out_numel": numel}


# The train keys the FLOP projection needs to lay out a case's stages as the engine does
# (arms.plans: lrs, budget, augmentation, feature cache) and to decide whether a cache fits.
TRAIN_KEYS = ("lr_head", "lr_backbone", "lr_scratch", "max_epochs", "min_epochs", "patience", "swft_lr_decay",
              "augment", "feature_cache", "feature_cache_max_gb", "head_only_views", "precision")


def projection_settings(cfg: dict) -> dict:
    """The paper-profile run to project: report.projection keys, completed from its profile."""
    p = dict(cfg.get("report", {}).get("projection") or {})
    prof = p.get("profile")
    if prof:
        pc = config.load(cfg.get("_params_file"), profile=prof)
        p.setdefault("models", list(pc["grid"]["models"]))
        p.setdefault("arms", list(pc["grid"]["arms"]))
        p.setdefault("seeds", len(pc["grid"]["replicates"]))
        p.setdefault("image_size", int(pc["data"]["image_size"]))
        p.setdefault("max_epochs", int(pc["train"]["max_epochs"]))
        p.setdefault("train", {k: pc["train"][k] for k in TRAIN_KEYS if k in pc["train"]})
        p.setdefault("split", {k: float(pc["split"][k]) for k in ("val", "test")})
    need = ("models", "arms", "seeds", "image_size", "max_epochs",
            "fundus_images", "larynx_images")
    missing = [k for k in need if p.get(k) is None]
    if missing:
        raise UserError(f"params.yaml report.projection lacks {missing} (set them or name a profile)")
    if isinstance(p["seeds"], list):
        p["seeds"] = len(p["seeds"])
    return p


def artifact(cfg: dict, records: Sequence[dict]) -> dict:
    """What the cost projection needs from model code: the projected profile's settings
    (report.projection, completed from that profile) and the forward FLOPs per image of every
    model of the records (at their image sizes and the projected size) and of the projected grid."""
    p = projection_settings(cfg)
    sizes: dict[str, set[int]] = {}
    for r in records:
        if r.get("status") == "ok" and (r.get("data") or {}).get("image_size"):
            sizes.setdefault(r["case"]["model"], set()).add(int(r["data"]["image_size"]))
    for m in p["models"]:
        sizes.setdefault(m, set())
    counts = {m: {str(sz): per_image(m, sz) for sz in sorted(ss | {int(p["image_size"])})}
              for m, ss in sorted(sizes.items())}
    out = {"settings": {k: p[k] for k in sorted(p)}, "per_image": counts,
           "note": "forward FLOPs per image (FlopCounterMode, meta device); training = 3x forward"}
    if p.get("train"):  # the FLOP projection's stage structure of every model of the projected grid
        out["staging"] = {m: staging(m, int(p["image_size"])) for m in p["models"]}
    return out
