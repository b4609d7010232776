"""The report's figures and their plot data, from the summary (and cam.json) only.

    write(summary, rdir) -> Plots   every figure under <rdir>/figures/ and its data under
                                    <rdir>/plots/<name>.csv (always written, header only when the
                                    run has no such data, so dvc.yaml's `plots:` always resolve)

The CSVs are the figures' `*_rows` in long format plus a `series` column (what one line or
panel of `dvc plots` is), so the top-level `plots:` of dvc.yaml can say x and y for each file
and group by `series` (templates in .dvc/plots/).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from thtl_bench import domains as domain_registry
from thtl_bench.analysis import claims as claims_mod
from thtl_bench.io import atomic_write_text
from thtl_bench.report import figures, forest

# name -> (columns of its CSV, x, y): dvc.yaml's top-level `plots:` must say the same
# (tests/repo/test_dvc.py checks it).
CSV = {
    "arms_dot": (["series", "model", "arm", "domain", "metric", "replicate", "value_pct", "mean_pct", "lo_pct",
                  "hi_pct", "n", "undertrained"], "value_pct", "series"),
    "claims_forest": (["series", "id", "model", "kind", "diff_pp", "ci_lo", "ci_hi", "adj_lo", "adj_hi", "paper_pp",
                       "margin_pp", "verdict"], "diff_pp", "series"),
    "confusion": (["series", "model", "arm", "domain", "true", "predicted", "count", "row_pct", "n_replicates"],
                  "predicted", "true"),
    "swft_steps": (["series", "model", "domain", "replicate", "split", "step", "group", "accuracy_pct", "selected"],
                   "step", "accuracy_pct"),
    "size_axis": (["series", "model", "domain", "axis", "fraction", "gain_pp", "lo_pp", "hi_pp", "undertrained"],
                  "fraction", "gain_pp"),
}
TARGET_METRICS = ("accuracy", "recall")


@dataclass
class Plots:
    """Paths of what `write` drew (relative names are the report's business)."""

    arms_dot: Path | None = None
    claims_forest: Path | None = None
    confusion: list[tuple[str, Path]] = field(default_factory=list)  # (model, png)
    swft: list[tuple[str, str, Path]] = field(default_factory=list)  # (model, domain, png)
    size_axis: Path | None = None
    csv: dict[str, Path] = field(default_factory=dict)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))


def _full(c: dict) -> bool:
    return c["target_fraction"] == 1.0 and c["intermediate_fraction"] == 1.0


def _panel(doms: list[str], d: str | None) -> str:
    """The arms_dot panel name of intermediate domain `d` (one panel, "larynx", when there is one)."""
    return "larynx" if len(doms) <= 1 else f"larynx via {d}"


def _target_cells(summary: dict) -> list[dict]:
    """The summary's cells trained on the target at full data sizes (what the figures compare)."""
    return [c for c in summary["cells"] if c["trains_on"] == domain_registry.TARGET and _full(c)]


def _target_domains(summary: dict) -> list[str]:
    """The intermediate domains (registry order) some full-size target cell went through."""
    cells = _target_cells(summary)
    return [d for d in summary["domains"] if any(c["domain"] == d for c in cells)]


def target_cells(summary: dict) -> list[dict]:
    """arms_dot input: the target (larynx) cells at full data sizes, one entry per metric. With
    several intermediate domains each domain is a panel and the target-only arms (scratch,
    one-step) appear in every panel, the reference each THTL arm is read against."""
    cells = _target_cells(summary)
    doms = _target_domains(summary)
    out = []
    for c in cells:
        panels = [c["domain"]] if c["domain"] is not None else (doms or [None])
        for d in panels:
            for name in TARGET_METRICS:
                m = c["metrics"].get(name)
                if not m:
                    continue
                out.append({"model": c["model"], "arm": c["arm"],
                            "domain": _panel(doms, d), "metric": name, "mean": m["mean"],
                            "lo": m.get("ci_low"), "hi": m.get("ci_high"),
                            "n": m["n"], "values": m.get("values") or [],
                            "undertrained": bool(c["fit"]["undertrained"]),
                            "undertrained_replicates": [ok is False for ok in c["fit"]["ok"]]})
    return out


def majority_rate(summary: dict) -> float | None:
    """The target test split's majority-class rate (references.json), mean over split seeds."""
    ref = summary.get("references") or {}
    rates = [e["majority"]["accuracy"] for e in ref.get("entries") or []
             if e.get("domain") == domain_registry.TARGET and e.get("majority")]
    return sum(rates) / len(rates) if rates else None


def claim_rows(summary: dict) -> list[dict]:
    """claims_forest input from the claims' rows (deciding interval = the adjusted one); claims on
    arms the profile does not train are left out (REPORT.md names them)."""
    out = []
    for r in (r for r in summary["claims"] if claims_mod.in_grid(r, summary["arms"])):
        out.append({"id": r["id"], "model": r["model"], "text": r.get("text", ""), "diff": r.get("diff_pp"),
                    "ci": r.get("ci_pp"), "adj_ci": r.get("adj_ci_pp"), "paper": r.get("paper_value_pp"),
                    "verdict": str(r["verdict"]).split(":")[0], "kind": r["kind"], "margin": r.get("margin_pp"),
                    "n": r.get("n_pairs")})
    return out


