"""The machine-readable files beside REPORT.md, for DVC and other tools (the figures' plot data is
report.plots'):

- headline.json, dvc.yaml's one metrics file (`dvc metrics show`, `dvc exp show`): a dozen
  numbers that always have the same names: cases run, under-trained cells, the primary claims
  counted by verdict, the power of the decision rule with its interval, the projected cost;
- metrics.json, a plain output (`dvc metrics diff --targets report/metrics.json`): every cell,
  claim, size-axis point, with each estimate's interval bounds.

Meanings a tool can read without the report: a verdict is its string ("reproduced",
"inconclusive", "not decided: under-trained", ...) or null when the claim had no data to decide
on; a p-value is null unless the verdict was read from the data; every unit is in the name
(`_pp` percentage points, `_pct` percent, `_s` seconds, `_per_s`, `_cpu_hours` / `_gpu_hours`);
an estimate comes with `_low` / `_high` (its interval at stats.confidence) when it has one.
"""

from __future__ import annotations

from typing import Any

# The verdicts counted in headline.json, so its columns are the same in every run (a verdict
# outside this list, e.g. a new rule's, gets its own count); "not decided: <why>" counts as
# not_decided. Claims without data are counted as without_data, their verdict null.
VERDICT_COUNTS = ("reproduced", "contradicted", "inconclusive", "underpowered", "not_decided")


def cell_key(c: dict) -> str:
    """model.arm[.via_<domain>][.t<target %>.i<intermediate %>] (the sizes only off 100 %)."""
    key = f"{c['model']}.{c['arm']}" + (f".via_{c['domain']}" if c.get("domain") else "")
    if (c["target_fraction"], c["intermediate_fraction"]) != (1.0, 1.0):
        key += f".t{100 * c['target_fraction']:g}.i{100 * c['intermediate_fraction']:g}"
    return key


def _num(v: Any, scale: float = 1.0) -> float | int | None:
    """A JSON number (6 decimals; integers stay integers), None for a missing or non-finite value."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, int) and scale == 1.0:
        return v
    x = float(v) * scale
    return round(x, 6) if x == x and abs(x) != float("inf") else None


def _bounds(pair: Any, scale: float = 1.0) -> tuple[float | None, float | None]:
    if isinstance(pair, (list, tuple)) and len(pair) == 2:
        return _num(pair[0], scale), _num(pair[1], scale)
    return None, None


def has_data(row: dict) -> bool:
    """Whether a claim row carries an estimate from paired replicates (else it had nothing to decide on)."""
    return row.get("estimate_pp", row.get("diff_pp")) is not None


def claim_verdict(row: dict) -> str | None:
    return str(row["verdict"]) if has_data(row) else None


def claim_p(row: dict) -> float | None:
    """The decision p-value, only when the verdict was read from the data's interval (a claim
    without data, or blocked as under-trained, has none)."""
    if not has_data(row) or row.get("basis", "interval") != "interval":
        return None
    return _num(row.get("p"))


def _claim(row: dict) -> dict:
    lo, hi = _bounds(row.get("interval_pp"))
    return {
        "verdict": claim_verdict(row),
        "family": row.get("family"),
        "metric": row.get("metric"),
        "estimate_pp": _num(row.get("estimate_pp", row.get("diff_pp"))),
        "estimate_low_pp": lo, "estimate_high_pp": hi,
        "rel_pct": _num(row.get("rel_pct")),
        "margin_pp": _num(row.get("margin_pp")),
        "p": claim_p(row),
        "p_adjusted": _num(row.get("p_adjusted")) if claim_p(row) is not None else None,
        "n_replicates": _num(row.get("n_pairs")),
    }


def _cell(c: dict) -> dict:
    out: dict[str, Any] = {"n_replicates": _num(c["n"]), "undertrained": len(c["fit"]["undertrained"])}
    for name, st in c["metrics"].items():
        out[f"{name}_pct"] = {"mean": _num(st.get("mean"), 100), "std": _num(st.get("std"), 100),
                              "low": _num(st.get("ci_low"), 100), "high": _num(st.get("ci_high"), 100)}
    timing = c.get("timing") or {}
    for key in ("train_images_per_s", "inference_images_per_s", "wall_s", "epoch_s"):
        if key in timing:
            out[key] = _num(timing[key].get("mean"))
    return out


def _projection(summary: dict) -> dict[str, float | None]:
    """The projected cost of the projected profile, named by what it was measured on (a CPU or a GPU)."""
    proj = summary.get("projection") or {}
    basis = proj.get("basis")
    if basis not in ("cpu", "gpu"):
        return {}
    lo, hi = _bounds(proj.get("total_hours_range"))
    name = f"projected_{basis}_hours"
    return {name: _num(proj.get("total_hours")), f"{name}_low": lo, f"{name}_high": hi}


def _power(summary: dict) -> dict[str, float | None]:
    """The design's calibration (thtl_bench.analysis.calibration): the smallest power of a primary
    claim at the paper's effect (estimated components; a simulated rate), and the range of its false
    decisions at nominal 5 %; none when it was not computed for these records."""
    cal = summary.get("calibration") or {}
    v = cal.get("verdict") or {}
    if not v.get("false_decisions"):
        return {}
    out = {"false_decisions_min": _num(v["false_decisions"][0]), "false_decisions_max": _num(v["false_decisions"][1]),
           "calibrated": v.get("calibrated")}
    if v.get("power"):
        out.update(power_min=_num(v["power"][0]), powered=v.get("powered"))
    return out


def metrics_full(summary: dict) -> dict:
    """Every number of the summary a run-to-run diff needs (deterministic; metrics.json)."""
    out: dict[str, Any] = {
        "cells": {cell_key(c): _cell(c) for c in summary["cells"]},
        "claims": {f"{r['id']}.{r['model']}": _claim(r) for r in summary["claims"]},
        "sizes": {f"{p['model']}.{p['domain']}.{p['axis']}.{100 * p['fraction']:g}":
                  {"gain_pp": _num(p.get("gain")), "gain_low_pp": _num(p.get("lo")), "gain_high_pp": _num(p.get("hi")),
                   "n_replicates": _num(p.get("n"))} for p in summary.get("sizes") or []},
    }
    out.update(_power(summary))
    out.update(_projection(summary))
    return out


def headline(summary: dict) -> dict:
    """A dozen numbers with fixed names for `dvc metrics show` / `dvc exp show` (headline.json)."""
    prov = summary["provenance"]
    counts = dict.fromkeys(VERDICT_COUNTS, 0)
    without = 0
    for r in summary["claims"]:
        if r.get("family") != "primary":
            continue
        verdict = claim_verdict(r)
        if verdict is None:
            without += 1
            continue
        key = verdict.split(":")[0].strip().replace(" ", "_")
        counts[key] = counts.get(key, 0) + 1
    out: dict[str, Any] = {
        "cases_ok": prov["n_ok"], "cases_not_run": prov["n_not_run"],
        "cells_undertrained": sum(1 for c in summary["cells"] if c["fit"]["undertrained"]),
        "primary_claims": {**counts, "without_data": without},
    }
    cal = _power(summary)  # a fixed pair of columns, null when not computed for these records
    out.update(power_min=cal.get("power_min"), calibrated=cal.get("calibrated"))
    out.update(_projection(summary))
    return out
