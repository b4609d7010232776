"""The `thtl-bench` command: a thin shell over the package's functions, one module per command group.

Each module here exposes `add_cli(subparsers)` and registers its subcommand(s) with a
`func(args) -> int` default; the logic lives in the package, never here, and nothing outside
this folder imports it.
"""

from __future__ import annotations

import argparse
import sys

from thtl_bench.cli import calibration, cam, data, engine, perf, report, studies, weights

# Command groups in the order they appear in --help.
GROUPS = (data, weights, engine, studies, calibration, report, cam, perf)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thtl-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from thtl_bench.errors import UserError

    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        # Expected failures (bad data, missing weights, unknown names) print one clear message.
        print(f"thtl-bench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
