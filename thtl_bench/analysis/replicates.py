"""From records to replicates: the per-sample test outcomes of each (seed, split) run, paired
across arms, as `inference.Replicate`s.

A cell is one (model, arm, domain, target share, intermediate share); its records are its
replicates, keyed (seed, split seed). Two cells are paired on the replicates they share: the
same training seed on the same split, hence the same test images and patients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from thtl_bench.analysis import inference
from thtl_bench.records import Case

CellKey = tuple  # (model, arm, domain, target_fraction, intermediate_fraction)


def cell_key(rec: dict) -> CellKey:
    c = Case.of(rec)
    return c.model, c.arm, c.domain, float(c.target_fraction), float(c.intermediate_fraction)


def index(records: Iterable[dict]) -> dict[CellKey, dict[tuple[int, int], dict]]:
    """{cell: {(seed, split): record}} of the ok records (THTL children of an under-trained step 1
    marked so: inherit_fit)."""
    out: dict[CellKey, dict[tuple[int, int], dict]] = {}
    for r in inherit_fit(list(records)):
        if r["status"] == "ok":
            out.setdefault(cell_key(r), {})[Case.of(r).replicate] = r
    return out


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
        out.append(inference.aligned_replicate(key, metric, [s], positive=s["positive"], split=key[1]))
    return out


def paired_replicates(a: dict[tuple[int, int], dict], b: dict[tuple[int, int], dict],
                      metric: str) -> list[inference.Replicate]:
    """2-arm replicates (A, B) on the replicates both cells have."""
    out = []
    for key in sorted(set(a) & set(b)):
        sa, sb = samples(a[key]), samples(b[key])
        out.append(inference.aligned_replicate(key, metric, [sa, sb], positive=sa["positive"], split=key[1]))
    return out


def inherit_fit(records: Sequence[dict]) -> list[dict]:
    """`records` with a THTL child marked under-trained where its step-1 parent is: a child of an
    intermediate domain that step 1 never learned transfers nothing of it, so a claim on the child
    would rest on an under-trained stage. The child's own fit stays in `fit` (`own_ok`)."""
    by_id = {r["case_id"]: r for r in records if r.get("status") == "ok" and r.get("case_id")}
    out = []
    for r in records:
        link = r.get("parent") if isinstance(r.get("parent"), dict) else {}
        # by case_id, not slug: a re-run step 1 (other settings, same slug) is not this child's parent
        parent = by_id.get(link.get("case_id")) if link.get("case_id") else None
        fit = r.get("fit") or {}
        if parent is not None and (parent.get("fit") or {}).get("ok") is False and fit.get("ok") is not False:
            r = {**r, "fit": {**fit, "ok": False, "own_ok": fit.get("ok"),
                              "parent_undertrained": parent.get("slug") or parent["case_id"]}}
        out.append(r)
    return out


def _failed(by_rep: dict[tuple[int, int], dict]) -> list[tuple[dict, bool]]:
    """(record, only its step 1 failed) of each under-trained replicate, in replicate order."""
    return [(r, bool(r["fit"].get("parent_undertrained"))) for _, r in sorted(by_rep.items())
            if (r.get("fit") or {}).get("ok") is False]


def undertrained(by_rep: dict[tuple[int, int], dict]) -> list[str]:
    """Slugs of the cell's replicates that did not reach their training fit (or whose step 1 did
    not: inherit_fit), the latter marked "(step 1)"."""
    return [r["slug"] + (" (step 1)" if via else "") for r, via in _failed(by_rep)]


def undertrained_arms(by_rep: dict[tuple[int, int], dict]) -> list[str]:
    """The arm of each under-trained replicate, "<arm>'s step 1" where only its parent is."""
    return [Case.of(r).arm + ("'s step 1" if via else "") for r, via in _failed(by_rep)]


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
