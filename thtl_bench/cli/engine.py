"""`thtl-bench run` (one case) and `thtl-bench grid` (all cases, or one shard)."""

from __future__ import annotations

import argparse
import json

from thtl_bench import arms, domains
from thtl_bench.cli.common import load_cfg, subcommand
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


def _case(args):
    from thtl_bench.records import Case

    a = arms.get(args.arm)
    if a.via_intermediate and not args.domain:
        raise UserError(f"--arm {args.arm} goes through an intermediate domain: give --domain (e.g. fundus)")
    if not a.via_intermediate and args.domain:
        raise UserError(f"--arm {args.arm} does not use an intermediate domain: drop --domain")
    if a.trains_on == "intermediate" and args.target_fraction != 1.0:
        raise UserError(f"--arm {args.arm} never sees the target: drop --target-fraction")
    return Case(args.model, args.arm, args.seed, args.split, args.domain or None, args.target_fraction,
                args.intermediate_fraction if a.via_intermediate else 1.0)


def _off_grid(cfg: dict, case) -> list[str]:
    """Why `case` is not one of the profile's grid cases (empty when it is)."""
    from thtl_bench.engine import grid

    if case in grid.cases(cfg):
        return []
    g = cfg["grid"]
    pairs = [(int(s), int(k)) for s, k in g["replicates"]]
    why = []
    if case.model not in g["models"]:
        why.append(f"model {case.model} is not in grid.models {g['models']}")
    if case.arm not in g["arms"]:
        why.append(f"arm {case.arm} is not in grid.arms {g['arms']}")
    if (case.seed, case.split) not in pairs:
        paired = [k for s, k in pairs if s == case.seed]
        hint = f" (did you mean --seed {case.seed} --split {paired[0]}?)" if paired else ""
        why.append(f"replicate (seed {case.seed}, split {case.split}) is not in grid.replicates "
                   f"{', '.join(f'{s}/{k}' for s, k in pairs)}{hint}")
    if case.domain is not None and case.domain not in g["domains"]:
        why.append(f"domain {case.domain} is not in grid.domains {g['domains']}")
    if not why:
        why.append(f"its data shares (target {case.target_fraction:g}, intermediate {case.intermediate_fraction:g}) "
                   f"are not a point of grid.target_fractions {g['target_fractions']} / grid.intermediate_fractions "
                   f"{g['intermediate_fractions']}")
    return why


def _run(args) -> int:
    from thtl_bench import catalog

    cfg = load_cfg(args)
    if catalog.model_known(args.model) is False:
        raise UserError(f"--model {catalog.unknown_models_text([args.model])}")
    case = _case(args)
    why = _off_grid(cfg, case)
    if why and not args.off_grid:
        raise UserError(f"{case.slug} is not a case of profile {cfg['profile']!r}'s grid: " + "; ".join(why) +
                        ". Its record would sit beside the grid's and count in nothing (aggregate leaves off-grid "
                        "replicates out). Run a grid case, widen the grid (-S grid....), or pass --off-grid to run "
                        "it anyway.")
    from thtl_bench.engine import run_case

    def show(ev):
        print(f"{ev['case']} {ev['stage']} epoch {ev['epoch']}/{ev['max_epochs']} val_loss {ev['val_loss']:.4f}",
              flush=True)

    rec = run_case(cfg, case, progress=None if args.quiet else show, ensure_checkpoint=args.ensure_checkpoint)
    print(json.dumps(_summary(rec), indent=1))
    return 0


def _grid(args) -> int:
    from thtl_bench import config
    from thtl_bench.engine import grid

    # The list options are overrides like any other, so config validates them.
    over = list(args.overrides)
    if args.models:
        over.append(f"grid.models=[{', '.join(_csv(args.models))}]")
    if args.arms:
        over.append(f"grid.arms=[{', '.join(_csv(args.arms))}]")
    if args.replicates:
        pairs = [r.split("/") for r in _csv(args.replicates)]
        if any(len(p) != 2 or not all(x.isdigit() for x in p) for p in pairs):
            raise UserError(f"--replicates {args.replicates!r}: expected seed/split pairs, e.g. 0/0,1/1")
        over.append(f"grid.replicates=[{', '.join(f'[{a}, {b}]' for a, b in pairs)}]")
    if args.domains:
        over.append(f"grid.domains=[{', '.join(_csv(args.domains))}]")
    cfg = config.load(args.params, args.profile, over)
    if args.workers > 1:
        if args.shard is not None:
            raise UserError("--workers runs every shard itself: drop --shard")
        return run_workers(len(grid.cases(cfg)), args.workers, _worker_argv(args, over))
    recs = grid.run_grid(cfg, shard=args.shard, progress=not args.quiet, ensure_checkpoint=args.ensure_checkpoint)
    done = sum(r["status"] == "ok" for r in recs)
    print(f"{done}/{len(recs)} cases ok; records in {cfg['grid']['records_dir']}")
    return 0


