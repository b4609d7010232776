"""`thtl-bench synth` and `thtl-bench data check|split|verify`: thin shells over the data layer."""

from __future__ import annotations

import argparse
import time

from thtl_bench.cli.common import add_common, load_cfg

DOMAINS = ("fundus", "larynx")
PHANTOM_DOMAINS = ("fundus", "larynx", "fundus_tortuous", "angio")  # thtl_bench.data.phantoms.DOMAINS


def _synth(args: argparse.Namespace) -> int:
    from thtl_bench.data.phantoms import DEFAULT_DOMAINS, format_stats, synth

    cfg = load_cfg(args)
    t0 = time.perf_counter()
    stats = synth(args.out, cfg["synth"], args.domain or DEFAULT_DOMAINS, profile=cfg.get("profile"), sheets=args.sheets)
    print(format_stats(stats))
    print(f"wrote phantoms to {args.out}/ in {time.perf_counter() - t0:.1f} s "
          f"(seed {cfg['synth']['seed']}, {cfg['synth']['image_size']} px)")
    return 0


def _check(args: argparse.Namespace) -> int:
    from thtl_bench.data.check import check_domain, format_report

    cfg = load_cfg(args)
    errors, reports = 0, {}
    for d in args.domain or DOMAINS:
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
    for d in args.domain or DOMAINS:
        lst = listing_or_raise(cfg, d)
        rows = splits.compute(cfg, [s.id for s in lst.samples], [s.label for s in lst.samples],
                              [s.group for s in lst.samples], content_hashes(cfg, lst))
        path = splits.split_path(cfg, d)
        splits.write(path, rows)
        frac = float(cfg["split"][splits.FRACTION_KEY[d]])
        print(f"{path}: {len(rows)} images, {len({r['group'] for r in rows})} groups")
        for c, row in sorted(splits.counts(rows, splits.apply_fraction(rows, frac)).items()):
            print(f"  {c:<10} " + " ".join(f"{s}={row.get(s, 0)}" for s in ("train", "val", "test", "unused")))
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
    p.add_argument("--out", default="data", help="output folder (default: data)")
    p.add_argument("--domain", action="append", choices=PHANTOM_DOMAINS,
                   help="only this domain (repeatable; default fundus and larynx)")
    p.add_argument("--sheets", default=None, metavar="DIR",
                   help="also write a contact sheet per domain, DIR/phantoms_<domain>.png (outside the data)")
    p.set_defaults(func=_synth)

    data = subparsers.add_parser("data", help="check, split and verify the data folder")
    sub = data.add_subparsers(dest="data_command", required=True)
    for name, fn, text in (("check", _check, "report every problem of the data folder, with counts (exit 1 on errors)"),
                           ("split", _split, "write splits/<domain>.csv (stratified, grouped, leak-free)"),
                           ("verify", _verify, "check data/ against data.dvc; regenerate phantoms if data/ is missing")):
        q = sub.add_parser(name, help=text)
        add_common(q)
        q.set_defaults(func=fn)
        if name != "verify":
            q.add_argument("--domain", action="append", choices=DOMAINS, help="only this domain (repeatable)")
    check_p = sub.choices["check"]
    check_p.add_argument("--limit", type=int, default=50, help="problems printed per domain")
    check_p.add_argument("--json", default=None, metavar="PATH", help="also write the reports as JSON (a DVC metric)")
    verify_p = sub.choices["verify"]
    verify_p.add_argument("--update", action="store_true", help="(re)write data.dvc from the current data folder")
    verify_p.add_argument("--no-regenerate", action="store_true", help="never regenerate a missing phantom folder")
