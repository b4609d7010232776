"""`load_domain`: images decoded once into a memory-mapped uint8 cache, with labels and splits.

The cache file is named by a fingerprint of the content hashes, labels, target size and resize
rule, so new or edited images, or another geometry, give a new file and never a stale one.
Every image is brought to one geometry (shorter side resized to S, centre crop) so that the
original size, which partly predicts the class in CE-NBI, cannot leak into training.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from thtl_bench.config import digest
from thtl_bench.data import splits as splits_mod
from thtl_bench.data.errors import DataError, Problem, errors_only
from thtl_bench.data.sources import Listing, read_source
from thtl_bench.io import sha256_file

CACHE_VERSION = 1  # bump when decoding changes, so old caches are not reused


@dataclass
class DomainTensors:
    images: np.ndarray  # uint8 (N, S, S, 3), memory-mapped
    labels: np.ndarray  # int64 (N,)
    ids: list[str]
    groups: list[str]
    split: np.ndarray  # str (N,): train | val | test | unused
    classes: list[str]
    masks: np.ndarray | None  # uint8 (N, S, S) in {0, 1}, phantoms only
    fingerprint: str
    kind: str  # phantom | real
    domain: str = ""
    root: str = ""

    def index(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


# ---------------------------------------------------------------- hashing
def content_hashes(cfg: dict, lst: Listing) -> list[str]:
    """SHA-256 of every sample file, remembered by (size, mtime) so large sets hash once."""
    store = Path(cfg["data"]["cache_dir"]) / f"hashes-{lst.domain}.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    out, fresh = [], {}
    for s in lst.samples:
        st = s.path.stat()
        key = str(s.path.resolve())
        sig = [st.st_size, st.st_mtime_ns]
        h = known.get(key, [None, None, None])
        h = h[2] if h[:2] == sig else sha256_file(s.path)
        fresh[key] = [*sig, h]
        out.append(h)
    if fresh != known:
        from thtl_bench.io import atomic_write_text  # shared by concurrent shards

        atomic_write_text(store, json.dumps(fresh))
    return out


# ---------------------------------------------------------------- decoding
def geometry(im: Image.Image, size: int, resample=Image.BILINEAR) -> Image.Image:
    """Shorter side to `size`, then a centre crop to size x size."""
    w, h = im.size
    k = size / min(w, h)
    nw, nh = max(size, round(w * k)), max(size, round(h * k))
    im = im.resize((nw, nh), resample)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def open_checked(path: Path, modes: list[str], min_side: int) -> tuple[Image.Image | None, list[Problem]]:
    """Fully decode one image; problems for unreadable/truncated files, wrong mode or size."""
    try:
        with Image.open(path) as im:
            im.load()  # raises on truncated data (PIL refuses truncated files by default)
            im = im.copy()
    except Exception as exc:  # PIL raises several types for corrupt input
        return None, [Problem("unreadable", str(path), f"cannot decode image ({type(exc).__name__}: {exc})",
                              "replace the file with a readable copy or delete it (and its label row)")]
    probs = []
    if im.mode not in modes:
        probs.append(Problem("wrong_mode", str(path), f"image mode {im.mode}, expected one of {modes}",
                             "convert it to RGB (e.g. PIL .convert('RGB')) or extend data.modes"))
    if min(im.size) < min_side:
        probs.append(Problem("wrong_size", str(path), f"image is {im.size[0]}x{im.size[1]}, smaller than "
                             f"data.image_size={min_side} (it would be upscaled)",
                             "remove the thumbnail or lower data.image_size"))
    return im, probs


def decode(path: Path, size: int, modes: list[str]) -> np.ndarray:
    im, probs = open_checked(path, modes, size)
    if probs:
        raise DataError(probs)
    return np.asarray(geometry(im.convert("RGB"), size))


def decode_mask(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        m = geometry(im.convert("L"), size, Image.BOX)  # BOX keeps thin vessels as partial cover
    return (np.asarray(m) >= 128).astype(np.uint8)


def _build(path: Path, items: list[Path], fn, shape: tuple) -> np.ndarray:
    """Decode every item into a .npy written under a temporary name, then renamed: a killed
    run leaves no half-filled cache behind. All decoding problems are reported together."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")  # unique per writer
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(items), *shape))
    problems = []
    for i, p in enumerate(items):
        try:
            arr[i] = fn(p)
        except DataError as exc:
            problems += exc.problems
    arr.flush()
    del arr
    if problems:
        tmp.unlink(missing_ok=True)
        raise DataError(problems, f"{len(problems)} image problem(s); run `thtl-bench data check` for a full report")
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def listing_or_raise(cfg: dict, domain: str) -> Listing:
    lst = read_source(cfg, domain)
    errs = errors_only(lst.problems)
    if errs:
        raise DataError(errs, f"{len(errs)} problem(s) in {lst.root}; run `thtl-bench data check` for a full report")
    return lst


def load_domain(cfg: dict, domain: str, *, split_fractions: bool = True) -> DomainTensors:
    lst = listing_or_raise(cfg, domain)
    size = int(cfg["data"]["image_size"])
    modes = list(cfg["data"].get("modes", ["RGB"]))
    hashes = content_hashes(cfg, lst)
    ids = [s.id for s in lst.samples]
    rows = splits_mod.resolve(cfg, domain, ids, [s.label for s in lst.samples], [s.group for s in lst.samples], hashes)
    fp = digest({"ids": ids, "sha256": hashes, "labels": [s.label for s in lst.samples]}, 16)
    key = digest({"fp": fp, "size": size, "resize": cfg["data"].get("resize"), "v": CACHE_VERSION}, 16)
    cache = Path(cfg["data"]["cache_dir"])
    img_path = cache / f"{domain}-{key}.npy"
    images = (np.load(img_path, mmap_mode="r") if img_path.is_file()
              else _build(img_path, [s.path for s in lst.samples], lambda p: decode(p, size, modes), (size, size, 3)))
    mask_files = [lst.mask_path(s) for s in lst.samples]
    masks = None
    if mask_files and all(p.is_file() for p in mask_files):
        mpath = cache / f"{domain}-{key}-masks.npy"
        masks = np.load(mpath, mmap_mode="r") if mpath.is_file() else _build(mpath, mask_files, lambda p: decode_mask(p, size), (size, size))
    frac = float(cfg["split"].get(splits_mod.FRACTION_KEY[domain], 1.0)) if split_fractions else 1.0
    return DomainTensors(
        images=images,
        labels=np.array([lst.classes.index(s.label) for s in lst.samples], dtype=np.int64),
        ids=ids,
        groups=[s.group for s in lst.samples],
        split=splits_mod.apply_fraction(rows, frac),
        classes=list(lst.classes),
        masks=masks,
        fingerprint=fp,
        kind="phantom" if (lst.root / "phantom_stats.json").is_file() else "real",
        domain=domain,
        root=str(lst.root),
    )
