"""`thtl-bench weights list|fetch|import`: offline-first ImageNet weights (thtl_bench.models.weights/fetch)."""

from __future__ import annotations

import os

from thtl_bench.cli.common import load_cfg, subcommand

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
    p = subcommand(subparsers, "weights", help="list, fetch or import ImageNet weights (offline-first)", params=False,
                   example="thtl-bench weights list --verify")
    sub = p.add_subparsers(dest="weights_command", required=True, metavar="SUBCOMMAND")
    pl = subcommand(sub, "list", help="per model: are ImageNet weights available offline, and from where",
                    example="thtl-bench weights list --profile paper")
    pl.add_argument("--verify", action="store_true", help="compute and check every file's sha256")
    pl.set_defaults(func=_cmd_list)
    pf = subcommand(sub, "fetch", help="download weights into the weights folder (needs network)",
                    example="thtl-bench weights fetch resnet18 tv:resnet34")
    pf.add_argument("models", nargs="+", metavar="MODEL", help="registered model (thtl_bench.catalog) or tv:NAME / timm:NAME")
    pf.add_argument("--dir", default=None, help="target folder (default: $THTL_WEIGHTS_DIR or weights.dir)")
    pf.add_argument("--force", action="store_true", help="download again even if the folder has the file")
    pf.set_defaults(func=_cmd_fetch)
    pi = subcommand(sub, "import", help="copy a checkpoint file into the weights folder after a strict load check",
                    example="thtl-bench weights import resnet18 /mnt/ckpt/resnet18-f37072fd.pth")
    pi.add_argument("model", metavar="MODEL", help="registered model (thtl_bench.catalog) or tv:NAME / timm:NAME")
    pi.add_argument("file", metavar="FILE", help="an ImageNet checkpoint of that model (state dict)")
    pi.add_argument("--dir", default=None, help="target folder (default: $THTL_WEIGHTS_DIR or weights.dir)")
    pi.set_defaults(func=_cmd_import)
