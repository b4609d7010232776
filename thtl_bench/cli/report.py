"""`thtl-bench aggregate | report | compare`: thin shells over thtl_bench.analysis and thtl_bench.report."""

from __future__ import annotations

import argparse
from pathlib import Path

from thtl_bench.cli.common import load_cfg, subcommand


def _records_dirs(args: argparse.Namespace, cfg: dict) -> list[str]:
    return list(args.records) or [cfg["grid"]["records_dir"]]


def cmd_aggregate(args: argparse.Namespace) -> int:
    from thtl_bench.analysis import aggregate, claims

    cfg = load_cfg(args)
    dirs = _records_dirs(args, cfg)
    recs = aggregate.load_records(dirs, cfg, include_off_grid=args.include_off_grid)
    summary = aggregate.aggregate(recs, cfg, **aggregate.load_artefacts(cfg["report"]["dir"]))
    out = aggregate.write_summary(summary, args.out or Path(cfg["report"]["dir"]) / "summary.json")
    prov = summary["provenance"]
    print(f"{prov['n_ok']} ok / {prov['n_not_run']} not run records from {', '.join(dirs)} -> {out}")
    print(claims.table(summary["claims"]))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from thtl_bench import report
    from thtl_bench.analysis import aggregate

    cfg = load_cfg(args)
    if args.summary:
        path = report.render(cfg, aggregate.load_summary(args.summary))
    else:
        path = report.write(cfg, _records_dirs(args, cfg), include_off_grid=args.include_off_grid)
    print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from thtl_bench.analysis import compare

    cfg = load_cfg(args)
    result, text = compare.run(args.a, args.b, cfg, args.records_path)
    print(text)
    return 1 if args.fail_on_regression and result["regressions"] else 0


def add_cli(subparsers) -> None:
    off_grid = ("count records of replicates outside grid.replicates (by default they are named in a warning "
                "and left out)")
    p = subcommand(subparsers, "aggregate", help="aggregate records into report.dir/summary.json",
                   example="thtl-bench aggregate --profile smoke records/smoke shard-b/records/smoke")
    p.add_argument("records", nargs="*", help="record folders/files (default: grid.records_dir)")
    p.add_argument("--out", default=None, help="summary path (default: report.dir/summary.json)")
    p.add_argument("--include-off-grid", action="store_true", help=off_grid)
    p.set_defaults(func=cmd_aggregate)

    p = subcommand(subparsers, "report",
                   help="write REPORT.md, metrics.json, headline.json (dvc metrics), plot data and figures",
                   example="thtl-bench report --profile smoke --summary report/summary.json")
    p.add_argument("records", nargs="*", help="record folders (default: grid.records_dir)")
    p.add_argument("--summary", default=None,
                   help="render from this summary.json (written by `aggregate`) instead of the records")
    p.add_argument("--include-off-grid", action="store_true", help=off_grid + "; without --summary only")
    p.set_defaults(func=cmd_report)

    from thtl_bench.analysis.compare import GATE

    p = subcommand(subparsers, "compare", help="did a change move a result? record folders, summary JSONs or git revisions",
                   description="Compare A (before) with B (after): which cases have identical test predictions and why "
                               "the others changed; for changed cells the paired per-replicate difference B - A by the "
                               f"claims' rule; which claim verdicts moved and why. The gate {GATE}.",
                   example="thtl-bench compare main records/smoke --fail-on-regression")
    p.add_argument("a", help="before: records folder, summary JSON or git revision")
    p.add_argument("b", help="after: records folder, summary JSON or git revision")
    p.add_argument("--records", dest="records_path", default=None,
                   help="records folder inside a git revision (default: grid.records_dir)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when the gate fails (see above)")
    p.set_defaults(func=cmd_compare)
