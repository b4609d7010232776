"""Domain tensors for the engine: loaded once per process, split rows copied to the device once."""

from __future__ import annotations

import numpy as np
import torch

from thtl_bench import config, data
from thtl_bench.errors import UserError

SPLITS = ("train", "val", "test")
_MEMO: dict[str, object] = {}


def domain(cfg: dict, name: str):
    """DomainTensors for `name`, memoised on the data and split settings that define it."""
    key = config.digest({"data": cfg["data"], "split": cfg["split"], "domain": name}, 24)
    if key not in _MEMO:
        _MEMO[key] = data.load_domain(cfg, name)
    return _MEMO[key]


def clear() -> None:
    _MEMO.clear()


def splits(dom, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (uint8 NHWC images, int64 labels)} on `device`: the whole target set is small
    enough to live there, so batches are gathered by indexing, with no loader or decoding."""
    out = {}
    for split in SPLITS:
        idx = np.asarray(dom.index(split))
        if len(idx) == 0:
            raise UserError(f"domain {getattr(dom, 'name', '?')}: split {split!r} is empty; "
                            "use more images or change split.val/split.test")
        images = torch.from_numpy(np.ascontiguousarray(dom.images[idx]))
        labels = torch.from_numpy(np.asarray(dom.labels)[idx].astype(np.int64))
        out[split] = (images.to(device), labels.to(device))
    return out


def counts(dom) -> dict[str, int]:
    return {s: int(len(dom.index(s))) for s in SPLITS}