def run_workers(total: int, n: int, argv: list[str]) -> int:
    """Run the grid as `n` worker processes (`thtl-bench grid --shard i/n` with `argv`), at once,
    and wait for all of them. Shards share the records and checkpoint folders; case locks keep
    two workers off one case (a THTL child waits for its step 1), so the records are the ones a
    single process writes. A failed worker's output is shown and the others run to their end
    (nothing finished is lost); then the failure is raised."""
    import subprocess
    import sys
    import time

    procs = [subprocess.Popen([sys.executable, "-m", "thtl_bench.cli", "grid", "--shard", f"{i}/{n}", *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(n)]
    t0 = time.perf_counter()
    failed = []
    for i, p in enumerate(procs):
        out, _ = p.communicate()
        sys.stdout.write(out)
        if p.returncode:
            failed.append(i)
    print(f"{total} case(s) in {n} worker(s): {time.perf_counter() - t0:.1f} s wall", flush=True)
    if failed:
        raise UserError(f"grid worker(s) {', '.join(f'{i}/{n}' for i in failed)} failed (output above); "
                        "re-run the same command: finished cases are reused")
    return 0


def _worker_argv(args, overrides: list[str]) -> list[str]:
    """The `thtl-bench grid` arguments every worker process gets (its --shard is added per worker)."""
    argv = ["--quiet"] + (["--ensure-checkpoint"] if args.ensure_checkpoint else [])
    if args.params:
        argv += ["--params", str(args.params)]
    if args.profile:
        argv += ["--profile", str(args.profile)]
    for o in overrides:
        argv += ["-S", o]
    return argv


def add_cli(subparsers) -> None:
    p = subcommand(subparsers, "run", help="train and evaluate one case of the grid (skipped when its record exists)",
                   example="thtl-bench run --model efficientnet_lite0 --arm thtl_last --domain fundus --seed 1 --split 1")
    p.add_argument("--model", required=True,
                   help="model name: a registered model (thtl_bench.catalog) or tv:NAME / timm:NAME")
    p.add_argument("--arm", required=True, choices=arms.NAMES, help="arm (thtl_bench.arms)")
    p.add_argument("--seed", type=int, required=True, help="training seed of the replicate")
    p.add_argument("--split", type=int, default=0,
                   help="split seed of the replicate (default 0); (seed, split) must be a pair of grid.replicates")
    p.add_argument("--domain", default=None, choices=[d for d in domains.NAMES if d != domains.TARGET],
                   help="intermediate domain of a THTL arm (thtl_bench.domains)")
    p.add_argument("--target-fraction", type=float, default=1.0, help="share of the target training split")
    p.add_argument("--intermediate-fraction", type=float, default=1.0,
                   help="share of the intermediate training split (THTL arms)")
    p.add_argument("--off-grid", action="store_true",
                   help="run a case that is not in the profile's grid (models, arms, replicates, domains, shares); "
                        "aggregate leaves off-grid replicates out unless told")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--ensure-checkpoint", action="store_true",
                   help="re-run a finished case whose best.pt is missing (e.g. a fresh clone: records are in git, weights are not)")
    p.set_defaults(func=_run)

    p = subcommand(subparsers, "grid", help="run the grid of the profile (models x replicates x arms x domains)",
                   example="thtl-bench grid --profile domains --models efficientnet_lite0 --replicates 0/0,1/1")
    p.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                   help="run only shard I of N (0-based); every case is in exactly one shard")
    p.add_argument("--models", default=None, help="comma list overriding grid.models")
    p.add_argument("--arms", default=None, help=f"comma list overriding grid.arms (of {', '.join(arms.NAMES)})")
    p.add_argument("--replicates", default=None, metavar="S/K,...",
                   help="training seed / split seed pairs overriding grid.replicates, e.g. 0/0,1/1")
    p.add_argument("--domains", default=None,
                   help=f"comma list overriding grid.domains (of {', '.join(d for d in domains.NAMES if d != domains.TARGET)})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ensure-checkpoint", action="store_true", help="re-run finished cases whose best.pt is missing")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run the N shards at once in N processes (each with train.num_threads threads); "
                        "the records are the same as one process would write")
    p.set_defaults(func=_grid)
