"""`thtl-bench synth` and `thtl-bench data check|split|verify`: thin shells over the data layer."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from thtl_bench import domains
from thtl_bench.cli.common import load_cfg, subcommand
from thtl_bench.errors import UserError


def _domains(args: argparse.Namespace, cfg: dict) -> list[str]:
    """--domain (argparse checks the names), else the profile's own: the target and the grid's intermediate domains."""
    from thtl_bench.data.check import profile_domains

    return list(args.domain or profile_domains(cfg))


def _synth(args: argparse.Namespace) -> int:
    from thtl_bench.data.phantoms import format_stats, synth

    cfg = load_cfg(args)
    out = Path(args.out or cfg["data"]["root"])
    if cfg["data"]["kind"] != "phantom" and not args.out:
        # dvc.yaml's synth stage on real data: the data set is the stage's output, as found.
        if not out.is_dir():
            raise UserError(f"data.kind is {cfg['data']['kind']!r} for profile {cfg['profile']!r} but {out} is missing: put "
                            f"the data set there (docs/reproducibility.md) or `dvc pull synth`")
        print(f"data.kind is {cfg['data']['kind']!r}: {out} is used as found, nothing synthesised "
              "(`thtl-bench data check` checks it)")
        return 0
    t0 = time.perf_counter()
    doms = _domains(args, cfg)
    stats = synth(out, cfg["synth"], doms, profile=cfg.get("profile"), sheets=args.sheets)
    if not args.out and not args.domain:
        _drop_stale(out, doms)
    print(format_stats(stats))
    print(f"wrote phantoms to {out}/ in {time.perf_counter() - t0:.1f} s "
          f"(profile {cfg.get('profile')}, seed {cfg['synth']['seed']}, {cfg['synth']['image_size']} px)")
    return 0


def _drop_stale(root: Path, keep: list[str]) -> None:
    """Phantom domain folders the profile no longer has (the generator's meta marks them; nothing
    else is touched): the data folder then holds exactly the profile's domains."""
    import shutil

    from thtl_bench.data.cache import phantom_meta

    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in keep):
        if phantom_meta(sub) is not None:
            shutil.rmtree(sub)
            print(f"removed {sub}: phantoms of a domain the profile no longer lists (grid.domains)")


def _check(args: argparse.Namespace) -> int:
    from thtl_bench.data.check import check_domain, format_report

    cfg = load_cfg(args)
    errors, reports = 0, {}
    for d in _domains(args, cfg):
        rep = check_domain(cfg, d)
        print(format_report(rep, limit=args.limit))
        errors += rep["errors"]
        reports[d] = rep
    if args.json:
        # Counts and problems as a DVC metric (uncached, in git): `dvc metrics diff` shows data changes.
        from thtl_bench.io import atomic_write_json

        atomic_write_json(args.json, reports)
    return 1 if errors else 0


def _split(args: argparse.Namespace) -> int:
    from thtl_bench.data import splits
    from thtl_bench.data.cache import content_hashes, listing_or_raise

    cfg = load_cfg(args)
    for d in _domains(args, cfg):
        lst = listing_or_raise(cfg, d)
        hashes = content_hashes(cfg, lst)
        for k in splits.split_seeds(cfg):
            rows = splits.compute(cfg, [s.id for s in lst.samples], [s.label for s in lst.samples],
                                  [s.group for s in lst.samples], hashes, k)
            path = splits.split_path(cfg, d, k)
            splits.write(path, rows)
            print(f"{path}: {len(rows)} images, {len({r['group'] for r in rows})} groups")
            for c, row in sorted(splits.counts(rows).items()):
                print(f"  {c:<10} " + " ".join(f"{s}={row.get(s, 0)}" for s in ("train", "val", "test")))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from thtl_bench.data.check import verify

    cfg = load_cfg(args)
    for line in verify(cfg, regenerate=not args.no_regenerate):
        print(line)
    return 0


def add_cli(subparsers) -> None:
    p = subcommand(subparsers, "synth", help="write synthetic vascular phantoms of the profile's domains in the real layouts",
                   description="Write the profile's phantom domains (the target and grid.domains) into data.root "
                               "(default data/<profile>: dvc.yaml's synth stage output), byte-identical on every CPU; "
                               "phantom domains the profile no longer lists are removed from it. With data.kind real "
                               "the folder is used as found (nothing is written).",
                   example="thtl-bench synth --profile domains --sheets /tmp/sheets")
    p.add_argument("--out", default=None, help="output folder (default: the profile's data.root)")
    p.add_argument("--domain", action="append", choices=domains.NAMES,
                   help="only this domain (repeatable; default: the profile's target and grid.domains)")
    p.add_argument("--sheets", default=None, metavar="DIR",
                   help="also write a contact sheet per domain, DIR/phantoms_<domain>.png (outside the data)")
    p.set_defaults(func=_synth)

    data = subcommand(subparsers, "data", help="check, split and verify the data folder", params=False,
                      example="thtl-bench data check --profile smoke --limit 10")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    q = subcommand(sub, "check", help="report every problem of the data folder, with counts (exit 1 on errors)",
                   example="thtl-bench data check --profile smoke --json report/data_check.json")
    q.add_argument("--domain", action="append", choices=domains.NAMES, help="only this domain (repeatable)")
    q.add_argument("--limit", type=int, default=50, help="problems printed per domain")
    q.add_argument("--json", default=None, metavar="PATH", help="also write the reports as JSON (dvc.yaml: report/data_check.json)")
    q.set_defaults(func=_check)
    q = subcommand(sub, "split", help="write splits/<profile>/<domain>/k<seed>.csv for every split seed of grid.replicates",
                   example="thtl-bench data split --profile smoke --domain larynx")
    q.add_argument("--domain", action="append", choices=domains.NAMES, help="only this domain (repeatable)")
    q.set_defaults(func=_split)
    q = subcommand(sub, "verify", help="check the profile's data folder against the hash dvc.lock records for it "
                                       "(regenerating missing phantoms first)",
                   example="thtl-bench data verify --profile smoke --no-regenerate")
    q.add_argument("--no-regenerate", action="store_true", help="never regenerate a missing phantom folder")
    q.set_defaults(func=_verify)
