"""`thtl-bench weights list|fetch|import`: offline-first ImageNet weights (thtl_bench.models.weights/fetch)."""

from __future__ import annotations

import os

from thtl_bench.cli.common import add_common, load_cfg

# Library modules are imported inside the commands: `thtl-bench --help` must not load torch.


def _cmd_list(args) -> int:
    from thtl_bench import models
    from thtl_bench.models import weights

    cfg = load_cfg(args)
    names = list(models.MODELS)
    names += [n for n in (cfg.get("grid") or {}).get("models", []) if n not in names]
    rows = []
    for name in names:
        spec = models.get(name)
        try:
            r = weights.find(spec, cfg, verify=args.verify)
            status = "ok" if args.verify else "found"
            rows.append((spec.name, status, r.source, r.verified, str(r.path)))
        except weights.WeightsUnavailable:
            rows.append((spec.name, "missing", "-", "-", "-"))
        except weights.WeightsError as exc:
            rows.append((spec.name, "BAD", "-", "-", str(exc).splitlines()[0]))
    widths = [max(len(str(r[i])) for r in rows + [("model", "weights", "source", "checksum", "file")]) for i in range(4)]
    header = ("model", "weights", "source", "checksum", "file")
    for row in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    env = os.environ.get(weights.WEIGHTS_DIR_ENV)
    print(f"\nweights folder: {weights.weights_dir(cfg)}" + (f" (from ${weights.WEIGHTS_DIR_ENV})" if env else " (weights.dir)"))
    if not args.verify:
        print("checksums not computed; add --verify to check every file")
    return 0


def _cmd_fetch(args) -> int:
    from thtl_bench import models
    from thtl_bench.models import fetch

    cfg = load_cfg(args)
    for name in args.models:
        spec = models.get(name)
        path = fetch.fetch(spec, cfg, dest=args.dir, force=args.force)
        print(f"{spec.name}: {path}")
    return 0


def _cmd_import(args) -> int:
    from thtl_bench import models
    from thtl_bench.models import fetch, weights

    cfg = load_cfg(args)
    spec = models.get(args.model)
    path = fetch.import_file(spec, args.file, cfg, dest=args.dir)
    print(f"{spec.name}: imported {args.file} -> {path} (loads strictly; sha256 in {path.parent / weights.MANIFEST})")
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("weights", help="list, fetch or import ImageNet weights (offline-first)")
    sub = p.add_subparsers(dest="weights_command", required=True)
    pl = sub.add_parser("list", help="per model: are ImageNet weights available offline, and from where")
    add_common(pl)
    pl.add_argument("--verify", action="store_true", help="compute and check every file's sha256")
    pl.set_defaults(func=_cmd_list)
    pf = sub.add_parser("fetch", help="download weights into the weights folder (needs network)")
    add_common(pf)
    pf.add_argument("models", nargs="+", metavar="MODEL")
    pf.add_argument("--dir", default=None, help="target folder (default: $THTL_WEIGHTS_DIR or weights.dir)")
    pf.add_argument("--force", action="store_true", help="download again even if the folder has the file")
    pf.set_defaults(func=_cmd_fetch)
    pi = sub.add_parser("import", help="copy a checkpoint file into the weights folder after a strict load check")
    add_common(pi)
    pi.add_argument("model", metavar="MODEL")
    pi.add_argument("file", metavar="FILE")
    pi.add_argument("--dir", default=None, help="target folder (default: $THTL_WEIGHTS_DIR or weights.dir)")
    pi.set_defaults(func=_cmd_import)
