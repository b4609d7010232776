"""`thtl-bench aggregate | report | compare`: thin shells over thtl_bench.analysis and thtl_bench.report."""

from __future__ import annotations

import argparse
from pathlib import Path

from thtl_bench.cli.common import add_common, load_cfg


def _records_dirs(args: argparse.Namespace, cfg: dict) -> list[str]:
    return list(args.records) or [cfg["grid"]["records_dir"]]


def cmd_aggregate(args: argparse.Namespace) -> int:
    from thtl_bench import records
    from thtl_bench.analysis import aggregate, claims
    from thtl_bench.errors import UserError

    cfg = load_cfg(args)
    dirs = _records_dirs(args, cfg)
    for d in dirs:
        if not Path(d).exists():
            raise UserError(f"records folder {d} not found: run `thtl-bench grid` first")
    summary = aggregate.aggregate(records.load_all(dirs), cfg, **aggregate.load_artefacts(cfg["report"]["dir"]))
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
        path = report.write(cfg, _records_dirs(args, cfg))
    print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from thtl_bench.analysis import compare

    cfg = load_cfg(args)
    result, text = compare.run(args.a, args.b, cfg, args.records_path)
    print(text)
    return 1 if args.fail_on_regression and result["regressions"] else 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("aggregate", help="aggregate records into report.dir/summary.json")
    add_common(p)
    p.add_argument("records", nargs="*", help="record folders/files (default: grid.records_dir)")
    p.add_argument("--out", default=None, help="summary path (default: report.dir/summary.json)")
    p.set_defaults(func=cmd_aggregate)

    p = subparsers.add_parser("report", help="write REPORT.md, metrics.json, plot data and figures")
    add_common(p)
    p.add_argument("records", nargs="*", help="record folders (default: grid.records_dir)")
    p.add_argument("--summary", default=None,
                   help="render from this summary.json (written by `aggregate`) instead of the records")
    p.set_defaults(func=cmd_report)

    from thtl_bench.analysis.compare import GATE

    p = subparsers.add_parser(
        "compare", help="did a change move a result? record folders, summary JSONs or git revisions",
        description="Compare A (before) with B (after): which cases have identical test predictions and why the "
                    "others changed; for changed cells the paired per-replicate difference B - A by the claims' "
                    f"rule; which claim verdicts moved and why. The gate {GATE}.",
        epilog="example: thtl-bench compare origin/main records/smoke --fail-on-regression")
    add_common(p)
    p.add_argument("a", help="before: records folder, summary JSON or git revision")
    p.add_argument("b", help="after: records folder, summary JSON or git revision")
    p.add_argument("--records", dest="records_path", default=None,
                   help="records folder inside a git revision (default: grid.records_dir)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when the gate fails (see above)")
    p.set_defaults(func=cmd_compare)
