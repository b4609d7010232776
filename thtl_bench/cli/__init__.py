"""The `thtl-bench` command: a thin shell over the package's functions, one module per command group.

Each module here exposes `add_cli(subparsers)` and registers its subcommand(s) with a
`func(args) -> int` default; the logic lives in the package, never here, and nothing outside
this folder imports it. Every subcommand's --help ends with one example (cli.common.subcommand).
"""

from __future__ import annotations

import argparse
import sys

from thtl_bench.cli import calibration, cam, data, engine, perf, records, report, studies, weights

# Command groups in the order they appear in --help.
GROUPS = (data, weights, engine, records, studies, calibration, report, cam, perf)
EXAMPLES = """typical sequence (the default profile; dvc repro runs the same, docs/reproducibility.md):
  thtl-bench synth && thtl-bench data split && thtl-bench grid && thtl-bench aggregate && thtl-bench report
every subcommand: thtl-bench COMMAND --help (with an example)"""


def version() -> str:
    """The installed distribution's version (the package's own when it runs from a source tree)."""
    from importlib import metadata

    from thtl_bench import __version__

    try:
        return metadata.version("thtl-bench")
    except metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thtl-bench", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
