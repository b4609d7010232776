"""`thtl-bench flops`: the FLOP artefact the cost projection reads (thtl_bench.perf.flops)."""

from __future__ import annotations

import argparse
from pathlib import Path

from thtl_bench.cli.common import load_cfg, subcommand


def _flops(args: argparse.Namespace) -> int:
    from thtl_bench import records
    from thtl_bench.io import atomic_write_json
    from thtl_bench.perf import flops

    cfg = load_cfg(args)
    dirs = list(args.records) or [cfg["grid"]["records_dir"]]
    recs = records.load_all([d for d in dirs if Path(d).exists()])
    out = Path(args.out or Path(cfg["report"]["dir"]) / "flops.json")
    doc = flops.artifact(cfg, recs)
    atomic_write_json(out, doc)
    print(f"forward FLOPs of {len(doc['per_image'])} model(s) -> {out}")
    return 0


def add_cli(subparsers) -> None:
    p = subcommand(subparsers, "flops", help="count forward FLOPs per image for the cost projection (report/flops.json)",
                   example="thtl-bench flops --profile smoke -S report.projection.profile=domains")
    p.add_argument("records", nargs="*", help="record folders (default: grid.records_dir)")
    p.add_argument("--out", default=None, help="output path (default: report.dir/flops.json)")
    p.set_defaults(func=_flops)
