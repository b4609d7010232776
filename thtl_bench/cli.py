"""The `thtl-bench` command: a thin shell that wires the subcommands each module owns.

Each module exposes `add_cli(subparsers)` and registers its own subcommand(s) with a
`func(args) -> int` default, so the CLI never holds logic of its own.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that own subcommands, in the order they appear in --help.
COMMAND_MODULES = (
    "thtl_bench.data.cli",
    "thtl_bench.weights",
    "thtl_bench.engine_cli",
    "thtl_bench.report_cli",
    "thtl_bench.cam",
)


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every subcommand that reads params.yaml accepts."""
    p.add_argument("--params", default=None, help="parameter file (default: params.yaml or $THTL_PARAMS)")
    p.add_argument("--profile", default=None, help="profile in params.yaml (default: its `profile` key or $THTL_PROFILE)")
    p.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter, e.g. -S train.max_epochs=2 (repeatable)")


def load_cfg(args: argparse.Namespace) -> dict:
    from thtl_bench import config

    return config.load(args.params, args.profile, args.overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thtl-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
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
