"""Aggregation of records: per model x arm statistics over seeds, claims, SWFT curves, speed.

Records (thtl_bench.records) are the only input. `aggregate` builds the full summary dict that
`thtl-bench aggregate` writes to `report.dir/summary.json`; `report` and `compare` read that
dict, so there is one aggregation path. The summary depends on the records and the `stats:` /
`report.projection` parameters only (no dates, no paths), so it is deterministic.

Conventions: metric values stay fractions in [0, 1] here; differences of claims are in
percentage points (pp). A statistic that cannot be computed (one seed, undefined metric) is
None, never NaN, so the JSON stays valid.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from thtl_bench.config import canonical_json, digest
from thtl_bench.errors import UserError

SUMMARY_SCHEMA = "thtl-bench/summary/v1"

# Test metrics summarised per domain (names of thtl_bench.metrics).
DOMAIN_METRICS = {
    "larynx": ("accuracy", "recall", "specificity", "precision", "f1", "auc"),
    "fundus": ("accuracy", "qwk"),
}
TIMING_KEYS = ("train_images_per_s", "inference_images_per_s", "wall_s", "epoch_s")
# env keys that are execution knobs (not library versions): listed apart in provenance.
EXEC_KEYS = ("deterministic", "threads", "precision", "channels_last", "compile")


# ----------------------------------------------------------------------------- small statistics

def _clean(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _none_if_nan(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample std (ddof=1) and the two-sided Student-t interval of the mean.

    With one value the std and interval are None; with zero spread the interval is the point.
    """
    x = np.asarray(_clean(values), np.float64)
    n = len(x)
    out = {"n": n, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    if n == 0:
        return out
    out["mean"] = float(x.mean())
    if n < 2:
        return out
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    out.update(std=sd, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def paired(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Paired difference a - b: t-interval of the mean difference and ttest_rel's p-value."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError("paired samples need equal lengths")
    out = t_interval(a - b, confidence)
    out["p"] = None
    if len(a) >= 2:
        d = a - b
        if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
            # Constant differences: ttest_rel is undefined (0/0); zero difference is p = 1.
            out["p"] = 1.0 if abs(d[0]) <= 1e-12 else 0.0
        else:
            out["p"] = _none_if_nan(float(sps.ttest_rel(a, b).pvalue))
    return out


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test p-value; None with fewer than two values on a side."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return None
    if np.std(a) == 0 and np.std(b) == 0:
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    return _none_if_nan(float(sps.ttest_ind(a, b, equal_var=False).pvalue))


def bootstrap_paired(num_a: np.ndarray, num_b: np.ndarray, den: np.ndarray, *, n_boot: int,
                     seed: int, confidence: float = 0.95) -> dict:
    """Paired bootstrap over test images of a seed-averaged metric difference.

    A metric of one (arm, seed) is sum(num[i]) / sum(den[i]) over images i: accuracy takes
    num = correct, den = 1; malignant recall num = correct & malignant, den = malignant.
    `num_a`, `num_b` are (seeds, images) for the two arms on the same images in the same order;
    `den` (images,) is shared (same labels). Each resample draws image indices once, jointly for
    both arms and all seeds (multinomial counts = resampling with replacement), and the statistic
    is mean over seeds of metric_a - metric_b, in pp; also the relative change (%) of the
    seed-averaged metrics. Percentile intervals; resamples with an empty denominator are dropped.
    """
    num_a = np.atleast_2d(np.asarray(num_a, np.float64))
    num_b = np.atleast_2d(np.asarray(num_b, np.float64))
    den = np.asarray(den, np.float64)
    n = den.shape[0]
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    ma, mb = num_a.mean(0), num_b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = w @ den
        diff = 100.0 * (w @ (ma - mb)) / d
        rel = 100.0 * ((w @ ma) / (w @ mb) - 1.0)
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    diff = diff[np.isfinite(diff)]
    rel = rel[np.isfinite(rel)]
    point_d = float(den.sum())
    return {
        "n_boot": int(n_boot),
        "n_valid": int(len(diff)),
        "diff_pp": 100.0 * float((ma - mb).sum()) / point_d if point_d else None,
        "ci_pp": [float(v) for v in np.percentile(diff, q)] if len(diff) else None,
        "rel_ci_pct": [float(v) for v in np.percentile(rel, q)] if len(rel) else None,
    }


# ----------------------------------------------------------------------------- ordering

def _registry(kind: str) -> list[str]:
    """Canonical names from thtl_bench.arms.ARMS / thtl_bench.models.MODELS (imported lazily)."""
    try:
        if kind == "arms":
            from thtl_bench.arms import ARMS as reg
        else:
            from thtl_bench.models import MODELS as reg
    except ImportError:
        return []
    return [n if isinstance(n, str) else getattr(n, "name", str(n)) for n in reg]


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


# ----------------------------------------------------------------------------- speed projection

def _projection_settings(cfg: dict) -> dict:
    """The paper-profile run to project: report.projection keys, completed from its profile."""
    p = dict(cfg.get("report", {}).get("projection") or {})
    prof = p.get("profile")
    if prof:
        from thtl_bench import config

        pc = config.load(cfg.get("_params_file"), profile=prof)
        p.setdefault("models", list(pc["grid"]["models"]))
        p.setdefault("arms", list(pc["grid"]["arms"]))
        p.setdefault("seeds", len(pc["grid"]["seeds"]))
        p.setdefault("image_size", int(pc["data"]["image_size"]))
        p.setdefault("max_epochs", int(pc["train"]["max_epochs"]))
        p.setdefault("swft_max_epochs", int(pc["train"]["swft_max_epochs"]))
    need = ("models", "arms", "seeds", "image_size", "max_epochs", "swft_max_epochs",
            "fundus_images", "larynx_images")
    missing = [k for k in need if p.get(k) is None]
    if missing:
        raise UserError(f"params.yaml report.projection lacks {missing} (set them or name a profile)")
    if isinstance(p["seeds"], list):
        p["seeds"] = len(p["seeds"])
    return p


def _size_ratio(model: str, size: int, target: int) -> tuple[float, str]:
    """Compute at `target` px over compute at `size` px for `model`: counted forward FLOPs
    (thtl_bench.flops) when the model is in the registry, else the pixel-count ratio."""
    from thtl_bench import flops

    f_to, f_from = flops.per_image(model, int(target)), flops.per_image(model, int(size))
    if f_to and f_from:
        return f_to / f_from, "flops"
    return (float(target) / float(size)) ** 2, "pixels"


def _head_only(arm: str) -> bool:
    from thtl_bench import arms

    try:
        return arms.get(arm).trainable == "head"
    except UserError:  # an arm this version does not know: no special case
        return False


def _case_projection(rec: dict, p: dict) -> dict | None:
    """Seconds this case would take at the projected size, scaled from its measured time.

    Every part scales with the image count. Epoch time (sum of history seconds) also scales with
    the epoch budget and with compute per image (the model's counted forward FLOPs at each size),
    except for a head-only arm on cached features: its epochs train a linear layer on pooled
    features whose size does not depend on the image size. The rest of the wall time (frozen-
    feature cache, evaluation, setup) scales with compute per image.
    """
    t = rec.get("timing", {})
    wall = t.get("wall_s")
    data = rec.get("data", {})
    n = sum((data.get("n") or {}).values())
    size = data.get("image_size")
    if wall is None or not n or not size:
        return None
    flat = flatten(rec.get("config", {}))
    model, arm = _case(rec)[:2]
    key = "swft_max_epochs" if arm == "swft" else "max_epochs"
    # The engine records an arm's own budget as train.max_epochs (per step for SWFT).
    budget = (lookup(flat, f"train.{key}") or lookup(flat, "train.max_epochs")
              or len(rec.get("history") or []) or None)
    epoch_s = sum(float(h.get("seconds") or 0) for h in rec.get("history") or [])
    epoch_s = min(epoch_s, float(wall))
    domain = data.get("domain", "larynx")
    r_n = float(p[f"{domain}_images"]) / n
    r_px, how = _size_ratio(model, int(size), int(p["image_size"]))
    r_e = float(p[key]) / float(budget) if budget else 1.0
    r_epoch_px = 1.0 if t.get("feature_cache") and _head_only(arm) else r_px
    return {"seconds": epoch_s * r_n * r_epoch_px * r_e + (float(wall) - epoch_s) * r_n * r_px,
            "r_images": r_n, "r_compute": r_px, "compute_scale": how, "r_epochs": r_e}


def _geomean(values: Iterable[float]) -> float | None:
    v = [math.log(x) for x in values if x and x > 0]
    return math.exp(sum(v) / len(v)) if v else None


def _connected(cells: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The largest group of (model, arm) cells linked through shared models or arms: only
    within one such group are model and arm factors on a common scale."""
    cells = list(cells)
    groups: list[set] = []
    todo = set(cells)
    while todo:
        group, frontier = set(), [todo.pop()]
        while frontier:
            m, a = frontier.pop()
            group.add((m, a))
            linked = {c for c in todo if c[0] == m or c[1] == a}
            todo -= linked
            frontier += linked
        groups.append(group)
    return max(groups, key=lambda g: (len(g), sorted(g)), default=set())


def _factors(cells: dict[tuple[str, str], float], iters: int = 100) -> tuple[dict[str, float], dict[str, float]]:
    """Fit seconds(model, arm) ~ M[model] x A[arm] to the measured cells of the largest connected
    group (least squares in log space by alternating geometric means; exact when the measured
    times are multiplicative). Cells of other groups and cells of 0 s are left out."""
    logs = {k: math.log(v) for k, v in cells.items() if v > 0}
    logs = {k: logs[k] for k in sorted(_connected(logs))}  # sorted: set order varies by process
    ms, arms = sorted({m for m, _ in logs}), sorted({a for _, a in logs})
    lm = {m: float(np.mean([v for (mm, _), v in logs.items() if mm == m])) for m in ms}
    la = {a: 0.0 for a in arms}
    for _ in range(iters):
        la = {a: float(np.mean([v - lm[m] for (m, aa), v in logs.items() if aa == a])) for a in arms}
        lm = {m: float(np.mean([v - la[a] for (mm, a), v in logs.items() if mm == m])) for m in ms}
    return {m: math.exp(v) for m, v in lm.items()}, {a: math.exp(v) for a, v in la.items()}


def projection(records: Sequence[dict], cfg: dict, order: dict | None = None) -> dict:
    """Projected cost of the paper profile from measured per-case times (see _case_projection).

    GPU records are used when any exist, else CPU ones. A measured (model, arm) costs the mean
    of its projected case times; a missing one is estimated from a fit seconds ~ model factor x
    arm factor (_factors): a measured model keeps its own factor, a model never measured gets
    one from its forward FLOPs at the projected size times the measured models' factor per FLOP
    (their geometric mean; `total_hours_range` uses the lowest and the highest instead). Per
    model: the sum over the paper's arms, times the number of seeds. A cell that cannot be
    estimated is listed in `unpriced`, and the total is then incomplete (`complete` false).
    """
    from thtl_bench import flops

    p = _projection_settings(cfg)
    ok = [r for r in _ok(records) if (r.get("timing") or {}).get("wall_s") is not None]
    gpu = [r for r in ok if str(r.get("env", {}).get("device", "")).startswith("cuda")]
    used = gpu or ok
    out: dict[str, Any] = {"settings": {k: p[k] for k in sorted(p) if k != "profile"},
                           "profile": p.get("profile"), "basis": "gpu" if gpu else "cpu",
                           "devices": sorted({_device(r) for r in used}),
                           "measured_image_sizes": sorted({r["data"].get("image_size") for r in used}, key=str),
                           "compute_scale": [], "per_model": [], "total_hours": None}
    per: dict[tuple[str, str], list[float]] = defaultdict(list)
    scales = set()
    for r in used:
        cp = _case_projection(r, p)
        if cp:
            per[_case(r)[:2]].append(cp["seconds"])
            scales.add(cp["compute_scale"])
    if not per:
        return out
    out["compute_scale"] = sorted(scales)
    cells = {k: float(np.mean(v)) for k, v in per.items()}
    mf, af = _factors(cells)
    measured_models = canonical_order("models", [m for m, _ in cells], order)
    fl = {m: flops.per_image(m, int(p["image_size"])) for m in dict.fromkeys(measured_models + list(p["models"]))}
    rates = {m: mf[m] / fl[m] for m in measured_models if m in mf and fl.get(m)}
    per_flop = {"mean": _geomean(rates.values()), "low": min(rates.values(), default=None),
                "high": max(rates.values(), default=None)}
    totals = {"mean": 0.0, "low": 0.0, "high": 0.0}
    seeds = p["seeds"] / 3600.0
    for m in measured_models + [m for m in p["models"] if m not in measured_models]:
        measured = {a: cells[(m, a)] for a in p["arms"] if (m, a) in cells}
        own = mf.get(m)

        def estimate(rate: float | None, m=m, own=own, measured=measured) -> dict[str, float]:
            factor = own if own is not None else (rate * fl[m] if rate and fl.get(m) else None)
            return {a: factor * af[a] for a in p["arms"] if a not in measured and factor and a in af}

        estimated = estimate(per_flop["mean"])
        unpriced = [a for a in p["arms"] if a not in measured and a not in estimated]
        hours = (sum(measured.values()) + sum(estimated.values())) * seeds
        out["per_model"].append({
            "model": m, "in_paper_grid": m in p["models"], "measured": bool(measured),
            "gflop_per_image": fl[m] / 1e9 if fl.get(m) else None,
            "hours": hours, "estimated_hours": sum(estimated.values()) * seeds,
            "arm_case_hours": {a: (measured[a] if a in measured else estimated[a]) / 3600.0
                               for a in p["arms"] if a not in unpriced},
            "arms_measured": list(measured), "arms_estimated": list(estimated), "arms_missing": unpriced})
        if m in p["models"]:
            totals["mean"] += hours
            for bound in ("low", "high"):
                totals[bound] += (sum(measured.values()) + sum(estimate(per_flop[bound]).values())) * seeds
    paper = [e for e in out["per_model"] if e["in_paper_grid"]]
    out["unmeasured_models"] = [e["model"] for e in paper if not e["measured"]]
    out["unpriced"] = [f"{e['model']}/{a}" for e in paper for a in e["arms_missing"]]
    out["complete"] = not out["unpriced"]
    out["total_hours"] = totals["mean"]
    out["total_hours_range"] = [totals["low"], totals["high"]]
    out["estimated_hours"] = sum(e["estimated_hours"] for e in paper)
    out["seconds_per_gflop"] = {m: r * 1e9 for m, r in rates.items()}
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


# ----------------------------------------------------------------------------- the aggregate

def claims(records: Sequence[dict], cfg: dict, order: dict | None = None) -> list[dict]:
    """C1..C5 of paper.md per model (see thtl_bench.claims)."""
    from thtl_bench import claims as _claims

    return _claims.evaluate(records, cfg, order)


def aggregate(records: Sequence[dict], cfg: dict, order: dict | None = None) -> dict:
    """The full summary: the one aggregation path behind summary.json, REPORT.md and compare."""
    if not records:
        raise UserError("no records to aggregate: run `thtl-bench grid` first or point at a records folder")
    summ = summarise(records, cfg, order)
    order = {"models": summ["models"], "arms": summ["arms"]}
    return {
        "schema": SUMMARY_SCHEMA,
        "stats_params": {k: cfg["stats"][k] for k in sorted(cfg["stats"])},
        "provenance": provenance(records),
        **summ,
        "claims": claims(records, cfg, order),
        "swft": swft_curves(records, summ["models"]),
        "projection": projection(records, cfg, order),
        "config": config_values(records),
        "train_by_arm": train_by_arm(records, summ["arms"]),
    }


def write_summary(summary: dict, path: str | Path) -> Path:
    from thtl_bench.records import atomic_write_json

    atomic_write_json(path, summary)
    return Path(path)


def load_summary(path: str | Path) -> dict:
    path = Path(path)
    try:
        s = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read summary JSON ({exc}); run `thtl-bench aggregate`") from exc
    if not isinstance(s, dict) or s.get("schema") != SUMMARY_SCHEMA:
        raise UserError(f"{path}: not a thtl-bench summary ({SUMMARY_SCHEMA}); run `thtl-bench aggregate`")
    return s


def cell(summary: dict, model: str, arm: str) -> dict | None:
    for c in summary["cells"]:
        if c["model"] == model and c["arm"] == arm:
            return c
    return None
