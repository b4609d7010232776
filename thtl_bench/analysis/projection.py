"""Projected cost of a profile's whole grid (e.g. the paper's), two ways.

- `from_records`: measured per-case times, scaled to the projected sizes by counted FLOPs (and
  models never measured estimated from their FLOPs);
- `flop_projection`: the grid's training FLOPs counted stage by stage (which stages train, which
  are a cached frozen prefix, at the fewest and the most epochs the budget rule allows) divided by
  an achieved FLOP rate: the GPU's peak x an assumed model-FLOP utilisation (MFU) range, stated
  with its source, until scripts/gpu_check.sh measures the rate on a card.

Inputs: the records and the FLOP artefact `report/flops.json` the running side writes
(`thtl-bench flops`: forward FLOPs per image of each model at the measured and projected sizes,
every projected model's stages, and the projected profile's settings), so this module needs no
model code.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from thtl_bench import arms
from thtl_bench.analysis.summary import _case, _device, _ok, canonical_order, flatten, lookup


def per_image(counts: dict, model: str, size: int) -> int | None:
    """Forward FLOPs per image of `model` at `size` px from the FLOP artefact, None if not counted."""
    v = ((counts.get("per_image") or {}).get(model) or {}).get(str(int(size)))
    return int(v) if v else None


def _size_ratio(counts: dict, model: str, size: int, target: int) -> tuple[float, str]:
    """Compute at `target` px over compute at `size` px for `model`: counted forward FLOPs
    (the FLOP artefact) when both are counted, else the pixel-count ratio."""
    f_to, f_from = per_image(counts, model, int(target)), per_image(counts, model, int(size))
    if f_to and f_from:
        return f_to / f_from, "flops"
    return (float(target) / float(size)) ** 2, "pixels"


def _head_only(arm: str) -> bool:
    a = arms.ARMS.get(arm)  # an arm this version does not know: no special case
    return a is not None and a.trainable == "head"


def _case_projection(rec: dict, p: dict, counts: dict) -> dict | None:
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
    key = "max_epochs"  # one budget rule for every stage (arms.BUDGET_RULE), SWFT steps included
    budget = lookup(flat, "train.max_epochs") or len(rec.get("history") or []) or None
    epoch_s = sum(float(h.get("seconds") or 0) for h in rec.get("history") or [])
    epoch_s = min(epoch_s, float(wall))
    domain = data.get("domain", "larynx")
    if f"{domain}_images" not in p:  # step 1 on a control domain (angio, ...): not a cell of the paper's study
        return None
    r_n = float(p[f"{domain}_images"]) / n
    r_px, how = _size_ratio(counts, model, int(size), int(p["image_size"]))
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


def from_records(records: Sequence[dict], counts: dict | None, order: dict | None = None) -> dict:
    """Projected cost of the paper profile from measured per-case times (see _case_projection).

    GPU records are used when any exist, else CPU ones. A measured (model, arm) costs the mean
    of its projected case times; a missing one is estimated from a fit seconds ~ model factor x
    arm factor (_factors): a measured model keeps its own factor, a model never measured gets
    one from its forward FLOPs at the projected size times the measured models' factor per FLOP
    (their geometric mean; `total_hours_range` uses the lowest and the highest instead). Per
    model: the sum over the paper's arms, times the number of seeds. A cell that cannot be
    estimated is listed in `unpriced`, and the total is then incomplete (`complete` false).
    """
    if not counts or not counts.get("settings"):
        return {"settings": None, "profile": None, "basis": None, "devices": [], "measured_image_sizes": [],
                "compute_scale": [], "per_model": [], "total_hours": None, "complete": False,
                "missing": "no FLOP counts (report/flops.json): run `thtl-bench flops`"}
    p = dict(counts["settings"])
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
        cp = _case_projection(r, p, counts)
        if cp:
            per[_case(r)[:2]].append(cp["seconds"])
            scales.add(cp["compute_scale"])
    if not per:
        return out
    out["compute_scale"] = sorted(scales)
    cells = {k: float(np.mean(v)) for k, v in per.items()}
    mf, af = _factors(cells)
    measured_models = canonical_order("models", [m for m, _ in cells], order)
    fl = {m: per_image(counts, m, int(p["image_size"])) for m in dict.fromkeys(measured_models + list(p["models"]))}
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


def projection(records: Sequence[dict], counts: dict | None, order: dict | None = None) -> dict:
    """The projected cost of the paper grid, both ways: scaled from measured case times
    (`from_records`, the keys at the top level) and from counted FLOPs at a stated rate
    (`flops`: flop_projection)."""
    return {**from_records(records, counts, order), "flops": flop_projection(counts)}


# ----------------------------------------------------------------------------- from counted FLOPs

CACHE_BYTES = {"bf16": 2, "fp16": 2}  # bytes per cached feature element under that autocast; else 4


def _epoch_bounds(plan: arms.Plan, patience: int) -> tuple[int, int]:
    """Fewest and most epochs a stage can run under the budget rule: early stopping fires once the
    validation loss has not improved for `patience` epochs, not before the stage's minimum; the
    cap is max_epochs."""
    return min(plan.max_epochs, max(int(plan.min_epochs), patience + 1)), int(plan.max_epochs)


def _stage_flops(plan: arms.Plan, st: dict, n: dict[str, float], epochs: int, t: dict) -> float:
    """Training and evaluation FLOPs of one stage, as the engine runs it (engine.loop, feeder):
    a frozen prefix (leading stages with nothing to train) runs once per image into the feature
    cache when the plan caches and the cache fits `feature_cache_max_gb`, else every epoch
    (forward only); the trainable suffix costs 3x its forward per training image (forward +
    backward), 1x per evaluated image (validation each epoch and at epoch 0, every split at the
    end)."""
    names, fwd = st["stages"], st["forward"]
    trainable = set(plan.stages)
    p = next((i for i, s in enumerate(names) if s in trainable), len(names))
    f_pre, f_suf = float(sum(fwd[:p])), float(sum(fwd[p:]))
    views = max(1, int(plan.views)) if plan.cache else 1
    n_all = n["train"] + n["val"] + n["test"]
    cached = False
    if plan.cache and p > 0:
        size = st["out_numel"][p - 1] * CACHE_BYTES.get(str(t.get("precision")), 4)
        cached = size * (n_all + (views - 1) * n["train"]) <= float(t.get("feature_cache_max_gb", 4)) * 2**30
    evals = n["val"] * (epochs + 1) + n_all  # epoch 0 + every epoch (val), then train/val/test once
    if cached:
        return f_pre * (n_all + (views - 1) * n["train"]) + epochs * 3 * f_suf * n["train"] + f_suf * evals
    return epochs * (f_pre + 3 * f_suf) * n["train"] + (f_pre + f_suf) * evals


def case_flops(model: str, arm: str, counts: dict) -> tuple[float, float] | None:
    """(fewest, most) FLOPs of one case of the projected grid: its stages (arms.plans, the engine's
    own layout) over the images of the domain it trains on, at the fewest and the most epochs the
    budget rule allows. None without the model's stage structure in the FLOP artefact."""
    p = counts["settings"]
    st = (counts.get("staging") or {}).get(model)
    if not st or not p.get("train"):
        return None
    t = {**p["train"], "max_epochs": int(p["max_epochs"])}
    a = arms.get(arm)
    domain = "fundus" if a.trains_on == "intermediate" else "larynx"
    total = float(p[f"{domain}_images"])
    val, test = float(p["split"]["val"]), float(p["split"]["test"])
    n = {"train": total * (1 - val - test), "val": total * val, "test": total * test}
    plans = arms.plans(a, [(g, list(s)) for g, s in st["groups"]], list(st["stages"]), t)
    lo = hi = 0.0
    for plan in plans:
        e_lo, e_hi = _epoch_bounds(plan, int(t["patience"]))
        lo += _stage_flops(plan, st, n, e_lo, t)
        hi += _stage_flops(plan, st, n, e_hi, t)
    return lo, hi


