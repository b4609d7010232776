"""`load_domain`: images decoded once into a memory-mapped uint8 cache, with labels and splits.

The cache file is named by a fingerprint of the content hashes, labels, target size and resize
rule, so new or edited images, or another geometry, give a new file and never a stale one.
Every image is brought to one geometry (`data.resize`, one of RESIZE_MODES) so that the original
size, which partly predicts the class in CE-NBI, cannot leak into training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from thtl_bench.config import digest
from thtl_bench.data import splits as splits_mod
from thtl_bench.data.errors import DataError, Problem, errors_only
from thtl_bench.data.sources import Listing, Sample, read_source
from thtl_bench.io import FILE_MODE, sha256_file

CACHE_VERSION = 2  # bump when decoding changes, so old caches are not reused (2: EXIF orientation)
# data.resize: how an image becomes size x size. shorter_side_center_crop: shorter side to size,
# centre crop (drops the borders of the longer side); pad_to_square: longer side to size, centred
# on black (keeps the whole field, adds black bars); stretch: both sides to size (distorts shape).
RESIZE_MODES = ("shorter_side_center_crop", "pad_to_square", "stretch")
DEFAULT_RESIZE = RESIZE_MODES[0]
# 16-bit / 32-bit / float images: convert("RGB") clips every value above 255 instead of scaling
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


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
    hashes: list | None = None  # content sha256 per image (splits group duplicates by it)
    generator: dict | None = None  # phantom generator facts (thtl_bench.data.cache.phantom_meta)
    split_seed: int | None = None
    fraction: float = 1.0

    def index(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def resize_mode(cfg: dict) -> str:
    """data.resize, refused unless it is one of RESIZE_MODES (absent: the default)."""
    mode = cfg["data"].get("resize", DEFAULT_RESIZE)
    if mode not in RESIZE_MODES:
        raise DataError(Problem("bad_resize", cfg.get("_params_file", "params.yaml"),
                                f"data.resize={mode!r} is not a known geometry",
                                f"set data.resize to one of {list(RESIZE_MODES)}"))
    return mode


# ---------------------------------------------------------------- hashing
def content_hashes(cfg: dict, lst: Listing, problems: list[Problem] | None = None) -> list[str | None]:
    """SHA-256 of every sample file, remembered by (size, mtime, inode, ctime) so large sets hash
    once; ctime and inode change on every write or replacement, even one that restores the mtime
    (`cp -p`, `rsync -a`), so a remembered hash is never stale. An unreadable file is a problem:
    appended to `problems` (its hash None) when given, else raised with the others."""
    store = Path(cfg["data"]["cache_dir"]) / f"hashes-{lst.domain}.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    out, fresh, bad = [], {}, []
    for s in lst.samples:
        try:
            st = s.path.stat()
            key = str(s.path.resolve())
            sig = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
            h = known.get(key) or []
            h = h[-1] if h[:-1] == sig else sha256_file(s.path)
        except OSError as exc:
            bad.append(Problem("unreadable", str(s.path), f"cannot read the file ({exc.strerror or exc})",
                               "check the file's permissions, or delete it (and its label row)"))
            out.append(None)
            continue
        fresh[key] = [*sig, h]
        out.append(h)
    if bad and problems is None:
        raise DataError(bad, f"{len(bad)} unreadable file(s); run `thtl-bench data check` for a full report")
    if problems is not None:
        problems.extend(bad)
    if fresh != known:
        from thtl_bench.io import atomic_write_text  # shared by concurrent shards

        atomic_write_text(store, json.dumps(fresh))
    return out


def content_problems(samples: list[Sample], hashes: list[str], root: Path | str) -> list[Problem]:
    """Files with identical content. Filed under two classes, the label of that content is
    unknown and the copies would teach (or test) both answers: an error. Within one class they
    are a warning (the splits keep all copies, and their patients, in one split)."""
    by_hash: dict[str, list[Sample]] = defaultdict(list)
    for s, h in zip(samples, hashes, strict=True):
        if h is not None:
            by_hash[h].append(s)
    probs = []
    for h, same in sorted(by_hash.items(), key=lambda kv: kv[1][0].id):
        if len(same) < 2:
            continue
        first, rest = same[0], same[1:]
        if len({s.label for s in same}) > 1:
            probs.append(Problem("conflicting_duplicate", f"{root}/{first.id}",
                                 f"the same image content (sha256 {h[:16]}) is filed under different classes: "
                                 + ", ".join(f"{s.id} as {s.label!r}" for s in same),
                                 "keep the image in its right class only and delete the other copies"))
        else:
            patients = sorted({s.group for s in same})
            probs.append(Problem("duplicate_image", f"{root}/{first.id}", f"same content as {[s.id for s in rest]}"
                                 + (f" (patients {patients}, kept in one split)" if len(patients) > 1 else ""),
                                 "delete the copies (splits keep them together meanwhile)", "warning"))
    return probs


def _share(path: Path) -> None:
    os.chmod(path, FILE_MODE)  # shared (Slurm) folders: others must read it (mkstemp-like 0600 otherwise)


# ---------------------------------------------------------------- decoding
def geometry(im: Image.Image, size: int, resample=Image.BILINEAR, *, mode: str = DEFAULT_RESIZE) -> Image.Image:
    """The image as size x size per `mode` (one of RESIZE_MODES)."""
    w, h = im.size
    if mode == "shorter_side_center_crop":
        k = size / min(w, h)
        nw, nh = max(size, round(w * k)), max(size, round(h * k))
        im = im.resize((nw, nh), resample)
        left, top = (nw - size) // 2, (nh - size) // 2
        return im.crop((left, top, left + size, top + size))
    if mode == "pad_to_square":
        k = size / max(w, h)
        nw, nh = min(size, max(1, round(w * k))), min(size, max(1, round(h * k)))
        canvas = Image.new(im.mode, (size, size))  # black (and 0 = no vessel for masks)
        canvas.paste(im.resize((nw, nh), resample), ((size - nw) // 2, (size - nh) // 2))
        return canvas
    if mode == "stretch":
        return im.resize((size, size), resample)
    raise DataError(Problem("bad_resize", "params.yaml", f"data.resize={mode!r} is not a known geometry",
                            f"set data.resize to one of {list(RESIZE_MODES)}"))


def _upscaled(w: int, h: int, size: int, resize: str) -> bool:
    return (max(w, h) if resize == "pad_to_square" else min(w, h)) < size


def open_checked(path: Path, modes: list[str], min_side: int,
                 resize: str = DEFAULT_RESIZE) -> tuple[Image.Image | None, list[Problem]]:
    """Fully decode one image, turned upright per its EXIF orientation (as viewers show it);
    problems for unreadable/truncated files, a wrong or too deep mode, or a size that the
    geometry `resize` to `min_side` px would have to upscale."""
    probs = []
    try:
        with Image.open(path) as im:
            im.load()  # raises on truncated data (PIL refuses truncated files by default)
            try:
                upright = ImageOps.exif_transpose(im)  # a copy, detached from the file
            except Exception as exc:  # a malformed EXIF block: the pixels are fine, the orientation unknown
                upright = im.copy()
                probs.append(Problem("bad_exif", str(path), f"EXIF orientation unreadable ({exc}); used as stored",
                                     "re-save the image without EXIF (or with a valid one)", "warning"))
    except Exception as exc:  # PIL raises several types for corrupt input
        return None, [Problem("unreadable", str(path), f"cannot decode image ({type(exc).__name__}: {exc})",
                              "replace the file with a readable copy or delete it (and its label row)")]
    im = upright
    if im.mode in DEEP_MODES:
        probs.append(Problem("deep_image", str(path), f"image mode {im.mode} (more than 8 bits per channel): "
                             "converting it to 8-bit RGB would clip every value above 255",
                             "rescale it to 8 bits yourself (e.g. divide by its maximum) and save it as RGB"))
    elif im.mode not in modes:
        probs.append(Problem("wrong_mode", str(path), f"image mode {im.mode}, expected one of {modes}",
                             "convert it to RGB (e.g. PIL .convert('RGB')) or extend data.modes"))
    if min(im.size) == 0:
        probs.append(Problem("empty_image", str(path), f"image has no pixels ({im.size[0]}x{im.size[1]})",
                             "replace the file or delete it (and its label row)"))
    elif _upscaled(*im.size, min_side, resize):
        probs.append(Problem("wrong_size", str(path), f"image is {im.size[0]}x{im.size[1]}, smaller than "
                             f"data.image_size={min_side} (data.resize={resize} would upscale it)",
                             "remove the thumbnail or lower data.image_size"))
    return im, probs


def decode(path: Path, size: int, modes: list[str], resize: str = DEFAULT_RESIZE) -> np.ndarray:
    im, probs = open_checked(path, modes, size, resize)
    if probs:
        raise DataError(probs)
    return np.asarray(geometry(im.convert("RGB"), size, mode=resize))


def decode_mask(path: Path, size: int, resize: str = DEFAULT_RESIZE) -> np.ndarray:
    try:
        with Image.open(path) as im:
            m = geometry(im.convert("L"), size, Image.BOX, mode=resize)  # BOX keeps thin vessels as partial cover
    except (OSError, ValueError) as exc:
        raise DataError(Problem("unreadable", str(path), f"cannot decode mask ({type(exc).__name__}: {exc})",
                                "regenerate the phantoms (`thtl-bench synth`) or delete the masks folder")) from exc
    return (np.asarray(m) >= 128).astype(np.uint8)


def _build(path: Path, items: list[Path], fn, shape: tuple) -> np.ndarray:
    """Decode every item into a .npy written under a temporary name, then renamed: a killed
    run leaves no half-filled cache behind, and the temporary file goes on any error. All
    decoding problems are reported together."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")  # unique per writer
    try:
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
            raise DataError(problems, f"{len(problems)} image problem(s); run `thtl-bench data check` for a full report")
        _share(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return np.load(path, mmap_mode="r")


def listing_or_raise(cfg: dict, domain: str) -> Listing:
    """The domain's listing, refused on any error, identical content under two classes included."""
    lst = read_source(cfg, domain)
    errs = errors_only(lst.problems)
    if not errs:
        errs = errors_only(content_problems(lst.samples, content_hashes(cfg, lst), lst.root))
    if errs:
        raise DataError(errs, f"{len(errs)} problem(s) in {lst.root}; run `thtl-bench data check` for a full report")
    return lst


def fingerprint(ids: list[str], hashes: list[str | None], labels: list[str]) -> str:
    """A domain's content fingerprint (records and data_check.json carry it): what a case's
    identity depends on, whatever folder the data sits in."""
    return digest({"ids": ids, "sha256": hashes, "labels": labels}, 16)


def load_images(cfg: dict, domain: str) -> DomainTensors:
    """A domain's decoded images, labels, ids and patients, without a split (split: all 'unused';
    `with_split` adds one). The expensive part, done once per data folder and image geometry."""
    resize = resize_mode(cfg)
    lst = listing_or_raise(cfg, domain)
    size = int(cfg["data"]["image_size"])
    modes = list(cfg["data"].get("modes", ["RGB"]))
    hashes = content_hashes(cfg, lst)
    ids = [s.id for s in lst.samples]
    fp = fingerprint(ids, hashes, [s.label for s in lst.samples])
    key = digest({"fp": fp, "size": size, "resize": resize, "v": CACHE_VERSION}, 16)
    cache = Path(cfg["data"]["cache_dir"])
    img_path = cache / f"{domain}-{key}.npy"
    images = (np.load(img_path, mmap_mode="r") if img_path.is_file()
              else _build(img_path, [s.path for s in lst.samples], lambda p: decode(p, size, modes, resize), (size, size, 3)))
    mask_files = [lst.mask_path(s) for s in lst.samples]
    masks = None
    if mask_files and all(p.is_file() and lst.allowed(p.resolve()) for p in mask_files):
        mpath = cache / f"{domain}-{key}-masks.npy"
        masks = np.load(mpath, mmap_mode="r") if mpath.is_file() else _build(mpath, mask_files, lambda p: decode_mask(p, size, resize), (size, size))
    return DomainTensors(
        images=images,
        labels=np.array([lst.classes.index(s.label) for s in lst.samples], dtype=np.int64),
        ids=ids,
        groups=[s.group for s in lst.samples],
        split=np.full(len(ids), "unused", dtype=object),
        classes=list(lst.classes),
        masks=masks,
        fingerprint=fp,
        kind="phantom" if phantom_meta(lst.root) is not None else "real",
        domain=domain,
        root=str(lst.root),
        hashes=hashes,
        generator=phantom_meta(lst.root),
    )


def with_split(cfg: dict, dt: DomainTensors, split_seed: int, fraction: float = 1.0) -> DomainTensors:
    """`dt` with the split of `split_seed` (splits/<domain>/k<seed>.csv) and only the first
    `fraction` of its training groups in train (the rest 'unused'; nested across fractions)."""
    labels = [dt.classes[i] for i in dt.labels]
    rows = splits_mod.resolve(cfg, dt.domain, dt.ids, labels, dt.groups, dt.hashes, int(split_seed))
    return dataclasses.replace(dt, split=splits_mod.apply_fraction(rows, float(fraction)),
                               split_seed=int(split_seed), fraction=float(fraction))


def load_domain(cfg: dict, domain: str, *, split_seed: int = 0, fraction: float = 1.0) -> DomainTensors:
    """A domain's tensors with the split of `split_seed` and a training fraction."""
    return with_split(cfg, load_images(cfg, domain), split_seed, fraction)


def phantom_meta(root: Path) -> dict | None:
    """The generator facts of a phantom domain folder (version, parameter hash, settings), None
    for real data."""
    for name in ("phantom.json", "phantom_stats.json"):
        f = Path(root) / name
        if f.is_file():
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):
                return {"file": name, "unreadable": True}
            params = doc.get("params") if isinstance(doc.get("params"), dict) else {}
            meta = {k: doc.get(k, params.get(k)) for k in ("generator", "generator_version", "params_hash",
                                                           "image_size", "seed", "profile") if k in doc or k in params}
            return meta | {"file": name}
    return None
