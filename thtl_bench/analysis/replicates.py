"""From records to replicates: the per-sample test outcomes of each (seed, split) run, paired
across arms, as `inference.Replicate`s.

A cell is one (model, arm, domain, target share, intermediate share); its records are its
replicates, keyed (seed, split seed). Two cells are paired on the replicates they share: the
same training seed on the same split, hence the same test images and patients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from thtl_bench.analysis import fit, inference
from thtl_bench.records import Case

CellKey = tuple  # (model, arm, domain, target_fraction, intermediate_fraction)


def cell_key(rec: dict) -> CellKey:
    c = Case.of(rec)
    return c.model, c.arm, c.domain, float(c.target_fraction), float(c.intermediate_fraction)


def index(records: Iterable[dict], gate: fit.Gate | None = None) -> dict[CellKey, dict[tuple[int, int], dict]]:
    """{cell: {(seed, split): record}} of the ok records, each with `gate` (analysis.fit: the fit
    gate of the plan, a THTL child failing with its step 1; the default gate when none is given)."""
    out: dict[CellKey, dict[tuple[int, int], dict]] = {}
    for r in fit.gated(list(records), gate or fit.Gate()):
        if r["status"] == "ok":
            out.setdefault(cell_key(r), {})[Case.of(r).replicate] = r
    return out


def pool_size(rec: dict) -> int | None:
    """Patients in the target data set the record's splits were drawn from (train + val + test),
    or None when the record does not say (older records)."""
    pts = (rec.get("data") or {}).get("patients") or {}
    if not all(isinstance(pts.get(k), int) for k in ("train", "val", "test")):
        return None
    frac = float((rec.get("case") or {}).get("target_fraction", 1.0))
    if frac != 1.0:  # a training share: the train count is the share, the pool is not
        return None
    return int(pts["train"] + pts["val"] + pts["test"])


def samples(rec: dict) -> dict:
    """Per-sample test outcomes of a record: ids, patients, labels, preds (arg-max) and the
    positive class index (the domain's positive class, else 1 for two classes)."""
    pred = rec["predictions"]["test"]
    probs = np.asarray(pred["probs"], np.float64)
    classes = list((rec.get("data") or {}).get("classes") or [])
    positive = (rec.get("data") or {}).get("positive")
    pos = classes.index(positive) if positive in classes else (1 if probs.shape[1] == 2 else 0)
    ids = [str(i) for i in pred["ids"]]
    # Records without patient ids (older schema) count each image as its own patient.
    groups = [str(g) for g in pred.get("groups") or ids]
    return {"ids": ids, "patients": groups, "labels": np.asarray(pred["labels"], np.int64),
            "preds": probs.argmax(1), "positive": pos}


def cell_replicates(by_rep: dict[tuple[int, int], dict], metric: str) -> list[inference.Replicate]:
    """1-arm replicates of a cell for a ratio metric."""
    out = []
    for key in sorted(by_rep):
        s = samples(by_rep[key])
        out.append(inference.aligned_replicate(key, metric, [s], positive=s["positive"], split=key[1],
                                               pool=pool_size(by_rep[key])))
    return out


def paired_replicates(a: dict[tuple[int, int], dict], b: dict[tuple[int, int], dict],
                      metric: str) -> list[inference.Replicate]:
    """2-arm replicates (A, B) on the replicates both cells have."""
    return contrast_replicates([a, b], metric)


def contrast_replicates(cells: Sequence[dict[tuple[int, int], dict]], metric: str,
                        weights: Sequence[float] | None = None) -> list[inference.Replicate]:
    """Replicates of several cells (A, B, ...) on the replicates all of them have, with the
    claim's contrast `weights` (None: A - B)."""
    out = []
    for key in keys(cells):
        ss = [samples(c[key]) for c in cells]
        out.append(inference.aligned_replicate(key, metric, ss, positive=ss[0]["positive"], split=key[1],
                                               pool=pool_size(cells[0][key]), weights=weights))
    return out


def _failed(by_rep: dict[tuple[int, int], dict]) -> list[tuple[dict, bool]]:
    """(record, only its step 1 failed) of each replicate that fails the fit gate, in replicate order."""
    return [(r, bool(r["gate"].get("parent"))) for _, r in sorted(by_rep.items())
            if not (r.get("gate") or {}).get("ok", True)]


def undertrained(by_rep: dict[tuple[int, int], dict]) -> list[str]:
    """Slugs of the cell's replicates that fail the fit gate (or whose step 1 does), the latter
    marked "(step 1)"."""
    return [r["slug"] + (" (step 1)" if via else "") for r, via in _failed(by_rep)]


def undertrained_arms(by_rep: dict[tuple[int, int], dict]) -> list[str]:
    """The arm of each replicate failing the gate, "<arm>'s step 1" where only its parent does."""
    return [Case.of(r).arm + ("'s step 1" if via else "") for r, via in _failed(by_rep)]


def shared_all(cells: Sequence[dict[tuple[int, int], dict]]) -> list[dict]:
    """Cells cut to the replicates all of them have (the ones a contrast pairs)."""
    both = set(keys(cells))
    return [{k: v for k, v in c.items() if k in both} for c in cells]


def shared(a: dict[tuple[int, int], dict], b: dict[tuple[int, int], dict]) -> tuple[dict, dict]:
    """Cells `a` and `b` cut to the replicates both have (the ones a paired estimate uses)."""
    both = set(a) & set(b)
    return {k: v for k, v in a.items() if k in both}, {k: v for k, v in b.items() if k in both}


def values(by_rep: dict[tuple[int, int], dict], metric: str) -> list[float | None]:
    """The recorded test metric of each replicate (fractions), in replicate order."""
    return [(by_rep[k]["metrics"]["test"] or {}).get(metric) for k in sorted(by_rep)]


def keys(cells: Sequence[dict[tuple[int, int], dict]]) -> list[tuple[int, int]]:
    """Replicate keys shared by all `cells`."""
    common = set(cells[0]) if cells else set()
    for c in cells[1:]:
        common &= set(c)
    return sorted(common)
