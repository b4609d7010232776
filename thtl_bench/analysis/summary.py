"""Per model x arm statistics over seeds, SWFT step curves and provenance, from records only.

Records (thtl_bench.records) are the only input. Conventions: metric values stay fractions in
[0, 1] here; differences of claims are in percentage points (pp).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from thtl_bench import arms as arms_registry
from thtl_bench import catalog
from thtl_bench.analysis.intervals import _none_if_nan, t_interval
from thtl_bench.config import canonical_json, digest

# Test metrics summarised per domain (names of thtl_bench.metrics).
DOMAIN_METRICS = {
    "larynx": ("accuracy", "recall", "specificity", "precision", "f1", "auc"),
    "fundus": ("accuracy", "qwk"),
}
TIMING_KEYS = ("train_images_per_s", "inference_images_per_s", "wall_s", "epoch_s")
# env keys that are execution knobs (not library versions): listed apart in provenance.
EXEC_KEYS = ("deterministic", "threads", "precision", "channels_last", "compile")


# ----------------------------------------------------------------------------- ordering

def _registry(kind: str) -> list[str]:
    """Canonical names: thtl_bench.arms.NAMES / thtl_bench.catalog.MODELS."""
    return list(arms_registry.NAMES) if kind == "arms" else list(catalog.MODELS)


def canonical_order(kind: str, seen: Iterable[str], order: dict | None = None) -> list[str]:
    """Names in registry order; names the registry lacks follow in first-seen order.

    `order` ({"models": [...], "arms": [...]}) replaces the registry (golden tests pin it).
    """
    ref = list((order or {}).get(kind) or _registry(kind))
    seen = list(dict.fromkeys(seen))
    return [n for n in ref if n in seen] + [n for n in seen if n not in ref]


# ----------------------------------------------------------------------------- record helpers

def _case(rec: dict) -> tuple[str, str, int]:
    c = rec["case"]
    return c["model"], c["arm"], int(c["seed"])


def _ok(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r["status"] == "ok"]


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"a.b.c": leaf}; lists are leaves."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def lookup(flat: dict[str, Any], key: str) -> Any:
    """A dotted key in a flattened config: exact, else the unique key ending in ".<key>"
    (configs nested one level deeper); None when absent or ambiguous."""
    if key in flat:
        return flat[key]
    hits = [k for k in flat if k.endswith("." + key)]
    return flat[hits[0]] if len(hits) == 1 else None


def outcomes(rec: dict) -> dict:
    """Per-sample test outcomes of a record: ids, labels, predicted class, positive flags."""
    pred = rec["predictions"]["test"]
    probs = np.asarray(pred["probs"], np.float64)
    labels = np.asarray(pred["labels"], np.int64)
    data = rec.get("data", {})
    classes = list(data.get("classes") or [])
    positive = data.get("positive")
    pos_idx = classes.index(positive) if positive in classes else (1 if probs.shape[1] == 2 else None)
    return {
        "ids": [str(i) for i in pred["ids"]],
        "labels": labels,
        "correct": probs.argmax(1) == labels,
        "positive": labels == pos_idx if pos_idx is not None else np.zeros(len(labels), bool),
    }


# ----------------------------------------------------------------------------- summarise

def summarise(records: Sequence[dict], cfg: dict, order: dict | None = None) -> dict:
    """Per model x arm: seeds, mean, std and t-interval over seeds of each test metric.

    Returns {"models", "arms", "cells": [...], "not_run": [...]}; cells follow the canonical
    (model, arm) order and hold each metric's per-seed values (compare's Welch test uses them).
    """
    conf = float(cfg["stats"]["confidence"])
    models = canonical_order("models", [_case(r)[0] for r in records], order)
    arms = canonical_order("arms", [_case(r)[1] for r in records], order)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in _ok(records):
        m, a, _ = _case(r)
        groups[(m, a)].append(r)
    cells = []
    for m in models:
        for a in arms:
            recs = sorted(groups.get((m, a), []), key=lambda r: _case(r)[2])
            if recs:
                cells.append(_cell(m, a, recs, conf))
    not_run = [
        {"model": m, "arm": a, "seed": s, "reason": r.get("reason") or "no reason recorded"}
        for r in sorted((r for r in records if r["status"] != "ok"),
                        key=lambda r: (models.index(_case(r)[0]), arms.index(_case(r)[1]), _case(r)[2]))
        for m, a, s in [_case(r)]
    ]
    return {"models": models, "arms": arms, "cells": cells, "not_run": not_run}


def _cell(model: str, arm: str, recs: list[dict], conf: float) -> dict:
    domain = recs[0].get("data", {}).get("domain", "larynx")
    metrics = {}
    for name in DOMAIN_METRICS.get(domain, ("accuracy",)):
        values = [r["metrics"]["test"].get(name) for r in recs]
        st = t_interval(values, conf)
        st["values"] = [_none_if_nan(v) for v in values]
        metrics[name] = st
    conf_mats = [np.asarray(r["metrics"]["test"]["confusion"]) for r in recs
                 if r["metrics"]["test"].get("confusion") is not None]
    timing = {}
    for key in TIMING_KEYS:
        values = [r.get("timing", {}).get(key) for r in recs]
        st = t_interval(values, conf)
        timing[key] = {"mean": st["mean"], "std": st["std"], "values": values}
    return {
        "model": model,
        "arm": arm,
        "domain": domain,
        "seeds": [_case(r)[2] for r in recs],
        "n": len(recs),
        "metrics": metrics,
        "confusion_sum": np.sum(conf_mats, axis=0).tolist() if conf_mats else None,
        "timing": timing,
        "devices": sorted({_device(r) for r in recs}),
        "image_size": sorted({r.get("data", {}).get("image_size") for r in recs}, key=str),
    }


def _device(rec: dict) -> str:
    env = rec.get("env", {})
    dev, name = env.get("device"), env.get("device_name")
    return f"{dev} ({name})" if name and name != dev else str(dev)


# ----------------------------------------------------------------------------- SWFT curves

def _acc(x: Any) -> float | None:
    """A SWFT step's split entry: a metrics dict (its accuracy) or a bare accuracy."""
    if isinstance(x, dict):
        return x.get("accuracy")
    return x


