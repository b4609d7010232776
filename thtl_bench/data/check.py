"""`data check` (every problem of a data folder at once) and `data verify` (data/ vs data.dvc).

The check decodes every image, so it finds what training would trip over, and it looks for
shortcuts: if the original image size predicts the class better than the majority rate, a
model could learn the camera instead of the vessels unless all images get one geometry.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from thtl_bench.data import splits as splits_mod
from thtl_bench.data.cache import (
    DEFAULT_RESIZE,
    content_hashes,
    content_problems,
    fingerprint,
    open_checked,
    resize_mode,
)
from thtl_bench.data.errors import DataError, Problem, errors_only
from thtl_bench.data.sources import MASKS_DIR, Listing, read_source
from thtl_bench.io import file_digest


def size_shortcut(sizes: list[tuple[int, int]], labels: list[str], split: list[str]) -> dict:
    """Accuracy of predicting the class from the original (w, h) alone, fitted on train and
    scored on val+test (unseen sizes fall back to the majority class), vs the majority rate."""
    train = [i for i, s in enumerate(split) if s in ("train", "unused")]
    held = [i for i, s in enumerate(split) if s in ("val", "test")] or train
    majority = Counter(labels[i] for i in train).most_common(1)[0][0]
    by_size = defaultdict(Counter)
    for i in train:
        by_size[sizes[i]][labels[i]] += 1
    pred = [by_size[sizes[i]].most_common(1)[0][0] if sizes[i] in by_size else majority for i in held]
    acc = float(np.mean([p == labels[i] for p, i in zip(pred, held, strict=True)]))
    base = float(np.mean([labels[i] == majority for i in held]))
    return {"distinct_sizes": len(set(sizes)), "size_accuracy": acc, "majority_rate": base}


def check_domain(cfg: dict, domain: str) -> dict:
    """All problems (errors and warnings) of one domain plus counts per class and split."""
    lst = read_source(cfg, domain)
    problems = list(lst.problems)
    try:
        resize = resize_mode(cfg)
    except DataError as exc:  # reported with everything else; the sizes are judged by the default
        problems += exc.problems
        resize = DEFAULT_RESIZE
    size = int(cfg["data"]["image_size"])
    modes = list(cfg["data"].get("modes", ["RGB"]))
    sizes = {}
    for s in lst.samples:
        im, probs = open_checked(s.path, modes, size, resize)
        problems += probs
        if im is not None:
            sizes[s.id] = im.size
    problems += mask_problems(lst, sizes)
    report = {"domain": domain, "root": str(lst.root), "layout": lst.layout, "n": len(lst.samples),
              "counts": {}, "shortcut": None}
    hashes = content_hashes(cfg, lst, problems)
    report["fingerprint"] = fingerprint([s.id for s in lst.samples], hashes, [s.label for s in lst.samples])
    hashed = [(s, h) for s, h in zip(lst.samples, hashes, strict=True) if h is not None]
    if hashed:
        samples, h = [s for s, _ in hashed], [x for _, x in hashed]
        problems += content_problems(samples, h, lst.root)
        seeds = splits_mod.split_seeds(cfg)
        for k in seeds:
            fresh = splits_mod.compute(cfg, [s.id for s in samples], [s.label for s in samples],
                                       [s.group for s in samples], h, k)
            path = splits_mod.split_path(cfg, domain, k)
            if path.is_file():
                try:
                    bad = splits_mod.validate(splits_mod.read(path), fresh, str(path))
                except DataError as exc:
                    bad = exc.problems
                problems += bad  # the report's counts come from the data's own splits either way
            if k == seeds[0]:
                rows = fresh
        report["counts"] = splits_mod.counts(rows)
        report["split_seeds"] = seeds
        split_of = {r["id"]: r["split"] for r in rows}
        ok = [s for s in samples if s.id in sizes]
        if ok:
            sc = size_shortcut([sizes[s.id] for s in ok], [s.label for s in ok], [split_of[s.id] for s in ok])
            report["shortcut"] = sc
            if sc["distinct_sizes"] > 1 and sc["size_accuracy"] > sc["majority_rate"] + 0.05:
                problems.append(Problem("size_shortcut", str(lst.root),
                                        f"original image size predicts the class with accuracy "
                                        f"{sc['size_accuracy']:.2f} vs majority rate {sc['majority_rate']:.2f} "
                                        f"({sc['distinct_sizes']} sizes)",
                                        "keep data.resize (one geometry for all images); do not feed original sizes "
                                        "or aspect ratios to the model", "warning"))
    report["problems"] = problems
    report["errors"] = len(errors_only(problems))
    return report


def mask_problems(lst: Listing, sizes: dict) -> list[Problem]:
    """Vessel masks (phantoms) must cover every image, at its size, inside the root: a mask of
    another size would be cropped differently from its image and score the wrong pixels."""
    have = [(s, lst.mask_path(s)) for s in lst.samples if lst.mask_path(s).is_file()]
    if not have:
        return []
    probs = []
    if len(have) < len(lst.samples):
        probs.append(Problem("missing_masks", str(lst.root / MASKS_DIR), f"{len(lst.samples) - len(have)} of "
                             f"{len(lst.samples)} images have no mask, so no vessel scores are computed for {lst.domain}",
                             "regenerate the phantoms (`thtl-bench synth`) or delete the masks folder", "warning"))
    for s, m in have:
        if not lst.allowed(m.resolve()):
            probs.append(Problem("outside_root", str(m), "mask is a link outside the data root",
                                 "copy the mask into the data root"))
            continue
        try:
            with Image.open(m) as im:
                msize = im.size
        except Exception as exc:  # PIL raises several types for corrupt input
            probs.append(Problem("unreadable", str(m), f"cannot decode mask ({type(exc).__name__}: {exc})",
                                 "regenerate the phantoms (`thtl-bench synth`) or delete the masks folder"))
            continue
        if s.id in sizes and msize != sizes[s.id]:
            probs.append(Problem("mask_size", str(m), f"mask is {msize[0]}x{msize[1]} but its image "
                                 f"{s.id} is {sizes[s.id][0]}x{sizes[s.id][1]}",
                                 "regenerate the phantoms (`thtl-bench synth`)"))
    return probs


def format_report(rep: dict, limit: int = 50) -> str:
    lines = [f"== {rep['domain']}: {rep['root']} (layout {rep['layout']}), {rep['n']} images"]
    splits_ = ["train", "val", "test"]
    if rep["counts"]:
        lines.append(f"  {'class':<12}" + "".join(f"{s:>7}" for s in splits_) + f"{'total':>7}")
        for c, row in sorted(rep["counts"].items()):
            lines.append(f"  {c:<12}" + "".join(f"{row.get(s, 0):>7}" for s in splits_) + f"{sum(row.values()):>7}")
    if rep["shortcut"]:
        sc = rep["shortcut"]
        lines.append(f"  size shortcut: {sc['distinct_sizes']} original size(s); class from size "
                     f"{sc['size_accuracy']:.2f} vs majority {sc['majority_rate']:.2f}")
    by_code = Counter(p.code for p in rep["problems"])
    for p in rep["problems"][:limit]:
        lines.append(f"  {p.severity.upper()}: {p}")
    if len(rep["problems"]) > limit:
        lines.append(f"  ... {len(rep['problems']) - limit} more: " + ", ".join(f"{k} x{v}" for k, v in by_code.items()))
    lines.append(f"  {rep['errors']} error(s), {len(rep['problems']) - rep['errors']} warning(s)")
    return "\n".join(lines)


# ---------------------------------------------------------------- DVC
def dvc_dir_hash(root: Path) -> dict:
    """The hash DVC 3 records for a directory output: md5 of the JSON list of {md5, relpath}
    entries sorted by relpath (json.dumps(..., sort_keys=True)), suffixed ".dir" (dvc-data
    hashfile/tree.py). Files are hashed raw (DVC 3 `hash: md5`, no dos2unix)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".dvc" not in p.relative_to(root).parts)
    entries = sorted(({"md5": file_digest(p, "md5"), "relpath": p.relative_to(root).as_posix()} for p in files),
                     key=lambda e: e["relpath"])
    blob = json.dumps(entries, sort_keys=True).encode("utf-8")
    return {"md5": hashlib.md5(blob).hexdigest() + ".dir", "size": sum(p.stat().st_size for p in files),
            "nfiles": len(files)}