def flop_projection(counts: dict | None, rates: dict[str, float] | None = None) -> dict:
    """Hours for the projected grid from counted training FLOPs (case_flops, over its models, arms
    and replicates; THTL step 1 once per replicate, shared by its children) at an achieved FLOP
    rate. Without `rates`: the assumed rate of the artefact's settings, `gpu_peak_tflops` x the
    `mfu` range (a projection, stated with its source, until a card measures it). With `rates`
    ({model: achieved FLOP/s}, e.g. measured by scripts/gpu_check.sh): those. The range runs from
    the fewest epochs at the highest rate to the most epochs at the lowest."""
    if not counts or not (counts.get("settings") or {}).get("train") or not counts.get("staging"):
        return {"available": False, "missing": "no stage FLOP counts (report/flops.json from `thtl-bench flops`)"}
    p = counts["settings"]
    seeds = int(p["seeds"]) if not isinstance(p["seeds"], list) else len(p["seeds"])
    per_model, unpriced = {}, []
    for m in p["models"]:
        cells = {a: case_flops(m, a, counts) for a in p["arms"]}
        if any(v is None for v in cells.values()):
            unpriced.append(m)
            continue
        per_model[m] = {"eflop": [seeds * sum(v[i] for v in cells.values()) / 1e18 for i in (0, 1)],
                        "arm_eflop": {a: [seeds * v[0] / 1e18, seeds * v[1] / 1e18] for a, v in cells.items()}}
    out = {"available": True, "models": list(per_model), "unpriced": unpriced, "seeds": seeds,
           "epochs": "from the fewest epochs the budget rule allows (every stage stopping early at the "
                     f"earliest) to the most (every stage at max_epochs={p['max_epochs']})",
           "eflop": [sum(v["eflop"][i] for v in per_model.values()) for i in (0, 1)]}
    if rates is None:
        peak, mfu = p.get("gpu_peak_tflops"), p.get("mfu")
        if not peak or not mfu:
            return {**out, "hours": None, "missing": "report.projection.gpu_peak_tflops / mfu not set"}
        lo_mfu, hi_mfu = float(min(mfu)), float(max(mfu))
        rate = {m: (float(peak) * 1e12 * lo_mfu, float(peak) * 1e12 * hi_mfu) for m in per_model}
        out.update(basis="assumed", gpu=p.get("gpu"), gpu_peak_tflops=float(peak), mfu=[lo_mfu, hi_mfu],
                   mfu_source=p.get("mfu_source"))
    else:
        missing = [m for m in per_model if not rates.get(m)]
        if missing:
            return {**out, "hours": None, "missing": f"no measured rate for {', '.join(missing)}"}
        rate = {m: (float(rates[m]), float(rates[m])) for m in per_model}
        out.update(basis="measured", achieved_tflops={m: float(rates[m]) / 1e12 for m in per_model})
    for m, v in per_model.items():
        v["hours"] = [v["eflop"][0] * 1e18 / rate[m][1] / 3600, v["eflop"][1] * 1e18 / rate[m][0] / 3600]
    out["per_model"] = per_model
    out["hours"] = [sum(v["hours"][i] for v in per_model.values()) for i in (0, 1)]
    out["complete"] = not unpriced
    return out
