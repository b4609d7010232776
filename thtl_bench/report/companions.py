"""The small machine-readable files beside REPORT.md: metrics.json (every number, for
`dvc metrics diff`) and headline.json (a few, for `dvc exp show`). The figures' plot data is
report.plots'."""

from __future__ import annotations

from typing import Any

VERDICT_CODE = {"reproduced": 1, "inconclusive": 0, "underpowered": 0, "not decided": 0, "contradicted": -1}


def _code(verdict: str) -> int:
    return VERDICT_CODE[str(verdict).split(":")[0]]


def cell_key(c: dict) -> str:
    """model.arm[.via_<domain>][.t<target %>.i<intermediate %>] (the sizes only off 100 %)."""
    key = f"{c['model']}.{c['arm']}" + (f".via_{c['domain']}" if c.get("domain") else "")
    if (c["target_fraction"], c["intermediate_fraction"]) != (1.0, 1.0):
        key += f".t{100 * c['target_fraction']:g}.i{100 * c['intermediate_fraction']:g}"
    return key


def _put(out: dict, key: str, v: Any) -> None:
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, (int, float)):
        out[key] = round(float(v), 6)


def metrics_flat(summary: dict) -> dict[str, float]:
    """Flat, deterministic numbers for `dvc metrics diff` (verdicts coded +1/0/-1)."""
    out: dict[str, float] = {}
    for c in summary["cells"]:
        base = f"grid.{cell_key(c)}"
        _put(out, f"{base}.n_replicates", c["n"])
        _put(out, f"{base}.undertrained", len(c["fit"]["undertrained"]))
        for name, st in c["metrics"].items():
            _put(out, f"{base}.{name}.mean", st["mean"])
            _put(out, f"{base}.{name}.std", st["std"])
        for key in ("train_images_per_s", "inference_images_per_s", "wall_s"):
            _put(out, f"{base}.speed.{key}", c["timing"][key]["mean"])
    for r in summary["claims"]:
        base = f"claims.{r['id']}.{r['model']}"
        _put(out, f"{base}.diff_pp", r["diff_pp"])
        _put(out, f"{base}.rel_pct", r["rel_pct"])
        _put(out, f"{base}.p_value", r.get("p"))
        _put(out, f"{base}.verdict", _code(r["verdict"]))
    for p in summary.get("sizes") or []:
        _put(out, f"sizes.{p['model']}.{p['domain']}.{p['axis']}.{100 * p['fraction']:g}.gain_pp", p["gain"])
    _put(out, "projection.total_hours", summary["projection"]["total_hours"])
    for c in (summary.get("calibration") or {}).get("claims") or []:
        for r in c["power"]:
            _put(out, f"power.{c['id']}.{c['model']}.{r['setting']}", r["reproduced"]["rate"])
    return dict(sorted(out.items()))


def headline(summary: dict) -> dict[str, float]:
    """A dozen numbers for `dvc exp show`: the primary family's verdicts and estimates, the
    cases run, the under-trained count, power, projected cost."""
    out: dict[str, float] = {}
    for r in summary["claims"]:
        if r.get("family") == "primary":
            _put(out, f"{r['id']}.{r['model']}.verdict", _code(r["verdict"]))
            _put(out, f"{r['id']}.{r['model']}.pp", r.get("diff_pp"))
    prov = summary["provenance"]
    _put(out, "cases_ok", prov["n_ok"])
    _put(out, "cases_not_run", prov["n_not_run"])
    _put(out, "undertrained", sum(len(c["fit"]["undertrained"]) for c in summary["cells"]))
    v = (summary.get("calibration") or {}).get("verdict") or {}
    if v.get("power"):
        _put(out, "power_min", v["power"][0])
    _put(out, "projected_hours", summary["projection"]["total_hours"])
    return dict(sorted(out.items()))