def dvc_file_for(cfg: dict) -> Path:
    """The profile's DVC file: `<data.root>.dvc` (data.dvc, data-paper.dvc, ...), as `dvc add` names it."""
    return Path(str(cfg["data"]["root"]).rstrip("/") + ".dvc")


def profile_domains(cfg: dict) -> list[str]:
    """The domains a profile's data folder holds: the target and the grid's intermediate domains."""
    from thtl_bench import domains

    want = {domains.TARGET, *cfg["grid"]["domains"]}
    return [d for d in domains.NAMES if d in want]


def write_dvc_file(cfg: dict) -> Path:
    """Record the profile's data folder in its .dvc file (what `dvc add` writes, without filling a
    DVC cache); phantom data is marked in `meta` so `data verify` can regenerate it on a fresh clone."""
    from thtl_bench.data.cache import phantom_meta
    from thtl_bench.io import atomic_write_text

    root = Path(cfg["data"]["root"])
    out = {**dvc_dir_hash(root), "hash": "md5", "path": root.name}
    doc = {"outs": [out]}
    doms = profile_domains(cfg)
    if all(phantom_meta(root / d) is not None for d in doms):
        doc["meta"] = {"kind": "phantom", "generator": "thtl-bench synth", "profile": cfg.get("profile"),
                       "domains": doms, "synth_seed": cfg["synth"]["seed"], "image_size": cfg["synth"]["image_size"]}
    path = dvc_file_for(cfg)
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))
    return path


