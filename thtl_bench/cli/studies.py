"""`thtl-bench references` and `thtl-bench transfer`: the study artefacts beside the records.

- references -> <report.dir>/references.json: majority rate, ceiling on the phantoms' per-image
  truth and colour-histogram shortcut probe per domain and split seed (thtl_bench.data.references);
- transfer -> <report.dir>/transfer.json: LogME, H-score, LEEP, NCE of each THTL step-1 network on
  the larynx training split, and Fréchet distance / MMD of ImageNet features between the
  intermediate and the target images (thtl_bench.transfer).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from thtl_bench.cli.common import load_cfg, subcommand


def _references(args: argparse.Namespace) -> int:
    from thtl_bench.data import references
    from thtl_bench.io import atomic_write_json

    cfg = load_cfg(args)
    t0 = time.perf_counter()
    doc = references.for_config(cfg)
    out = atomic_write_json(Path(cfg["report"]["dir"]) / "references.json", doc)
    for e in doc["entries"]:
        ceiling = "-" if e["ceiling"] is None else f"{e['ceiling']['accuracy']:.3f}"
        print(f"{e['domain']:<16} k{e['split_seed']}  test {e['n_test']:>4} ({e['test_groups']} groups)  "
              f"majority {e['majority']['accuracy']:.3f}  ceiling {ceiling}  shortcut {e['shortcut']['accuracy']:.3f}")
    for d, meta in doc["data"].items():
        if meta["ceiling_columns"] is None:
            print(f"{d}: no ceiling ({references.NO_TRUTH})")
    print(f"{len(doc['entries'])} entries (domain x split seed) -> {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from thtl_bench import transfer

    cfg = load_cfg(args)
    t0 = time.perf_counter()
    doc = transfer.compute(cfg, args.checkpoints, strict=args.strict, progress=lambda line: print(line, flush=True))
    out = transfer.write(cfg, doc)
    print(f"{len(doc['entries'])} step-1 network(s) scored, {len(doc['skipped'])} skipped -> {out} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


def add_cli(subparsers: Any) -> None:
    p = subcommand(
        subparsers, "references", help="reference points per domain and split seed (report/references.json)",
        example="thtl-bench references --profile domains -S stats.bootstrap=500",
        description="Majority rate, ceiling (logistic regression on the phantom generator's per-image truth; "
                    "none for real data) and colour-histogram shortcut probe on the test split of every "
                    "domain of the profile and every split seed of grid.replicates, with patient-bootstrap "
                    "intervals (stats.bootstrap, stats.bootstrap_seed, stats.confidence); writes "
                    "<report.dir>/references.json.")
    p.set_defaults(func=_references)

    p = subcommand(
        subparsers, "transfer", help="transferability scores of the THTL step-1 networks (report/transfer.json)",
        example="thtl-bench transfer --profile domains --strict",
        description="Score each THTL step-1 network of the grid on the larynx training split (LogME, "
                    "H-score, LEEP, NCE) and measure the Fréchet distance and MMD between ImageNet "
                    "features of the intermediate and the target images; writes <report.dir>/transfer.json. "
                    "Cases without a checkpoint are skipped and listed (create them with `thtl-bench run "
                    "... --arm thtl_step1 --ensure-checkpoint`).")
    p.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="checkpoints folder (default: grid.checkpoints_dir)")
    p.add_argument("--strict", action="store_true",
                   help="fail, naming every missing checkpoint and its command, instead of skipping")
    p.set_defaults(func=_transfer)
