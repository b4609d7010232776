"""What every `thtl-bench` subcommand shares: its parser (help, description, one example), the
parameter-file options and loading the config."""

from __future__ import annotations

import argparse


def subcommand(subparsers, name: str, *, help: str, example: str, description: str | None = None,
               params: bool = True) -> argparse.ArgumentParser:
    """A subcommand's parser: `help` in the command list, `description` (default: `help`) on top of
    its --help and `example` (one command line, `thtl-bench ...`) below it; `params` adds the
    parameter-file options."""
    p = subparsers.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                              epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
    if params:
        add_common(p)
    return p


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every subcommand that reads params.yaml accepts."""
    p.add_argument("--params", default=None, help="parameter file (default: params.yaml or $THTL_PARAMS)")
    p.add_argument("--profile", default=None,
                   help="profile in params.yaml: one of its `profiles:` (smoke, domains, paper as committed; "
                        "default: its `profile` key or $THTL_PROFILE)")
    p.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter, e.g. -S train.max_epochs=2 (repeatable)")


def load_cfg(args: argparse.Namespace) -> dict:
    from thtl_bench import config

    return config.load(args.params, args.profile, args.overrides)
