"""REPORT.md and its companions, rendered from the summary (analysis.aggregate) and the gathered
inputs (report.gather) only.

    write(cfg, records_dirs) -> Path   aggregate the records, write summary.json, then render
    render(cfg, summary)     -> Path   REPORT.md + metrics.json + swft_steps.csv + figures/

Files under `report.dir`: summary.json (the full aggregate), metrics.json (flat numbers for
`dvc metrics diff`), swft_steps.csv (plot data for `dvc plots`), figures/swft_steps_<model>.png;
cam.json, perf.json and bench_session.json are read when the running side has written them.
Only REPORT.md carries a date.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from thtl_bench import records
from thtl_bench.analysis import aggregate
from thtl_bench.errors import UserError
from thtl_bench.io import atomic_write_json, atomic_write_text
from thtl_bench.report import sections
from thtl_bench.report.companions import metrics_flat, swft_csv
from thtl_bench.report.gather import gather


def render(cfg: dict, summary: dict, sources: Sequence[str] | None = None) -> Path:
    """Write REPORT.md (report.path) and the files under report.dir from a summary dict."""
    g = gather(cfg)
    rdir = g["report_dir"]
    path = Path(cfg["report"]["path"])
    base = path.parent
    rdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(rdir / "metrics.json", metrics_flat(summary))
    atomic_write_text(rdir / "swft_steps.csv", swft_csv(summary))
    conf = float(summary["stats_params"]["confidence"])
    now = datetime.now(timezone.utc)
    parts = [
        ["# thtl-bench report", "",
         "Reproduction of two-step heterogeneous transfer learning (THTL) and SWFT for laryngeal "
         "vascular image classification (see docs/study.md for the claims).", ""] + sections.headline(summary),
        sections.provenance(summary, g, sources, now), sections.not_run(summary), sections.grid(summary, conf),
        sections.fundus(summary, conf), sections.claims(summary), sections.swft(summary, rdir, base),
        sections.cam(g, base), sections.speed(summary) + [""] + sections.perf(g), sections.assumptions(summary),
    ]
    atomic_write_text(path, "\n\n".join("\n".join(p) for p in parts) + "\n")
    return path


def write(cfg: dict, records_dirs: Sequence[str | os.PathLike] | None = None) -> Path:
    """Aggregate the records (default `grid.records_dir`), write summary.json, render REPORT.md."""
    dirs = [str(d) for d in (records_dirs or [cfg["grid"]["records_dir"]])]
    for d in dirs:
        if not Path(d).exists():
            raise UserError(f"records folder {d} not found: run `thtl-bench grid` first")
    rdir = Path(cfg["report"]["dir"])
    summary = aggregate.aggregate(records.load_all(dirs), cfg, **aggregate.load_artefacts(rdir))
    aggregate.write_summary(summary, rdir / "summary.json")
    return render(cfg, summary, dirs)
