"""`thtl-bench synth` and `thtl-bench data check|split|verify`: thin shells over the data layer."""

from __future__ import annotations

import argparse
import time

from thtl_bench.cli.common import add_common, load_cfg


def _domains(args: argparse.Namespace, cfg: dict) -> list[str]:
    """--domain, else the profile's own: the target and the grid's intermediate domains."""
    from thtl_bench import domains
    from thtl_bench.data.check import profile_domains

    for d in args.domain or []:
        domains.get(d)  # unknown names fail loudly
    return list(args.domain or profile_domains(cfg))


def _synth(args: argparse.Namespace) -> int:
    from thtl_bench.data.phantoms import format_stats, synth

    cfg = load_cfg(args)
    out = args.out or cfg["data"]["root"]
    t0 = time.perf_counter()
    stats = synth(out, cfg["synth"], _domains(args, cfg), profile=cfg.get("profile"), sheets=args.sheets)
    print(format_stats(stats))
    print(f"wrote phantoms to {out}/ in {time.perf_counter() - t0:.1f} s "
          f"(profile {cfg.get('profile')}, seed {cfg['synth']['seed']}, {cfg['synth']['image_size']} px)")
    return 0


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
    from thtl_bench.data.check import verify, write_dvc_file

    cfg = load_cfg(args)
    if args.update:
        print(f"wrote {write_dvc_file(cfg)}")
        return 0
    for line in verify(cfg, regenerate=not args.no_regenerate):
        print(line)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("synth", help="write synthetic vascular phantoms (both domains) in the real layouts")
    add_common(p)
    p.add_argument("--out", default=None, help="output folder (default: the profile's data.root)")
    p.add_argument("--domain", action="append",
                   help="only this domain (repeatable; default: the profile's target and grid.domains)")
    p.add_argument("--sheets", default=None, metavar="DIR",
                   help="also write a contact sheet per domain, DIR/phantoms_<domain>.png (outside the data)")
    p.set_defaults(func=_synth)

    data = subparsers.add_parser("data", help="check, split and verify the data folder")
    sub = data.add_subparsers(dest="data_command", required=True)
    for name, fn, text in (("check", _check, "report every problem of the data folder, with counts (exit 1 on errors)"),
                           ("split", _split, "write splits/<domain>/k<seed>.csv for every split seed of the grid"),
                           ("verify", _verify, "check the profile's data folder against its .dvc file; regenerate "
                                               "phantoms if the folder is missing")):
        q = sub.add_parser(name, help=text)
        add_common(q)
        q.set_defaults(func=fn)
        if name != "verify":
            q.add_argument("--domain", action="append", help="only this domain (repeatable)")
    check_p = sub.choices["check"]
    check_p.add_argument("--limit", type=int, default=50, help="problems printed per domain")
    check_p.add_argument("--json", default=None, metavar="PATH", help="also write the reports as JSON (a DVC metric)")
    verify_p = sub.choices["verify"]
    verify_p.add_argument("--update", action="store_true", help="(re)write the profile's .dvc file from its data folder")
    verify_p.add_argument("--no-regenerate", action="store_true", help="never regenerate a missing phantom folder")
