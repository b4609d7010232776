"""Shared builders for data tests: a minimal config and tiny PNG files."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from PIL import Image

BASE = {
    "data": {"cache_dir": "", "image_size": 16, "resize": "shorter_side_center_crop", "modes": ["RGB"],
             "fundus": {"layout": "aptos", "root": "", "classes": ["0", "1", "2", "3", "4"]},
             "larynx": {"layout": "manifest", "root": "", "classes": ["benign", "malignant"],
                        "folder_map": {"B": "benign", "M": "malignant", "Benign": "benign", "Malignant": "malignant"},
                        "cenbi_label_source": "folder"}},
    "split": {"val": 0.2, "test": 0.25, "dir": ""},
    "grid": {"replicates": [[0, 0]], "domains": ["fundus"]},
    "synth": {"seed": 7, "image_size": 32,
              "fundus": {"per_grade": [2, 1, 1, 1, 1]},
              "larynx": {"patients": {"benign": 3, "malignant": 3}, "images_per_patient": [2, 3]},
              "difficulty": {"tortuosity_overlap": 0.35, "noise": 0.04, "blur": 0.6, "illumination": 0.25}},
}


def make_cfg(tmp: Path, domain: str = "larynx", layout: str | None = None, **data) -> dict:
    cfg = copy.deepcopy(BASE)
    cfg["data"]["cache_dir"] = str(tmp / "cache")
    cfg["split"]["dir"] = str(tmp / "splits")
    for d in ("fundus", "larynx"):
        cfg["data"][d]["root"] = str(tmp / d)
    if layout:
        cfg["data"][domain]["layout"] = layout
    cfg["data"].update(data)
    return cfg


def png(path: Path, seed: int = 0, size=(32, 32), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(a)
    im = im.convert(mode) if mode != "RGB" else im
    im.save(path)
    return path
