"""REPORT.md and its companions, rendered from the summary (analysis.aggregate) and the gathered
inputs (report.gather) only.

    write(cfg, records_dirs) -> Path   aggregate the records, write summary.json, then render
    render(cfg, summary)     -> Path   REPORT.md + metrics.json + headline.json + figures + plots

Files under `report.dir`: summary.json (the full aggregate), metrics.json (every number, for
`dvc metrics diff --targets`), headline.json (dvc.yaml's metric: a dozen numbers for `dvc metrics
show` and `dvc exp show`; report.companions), figures/*.png and their plot data plots/*.csv (report.plots; dvc.yaml's top-level `plots:`); cam.json, perf.json,
bench_session.json, flops.json, transfer.json and references.json are read when the running side
has written them. Only REPORT.md carries a date.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from thtl_bench.analysis import aggregate
from thtl_bench.io import atomic_write_json, atomic_write_text
from thtl_bench.report import cost, decisions, mechanism, plots, sections
from thtl_bench.report.companions import headline, metrics_full
from thtl_bench.report.gather import gather

INTRO = ("Reproduction of two-step heterogeneous transfer learning (THTL) and step-wise fine-tuning (SWFT) for "
         "laryngeal vascular image classification; the claims and how each is decided: docs/study.md.")


def render(cfg: dict, summary: dict, sources: Sequence[str] | None = None) -> Path:
    """Write REPORT.md (report.path) and the files under report.dir from a summary dict."""
    g = gather(cfg)
    rdir = g["report_dir"]
    path = Path(cfg["report"]["path"])
    base = path.parent
    rdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(rdir / "metrics.json", metrics_full(summary))
    atomic_write_json(rdir / "headline.json", headline(summary))
    drawn = plots.write(summary, rdir, list(cfg["data"].get("larynx", {}).get("classes") or ["benign", "malignant"]))
    now = datetime.now(timezone.utc)
    parts = [
        ["# thtl-bench report", "", INTRO, ""] + sections.headline(summary),
        decisions.verdicts(summary),
        sections.figures(summary, drawn, g, base),
        sections.claims(summary),
        mechanism.section(summary, g, base),
        decisions.calibration(summary),
        sections.target_table(summary), sections.step1_table(summary), decisions.training_fit(summary),
        sections.references(summary), sections.transfer(summary), sections.not_run(summary),
        cost.speed(summary) + [""] + cost.perf(g, now),
        sections.provenance(summary, g, sources, now), sections.assumptions(summary),
    ]
    atomic_write_text(path, "\n\n".join("\n".join(p) for p in parts if p) + "\n")
    return path


def write(cfg: dict, records_dirs: Sequence[str | os.PathLike] | None = None, *, include_off_grid: bool = False) -> Path:
    """Aggregate the records (default `grid.records_dir`; off-grid replicates left out unless
    `include_off_grid`: aggregate.load_records), write summary.json, render REPORT.md."""
    dirs = [str(d) for d in (records_dirs or [cfg["grid"]["records_dir"]])]
    rdir = Path(cfg["report"]["dir"])
    recs = aggregate.load_records(dirs, cfg, include_off_grid=include_off_grid)
    summary = aggregate.aggregate(recs, cfg, **aggregate.load_artefacts(rdir))
    aggregate.write_summary(summary, rdir / "summary.json")
    return render(cfg, summary, dirs)
