"""`thtl-bench index`: the records folder's stand-in for DVC (thtl_bench.records.index)."""

from __future__ import annotations

import argparse
from pathlib import Path

from thtl_bench.cli.common import load_cfg, subcommand


def _index(args: argparse.Namespace) -> int:
    from thtl_bench import records
    from thtl_bench.errors import UserError
    from thtl_bench.io import atomic_write_json

    cfg = load_cfg(args)
    rdir = Path(cfg["grid"]["records_dir"])
    if not rdir.is_dir():
        raise UserError(f"records folder {rdir} not found: run `thtl-bench grid --profile {cfg['profile']}` first")
    doc = records.index(rdir)
    out = atomic_write_json(args.out or Path(cfg["report"]["dir"]) / "records.json", doc)
    print(f"{doc['n']} record(s) ({doc['n_ok']} ok) of {rdir} -> {out}")
    return 0


def add_cli(subparsers) -> None:
    p = subcommand(subparsers, "index",
                   help="index the profile's records (report/records.json: slug, case_id, status, sha256)",
                   description="Write <report.dir>/records.json, each record file's slug, case_id, status and "
                               "sha256: dvc.yaml's later stages depend on it instead of the records folder, "
                               "which a checkout may not have for every profile (docs/reproducibility.md).",
                   example="thtl-bench index --profile smoke")
    p.add_argument("--out", default=None, help="output path (default: report.dir/records.json)")
    p.set_defaults(func=_index)
