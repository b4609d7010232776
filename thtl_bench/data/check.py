"""`data check` (every problem of a data folder at once) and `data verify` (the data folder vs dvc.lock).

The check decodes every image, so it finds what training would trip over, and it looks for
shortcuts: if the original image size predicts the class better than the majority rate, a
model could learn the camera instead of the vessels unless all images get one geometry.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from thtl_bench.config import digest
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
from thtl_bench.io import dvc_lock_output


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
        report["split_digests"] = {}
        for k in seeds:
            fresh = splits_mod.compute(cfg, [s.id for s in samples], [s.label for s in samples],
                                       [s.group for s in samples], h, k)
            report["split_digests"][str(k)] = digest(fresh, 16)  # the split files stand for these rows
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
# A profile's data folder is the output of dvc.yaml's `synth` stage, data/<profile>: DVC hashes it and
# dvc.lock records the hash (`dvc status` compares). Outside DVC (benchmarks, nox, the CLI), `verify`
# reads that record and hashes the folder with DVC's own code (dvc-data): nothing here re-implements DVC.


def lock_path(cfg: dict) -> Path:
    """dvc.lock beside the parameter file (the repository root)."""
    return Path(cfg.get("_params_file") or "params.yaml").parent / "dvc.lock"


def recorded(cfg: dict) -> tuple[str, dict, dict] | None:
    """(stage, out entry, params entry) of the dvc.lock output that is this profile's data folder
    (dvc.yaml's synth stage for data/<profile>), or None when the lock records no such output."""
    try:
        return dvc_lock_output(lock_path(cfg), cfg["data"]["root"])
    except ValueError as exc:
        raise DataError(Problem("bad_lock", str(lock_path(cfg)), str(exc), "see the message")) from exc


def recorded_recipe(cfg: dict, params: dict) -> dict | None:
    """The synth section (and domains) the lock's stage was run with: its `synth` params merged
    with the profile's own overrides, as config.load merges them; None if the lock lacks them."""
    from thtl_bench.config import deep_merge

    if "synth" not in params:
        return None
    prof = params.get(f"profiles.{cfg.get('profile')}") or {}
    domains_ = (prof.get("grid") or {}).get("domains", params.get("grid.domains"))
    return {"synth": deep_merge(params["synth"], prof.get("synth") or {}), "domains": domains_}


def dvc_hash(root: Path) -> dict:
    """DVC's hash of a folder, by DVC's own code (dvc-data's build, what `dvc status` computes for an
    output): md5 (`<hex>.dir`), size, nfiles."""
    import tempfile

    try:
        from dvc_data.hashfile.build import build
        from dvc_data.hashfile.db import HashFileDB
        from dvc_objects.fs.local import LocalFileSystem
    except ImportError as exc:
        raise DataError(Problem("no_dvc", str(root), f"cannot compare the folder with dvc.lock: DVC is not "
                                f"installed ({exc})", "pip install -r requirements/dev.txt")) from exc
    fs = LocalFileSystem()
    with tempfile.TemporaryDirectory() as tmp:
        _, meta, obj = build(HashFileDB(fs, tmp), str(root), fs, "md5", dry_run=True)
    return {"md5": obj.hash_info.value, "size": meta.size, "nfiles": meta.nfiles}


def profile_domains(cfg: dict) -> list[str]:
    """The domains a profile's data folder holds: the target and the grid's intermediate domains."""
    from thtl_bench import domains

    want = {domains.TARGET, *cfg["grid"]["domains"]}
    return [d for d in domains.NAMES if d in want]


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

    - A missing folder of phantoms (data.kind phantom) is regenerated first (deterministic: the
      same bytes on every CPU, docs/phantoms.md); missing real data is an error.
    - Phantoms made for another profile, image size or generator setting are refused, naming both.
    - When dvc.lock records the folder as a stage output made with this recipe, the folder must
      have that DVC hash; without such a record (real data, another recipe, no `dvc repro` yet)
      it is used as found. Nothing is written into an existing data folder.
    """
    from thtl_bench.data.phantoms import synth

    root, lock = Path(cfg["data"]["root"]), lock_path(cfg)
    profile = cfg.get("profile")
    lines: list[str] = []
    if not root.is_dir():
        if not (regenerate and cfg["data"].get("kind") == "phantom"):
            raise DataError(Problem("missing_root", str(root), "the data folder is missing",
                                    f"`dvc pull synth` or put the data set in {root}" if cfg["data"].get("kind") == "real"
                                    else f"`thtl-bench synth --profile {profile}` (or `dvc repro synth`)"))
        synth(root, cfg["synth"], profile_domains(cfg), profile=profile)
        lines.append(f"regenerated phantom data in {root} (seed {cfg['synth']['seed']})")
    bad = phantom_problems(cfg)
    if bad:
        raise DataError(bad)
    found = recorded(cfg)
    if found is None:
        lines.append(f"note: {lock} records no stage output {root} (dvc.yaml's synth stage writes data/<profile>; "
                     f"`dvc repro synth` records it): using the folder as found")
        return lines
    stage, want, params = found
    recipe = recorded_recipe(cfg, params)
    if recipe is not None and recipe != {"synth": cfg["synth"], "domains": cfg["grid"]["domains"]}:
        lines.append(f"note: {lock} (stage {stage}) records {root} for other synth parameters than these; not compared")
        return lines
    got = dvc_hash(root)
    if got["md5"] != want.get("md5"):
        raise DataError(Problem(
            "dvc_mismatch", str(root),
            f"does not match {lock} (stage {stage}): md5 {want.get('md5')} ({want.get('nfiles')} files) recorded, "
            f"{got['md5']} ({got['nfiles']} files) found",
            f"`dvc repro {stage}` (regenerates phantoms, or says which input changed); for real data `dvc checkout "
            f"{stage}`, or `dvc commit {stage}` if the change is intended"))
    lines.append(f"{root} matches {lock} (stage {stage}): {got['md5']} ({got['nfiles']} files, {got['size']} bytes)")
    return lines