def phantom_problems(cfg: dict) -> list[Problem]:
    """Phantom folders made for another profile, image size or generator setting than `cfg`'s:
    their meta file (phantom_stats.json) says what made them. Real data has no meta: nothing to say."""
    from thtl_bench.data import phantoms
    from thtl_bench.data.cache import phantom_meta

    out = []
    for d in profile_domains(cfg):
        root = Path(cfg["data"][d]["root"])
        meta = phantom_meta(root)
        if meta is None or d not in phantoms.DOMAINS:
            continue
        want = phantoms.params_hash(phantoms.domain_params(cfg["synth"], d))
        size = meta.get("image_size") or (meta.get("params") or {}).get("image_size")
        if meta.get("params_hash") != want or int(size or -1) != int(cfg["synth"]["image_size"]):
            out.append(Problem(
                "foreign_phantoms", str(root / meta["file"]),
                f"phantoms made for profile {meta.get('profile')!r} at {size} px (parameter hash "
                f"{meta.get('params_hash')}), but profile {cfg.get('profile')!r} needs {cfg['synth']['image_size']} px "
                f"(parameter hash {want})",
                f"`thtl-bench synth --profile {cfg.get('profile')}` (writes {cfg['data']['root']}), or point "
                f"data.root at this profile's own data"))
    return out


def verify(cfg: dict, regenerate: bool = True) -> list[str]:
    """Check the profile's data folder; returns lines to print, raises DataError on a mismatch.

    - With a DVC file: regenerate phantom data first when the folder is missing, then compare
      the folder's DVC hash with the file's.
    - Without one (e.g. real data mounted read-only, or phantoms of a profile nobody has added
      yet): accept the folder, print its content fingerprint and how to record it. Nothing is
      written into the data folder either way.
    - Phantoms made for another profile, image size or generator setting are refused, naming both.
    """
    from thtl_bench.data.phantoms import synth

    path, root = dvc_file_for(cfg), Path(cfg["data"]["root"])
    lines: list[str] = []
    if not path.is_file():
        if not root.is_dir():
            raise DataError(Problem("missing_root", str(root), f"{root} is missing and no {path} describes it",
                                    f"`thtl-bench synth --profile {cfg.get('profile')}` for phantoms, or put the data "
                                    f"set in {root} (or set data.root)"))
        bad = phantom_problems(cfg)
        if bad:
            raise DataError(bad)
        got = dvc_dir_hash(root)
        lines.append(f"note: no {path} records {root}; using it as found: {got['md5']} ({got['nfiles']} files, "
                     f"{got['size']} bytes). Record it with `thtl-bench data verify --update` (or `dvc add {root}`).")
        return lines
    doc = yaml.safe_load(path.read_text()) or {}
    want = (doc.get("outs") or [{}])[0]
    meta = doc.get("meta") or {}
    if not root.is_dir():
        if not (regenerate and meta.get("kind") == "phantom"):
            raise DataError(Problem("missing_root", str(root), f"{root} is missing and {path} does not describe "
                                    "phantom data", f"`dvc pull` or put the data set in {root}"))
        if meta.get("profile") not in (None, cfg.get("profile")):
            lines.append(f"note: {path} was made with profile {meta['profile']!r}, regenerating with {cfg.get('profile')!r}")
        synth(root, cfg["synth"], meta.get("domains") or profile_domains(cfg), profile=cfg.get("profile"))
        lines.append(f"regenerated phantom data in {root} (seed {cfg['synth']['seed']})")
    bad = phantom_problems(cfg)
    if bad:
        raise DataError(bad)
    got = dvc_dir_hash(root)
    diffs = [f"{k}: {want.get(k)} recorded, {got[k]} found" for k in ("md5", "nfiles", "size")
             if k in want and want[k] != got[k]]
    if diffs:
        raise DataError(Problem("dvc_mismatch", str(root), f"does not match {path}: " + "; ".join(diffs),
                                f"regenerate with the recorded settings (`thtl-bench synth --profile {cfg.get('profile')}`), "
                                f"`dvc checkout`, or, if the change is intended, `thtl-bench data verify --update` / "
                                f"`dvc add {root}`"))
    lines.append(f"{root} matches {path}: {got['md5']} ({got['nfiles']} files, {got['size']} bytes)")
    return lines
