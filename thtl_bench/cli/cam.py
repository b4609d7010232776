"""`thtl-bench cam`: LayerCAM figures per arm and layer group, with vessel-mass shares (thtl_bench.cam)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thtl_bench.cli.common import load_cfg, subcommand


def _cmd(args: argparse.Namespace) -> int:
    from thtl_bench import cam

    cfg = load_cfg(args)
    entries = cam.render(cfg, args.checkpoints)
    for fig in sorted({e["figure"] for e in entries}):
        print(fig)
    print(f"{len(entries)} entries (arm x image) -> {Path(cfg['report']['dir']) / 'cam.json'}")
    return 0


def add_cli(subparsers: Any) -> None:
    p = subcommand(
        subparsers, "cam", help="LayerCAM figures per arm and layer group, with vessel-mass shares",
        example="thtl-bench cam --profile smoke -S cam.images_per_class=4",
        description="Render LayerCAM maps of cam.model / cam.replicate for every arm in cam.arms on chosen "
                    "larynx test images; writes figures to cam.out_dir and <report.dir>/cam.json.")
    p.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="checkpoints folder (default: grid.checkpoints_dir)")
    p.set_defaults(func=_cmd)
