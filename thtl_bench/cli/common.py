"""What every `thtl-bench` subcommand shares: the parameter-file options and loading the config."""

from __future__ import annotations

import argparse


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every subcommand that reads params.yaml accepts."""
    p.add_argument("--params", default=None, help="parameter file (default: params.yaml or $THTL_PARAMS)")
    p.add_argument("--profile", default=None, help="profile in params.yaml (default: its `profile` key or $THTL_PROFILE)")
    p.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter, e.g. -S train.max_epochs=2 (repeatable)")


def load_cfg(args: argparse.Namespace) -> dict:
    from thtl_bench import config

    return config.load(args.params, args.profile, args.overrides)