def swft_curves(records: Sequence[dict], models: list[str]) -> list[dict]:
    """Per model: val/test accuracy per SWFT step, mean and std over seeds."""
    out = []
    for m in models:
        recs = [r for r in _ok(records) if _case(r)[:2] == (m, "swft") and r.get("swft_steps")]
        if not recs:
            continue
        steps: dict[int, dict] = {}
        for r in sorted(recs, key=lambda r: _case(r)[2]):
            for st in r["swft_steps"]:
                e = steps.setdefault(int(st["step"]), {"groups": st.get("groups"), "val": [], "test": [],
                                                       "selected": 0, "epochs": []})
                e["val"].append(_acc(st.get("val")))
                e["test"].append(_acc(st.get("test")))
                e["epochs"].append(st.get("epochs"))
                e["selected"] += bool(st.get("selected"))
        rows = []
        for k in sorted(steps):
            e = steps[k]
            v, t = t_interval(e["val"]), t_interval(e["test"])
            rows.append({"step": k, "groups": e["groups"], "n": v["n"],
                         "val_mean": v["mean"], "val_std": v["std"],
                         "test_mean": t["mean"], "test_std": t["std"],
                         "selected": e["selected"]})
        out.append({"model": m, "steps": rows})
    return out


# ----------------------------------------------------------------------------- provenance

def provenance(records: Sequence[dict]) -> dict:
    """What produced the records: profiles, data kind and fingerprints, devices, versions."""
    ok = _ok(records)

    def distinct(values: Iterable[Any]) -> list:
        return sorted({canonical_json(v) for v in values if v is not None})

    libs: dict[str, set] = defaultdict(set)
    execution: dict[str, set] = defaultdict(set)
    for r in ok:
        for k, v in (r.get("env") or {}).items():
            if k in EXEC_KEYS:
                execution[k].add(canonical_json(v))
            elif k not in ("device", "device_name", "platform", "git_commit"):
                libs[k].add(str(v))
    fps = defaultdict(set)
    for r in ok:
        d = r.get("data", {})
        fps[d.get("domain", "?")].add(str(d.get("fingerprint")))
    classes = {}
    for r in ok:
        d = r.get("data", {})
        classes.setdefault(d.get("domain", "?"), d.get("classes"))
    created = sorted(r.get("created", "") for r in records)
    return {
        "n_records": len(records),
        "n_ok": len(ok),
        "n_not_run": len(records) - len(ok),
        "records_digest": digest(sorted(r["case_id"] for r in records)),
        "profiles": sorted({r["case"]["profile"] for r in records}),
        "data_kinds": sorted({str(r.get("data", {}).get("kind")) for r in ok}),
        "data_fingerprints": {k: sorted(v) for k, v in sorted(fps.items())},
        "classes": dict(sorted(classes.items())),
        "image_sizes": sorted({r.get("data", {}).get("image_size") for r in ok}, key=str),
        "devices": sorted({_device(r) for r in ok}),
        "platforms": sorted({str(r.get("env", {}).get("platform")) for r in ok}),
        "record_git_commits": sorted({str(r.get("env", {}).get("git_commit")) for r in ok}),
        "deterministic": distinct(r.get("env", {}).get("deterministic") for r in ok),
        "execution": {k: sorted(v) for k, v in sorted(execution.items())},
        "libraries": {k: sorted(v) for k, v in sorted(libs.items())},
        "created": [created[0], created[-1]] if created else None,
        "fixture": any(r.get("fixture") for r in records),
    }


def config_values(records: Sequence[dict]) -> dict[str, list]:
    """Every flattened config key of the ok records -> its distinct values (sorted)."""
    vals: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in _ok(records):
        for k, v in flatten(r.get("config") or {}).items():
            vals[k][canonical_json(v)] = v
    return {k: [v[s] for s in sorted(v)] for k, v in sorted(vals.items())}


def train_by_arm(records: Sequence[dict], arms: Sequence[str]) -> dict[str, dict[str, list]]:
    """Per arm (given order): its ok records' flattened `train.*` config keys -> distinct values.

    The engine records only the training parameters an arm uses (engine.case._train_subset):
    its own head/body lrs and epoch budget (`train.max_epochs`: per step for SWFT, the
    last-layer budget for head arms), so these differ between arms and are read per arm.
    """
    out: dict[str, dict[str, list]] = {}
    for a in arms:
        vals = config_values([r for r in records if _case(r)[1] == a])
        train = {k: v for k, v in vals.items() if k.startswith("train.")}
        if train:
            out[a] = train
    return out
