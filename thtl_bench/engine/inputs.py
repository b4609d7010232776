"""Domain tensors for the engine: decoded once per process, split rows copied to the device once.

A case sees the domain it trains on (the target, or THTL step 1's intermediate domain) with the
split of its replicate's split seed and its share of the training split (the size axes)."""

from __future__ import annotations

import numpy as np
import torch

from thtl_bench import arms, config, data, domains
from thtl_bench.errors import UserError
from thtl_bench.records import Case

SPLITS = ("train", "val", "test")
_IMAGES: dict[str, object] = {}
_SPLIT: dict[str, object] = {}


def tensors(cfg: dict, name: str, split_seed: int, fraction: float = 1.0):
    """DomainTensors of `name` with one split, memoised: the images on the data settings, the
    split on the split settings, the seed and the fraction."""
    ikey = config.digest({"data": cfg["data"], "domain": name}, 24)
    if ikey not in _IMAGES:
        _IMAGES[ikey] = data.load_images(cfg, name)
    skey = config.digest({"i": ikey, "split": cfg["split"], "seed": int(split_seed), "f": float(fraction)}, 24)
    if skey not in _SPLIT:
        _SPLIT[skey] = data.with_split(cfg, _IMAGES[ikey], int(split_seed), float(fraction))
    return _SPLIT[skey]


def trains_on(case: Case) -> str:
    """The domain a case trains on: its intermediate domain for THTL step 1, else the target."""
    return case.domain if arms.get(case.arm).trains_on == "intermediate" else domains.TARGET


def domain(cfg: dict, case: Case):
    """The tensors a case trains and is evaluated on."""
    on = trains_on(case)
    frac = case.intermediate_fraction if on != domains.TARGET else case.target_fraction
    return tensors(cfg, on, case.split, frac)


def clear() -> None:
    _IMAGES.clear()
    _SPLIT.clear()


def splits(dom, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (uint8 NHWC images, int64 labels)} on `device`: the whole target set is small
    enough to live there, so batches are gathered by indexing, with no loader or decoding."""
    out = {}
    for split in SPLITS:
        idx = np.asarray(dom.index(split))
        if len(idx) == 0:
            raise UserError(f"domain {getattr(dom, 'domain', '?')}: split {split!r} is empty; "
                            "use more images or change split.val/split.test")
        images = torch.from_numpy(np.ascontiguousarray(dom.images[idx]))
        labels = torch.from_numpy(np.asarray(dom.labels)[idx].astype(np.int64))
        out[split] = (images.to(device), labels.to(device))
    return out