def confusion_inputs(summary: dict, classes: list[str]) -> list[dict]:
    """confusion input per model: its target arms (at full sizes; a THTL arm per domain)."""
    by_model: dict[str, list[dict]] = {}
    several = len(summary["domains"]) > 1
    for c in _target_cells(summary):
        if not c.get("confusion_sum"):
            continue
        arm = c["arm"] if c["domain"] is None or not several else f"{c['arm']} via {c['domain']}"
        by_model.setdefault(c["model"], []).append({"arm": arm, "matrix": c["confusion_sum"], "n_replicates": c["n"]})
    return [{"model": m, "classes": classes, "arms": arms, "positive": classes[-1]} for m, arms in by_model.items()]


def swft_inputs(summary: dict) -> list[dict]:
    out = []
    for curve in summary["swft"]:
        steps = [{"step": s["step"], "group": (s["groups"] or ["?"])[-1]} for s in curve["steps"]]
        reps = [{"key": r["key"], "val": r["val"], "test": r["test"], "selected": r["selected"]}
                for r in curve["replicates"]]
        out.append({"model": curve["model"], "domain": curve["domain"], "steps": steps, "replicates": reps})
    return out


def size_points(summary: dict) -> list[dict]:
    return [{"model": p["model"], "domain": p["domain"], "axis": p["axis"], "fraction": p["fraction"],
             "gain": p["gain"], "lo": p.get("lo"), "hi": p.get("hi"), "undertrained": bool(p.get("undertrained"))}
            for p in summary.get("sizes") or []]


# ----------------------------------------------------------------------------- files

def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (f"{r[k]:.6f}" if isinstance(r[k], float) else r[k]))
                    for k in columns})
    return buf.getvalue()


def write(summary: dict, rdir: Path, classes: list[str] | None = None) -> Plots:
    """Draw every figure the summary has data for; write every plot CSV (see module doc)."""
    fdir, pdir = rdir / "figures", rdir / "plots"
    order = {"model_order": summary["models"]}
    arm_order = {"arm_order": summary["arms"]}
    p = Plots()
    rows: dict[str, list[dict]] = {k: [] for k in CSV}

    cells = target_cells(summary)
    if cells:
        doms = _target_domains(summary)
        panels = [_panel(doms, d) for d in doms] or ["larynx"]  # registry order, the names target_cells gives
        p.arms_dot = figures.arms_dot_figure(cells, fdir / "arms_dot.png", **order, **arm_order, domain_order=panels,
                                             interval="replicate-level interval (t over splits)",
                                             majority=majority_rate(summary))
        rows["arms_dot"] = [{**r, "series": f"{r['model']} · {r['metric']} · {r['domain']}"}
                            for r in figures.arms_dot_rows(cells, **order, **arm_order)]
    claims = claim_rows(summary)
    if claims:
        p.claims_forest = forest.claims_forest_figure(claims, fdir / "claims_forest.png", **order)
        rows["claims_forest"] = [{**r, "series": f"{r['id']} · {r['model']}"}
                                 for r in forest.claims_forest_rows(claims, **order)]
    for data in confusion_inputs(summary, classes or ["benign", "malignant"]):
        png = figures.confusion_figure(data, fdir / f"confusion_{_slug(data['model'])}.png", **arm_order)
        p.confusion.append((data["model"], png))
        rows["confusion"] += [{**r, "domain": domain_registry.TARGET, "series": f"{r['model']} · {r['arm']}"}
                              for r in figures.confusion_rows(data, **arm_order)]
    for data in swft_inputs(summary):
        dom = data["domain"] or "-"
        png = figures.swft_steps_figure(data, fdir / f"swft_steps_{_slug(data['model'])}__{_slug(dom)}.png",
                                        title=f"SWFT steps · {data['model']} via {dom} · "
                                              f"{len(data['replicates'])} replicate(s)")
        p.swft.append((data["model"], dom, png))
        rows["swft_steps"] += [{**r, "domain": dom, "series": f"{r['model']} · {dom} · {r['split']} · {r['replicate']}"}
                               for r in figures.swft_steps_rows(data)]
    pts = size_points(summary)
    if pts:
        p.size_axis = figures.size_axis_figure(pts, fdir / "size_axis.png", **order,
                                               gain="THTL gain: thtl_last - onestep_last (accuracy, pp)")
        rows["size_axis"] = [{**r, "series": f"{r['model']} · {r['domain']} · {r['axis']}"}
                             for r in figures.size_axis_rows(pts, **order)]
    for name, (columns, _, _) in CSV.items():
        p.csv[name] = atomic_write_text(pdir / f"{name}.csv", _csv(rows[name], columns))
    # Figures of an earlier render this one did not draw would be linked by nothing.
    drawn = {x.resolve() for x in [p.arms_dot, p.claims_forest, p.size_axis] if x}
    drawn |= {x.resolve() for _, x in p.confusion} | {x.resolve() for *_, x in p.swft}
    for old in fdir.glob("*.png"):
        if not old.name.startswith("cam__") and old.resolve() not in drawn:
            old.unlink()
    return p
