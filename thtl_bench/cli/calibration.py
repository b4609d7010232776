"""`thtl-bench calibrate`: the claim rule's calibration and power at this run's design, from its own
records (thtl_bench.analysis.calibration) -> <report.dir>/calibration.json."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from thtl_bench.cli.common import load_cfg, subcommand


def _calibrate(args: argparse.Namespace) -> int:
    from thtl_bench.analysis import aggregate, calibration
    from thtl_bench.io import atomic_write_json

    cfg = load_cfg(args)
    rdir = Path(cfg["grid"]["records_dir"])  # a missing folder: load_records names it
    out = Path(cfg["report"]["dir"]) / "calibration.json"
    previous = None
    if out.is_file() and not args.force:
        try:
            previous = json.loads(out.read_text())
        except json.JSONDecodeError:
            previous = None
    t0 = time.perf_counter()
    # The records of the design (grid.replicates), as the summary counts them: an off-grid replicate
    # (a pilot's, an extra run) is named in a warning and left out, never calibrated on.
    recs = aggregate.load_records([rdir], cfg, include_off_grid=args.include_off_grid)
    cal = calibration.run(recs, cfg, workers=args.workers, previous=previous)
    reused = previous is not None and cal is previous
    atomic_write_json(out, cal)
    print(calibration.text(cal))
    print(f"{'reused (records, plan and code unchanged)' if reused else 'computed'} -> {out} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


def add_cli(subparsers: Any) -> None:
    p = subcommand(
        subparsers, "calibrate",
        help="the claim rule's false decisions, coverage and power at this design (report/calibration.json)",
        description="Estimate each primary claim's variance components from the profile's records, fit the "
                    "simulation model to them, and measure by simulation (stats.calibration.n_sim studies per "
                    "design) the rule's false decisions and coverage at the run's design and at "
                    "stats.calibration.replicates split units, and its power at the paper's effect; the same "
                    "with every component SD x stats.calibration.pessimistic_scale. Reused while the records, "
                    "the analysis plan and the code are unchanged.",
        example="thtl-bench calibrate --profile smoke -S stats.calibration.n_sim=500")
    p.add_argument("--workers", type=int, default=None, help="processes for the simulations (default: up to 2)")
    p.add_argument("--force", action="store_true", help="recompute even when the artefact matches")
    p.add_argument("--include-off-grid", action="store_true",
                   help="count records of replicates outside grid.replicates too (as `report --include-off-grid` "
                        "does, so the two keys match)")
    p.set_defaults(func=_calibrate)
