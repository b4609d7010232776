"""`thtl-bench run` (one case) and `thtl-bench grid` (all cases, or one shard)."""

from __future__ import annotations

import argparse
import json

from thtl_bench.cli.common import add_common, load_cfg
from thtl_bench.errors import UserError


def _csv(text: str) -> list[str]:
    return [t for t in text.replace(" ", ",").split(",") if t]


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    return i, n


def _summary(rec: dict) -> dict:
    out = {"slug": rec["slug"], "case_id": rec["case_id"], "status": rec["status"]}
    if rec["status"] == "ok":
        out["test"] = {k: v for k, v in rec["metrics"]["test"].items() if k != "confusion"}
        out["wall_s"] = round(rec["timing"]["wall_s"], 2)
    else:
        out["reason"] = rec.get("reason")
    return out


def _run(args) -> int:
    from thtl_bench.engine import run_case

    cfg = load_cfg(args)

    def show(ev):
        print(f"{ev['case']} {ev['stage']} epoch {ev['epoch']}/{ev['max_epochs']} val_loss {ev['val_loss']:.4f}",
              flush=True)

    rec = run_case(cfg, args.model, args.arm, args.seed, progress=None if args.quiet else show,
                   ensure_checkpoint=args.ensure_checkpoint)
    print(json.dumps(_summary(rec), indent=1))
    return 0


def _grid(args) -> int:
    from thtl_bench.engine import grid

    cfg = load_cfg(args)
    g = cfg["grid"]
    if args.models:
        g["models"] = _csv(args.models)
    if args.arms:
        g["arms"] = _csv(args.arms)
    if args.seeds:
        try:
            g["seeds"] = [int(s) for s in _csv(args.seeds)]
        except ValueError:
            raise UserError(f"--seeds {args.seeds!r}: expected integers, e.g. 0,1,2") from None
    recs = grid.run_grid(cfg, shard=args.shard, progress=not args.quiet, ensure_checkpoint=args.ensure_checkpoint)
    done = sum(r["status"] == "ok" for r in recs)
    print(f"{done}/{len(recs)} cases ok; records in {g['records_dir']}")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("run", help="train and evaluate one case (skipped when its record exists)")
    add_common(p)
    p.add_argument("--model", required=True, help="model name (thtl_bench.models registry)")
    p.add_argument("--arm", required=True, help="arm name (thtl_bench.arms.ARMS)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--ensure-checkpoint", action="store_true",
                   help="re-run a finished case whose best.pt is missing (e.g. a fresh clone: records are in git, weights are not)")
    p.set_defaults(func=_run)

    p = subparsers.add_parser("grid", help="run the grid of models x seeds x arms from params.yaml")
    add_common(p)
    p.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                   help="run only shard I of N (0-based); every case is in exactly one shard")
    p.add_argument("--models", default=None, help="comma list overriding grid.models")
    p.add_argument("--arms", default=None, help="comma list overriding grid.arms")
    p.add_argument("--seeds", default=None, help="comma list overriding grid.seeds")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ensure-checkpoint", action="store_true", help="re-run finished cases whose best.pt is missing")
    p.set_defaults(func=_grid)
