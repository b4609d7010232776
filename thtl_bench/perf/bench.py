"""Helpers of the performance benchmarks (benchmarks/test_perf.py), plain functions so the tests
run them on CPU at tiny size: the engine's train step as a callable, interleaved timing, the
engine input path vs ready tensors, the matmul peak, MFU rows, the shared-step-1 check, the
compute-scaling check and a child process's wall time and peak memory.

Speed ratios depend on the machine and on whatever else runs on it; every figure carries the
machine facts (`machine`) and the knobs it was measured with.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from thtl_bench import records
from thtl_bench.engine import env, loop, runtime
from thtl_bench.engine.feeder import Feeder, Suffix
from thtl_bench.io import atomic_write_json, sha256_file
from thtl_bench.perf import flops

THTL_CHILDREN = ("thtl_last", "thtl_all", "swft")


def train_step(model, device: torch.device, amp: torch.dtype | None, max_grad_norm: float | None,
               train_cfg: dict, lr: float = 1e-4) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """The engine's training step (engine.loop.train_step, its optimizer from the train section),
    all layers trainable, as a callable of one batch: what the throughput figures time."""
    runner = Suffix(model, list(model.stages))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = loop.make_optimizer([{"params": params, "lr": lr}], train_cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loop.train_step(runner, opt, scaler, params, x, y, device, amp, max_grad_norm)

    return step


def interleaved(fns: dict[str, Callable[[], None]], device: torch.device, *, warmup: int, steps: int,
                rounds: int, sync: str = "default") -> dict[str, list[float]]:
    """Seconds per step of each callable, per round. Rounds alternate the order (ABBA...), so
    a slow drift of the machine's load hits every callable alike; CUDA is synchronised around
    each timed block (the timm benchmark.py method: fixed warm-up, then fixed timed steps), and
    inside a timed block CUDA's sync debug mode is `sync` (runtime.sync_check: "error" makes a
    host round trip inside a step fail)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            runtime.synchronize(device)
            t0 = time.perf_counter()
            with runtime.sync_check(device, sync):
                for _ in range(steps):
                    fns[name]()
            runtime.synchronize(device)
            out[name].append((time.perf_counter() - t0) / steps)
    return out


def pipeline_vs_ready(model, images_u8: torch.Tensor, labels: torch.Tensor, *, device: torch.device,
                      amp: torch.dtype | None, channels_last: bool, batch_size: int, aug_cfg: dict,
                      max_grad_norm: float | None, warmup: int, steps: int, rounds: int,
                      train_cfg: dict, seed: int = 0, sync: str = "default") -> dict:
    """Training images/s through the engine's input path vs a ready float tensor.

    engine: Feeder (no frozen prefix: all layers train) gathers a random batch of uint8 NHWC
    images on `device`, converts, augments on tensors, normalises, then the train step.
    ready: the same step on one pre-normalised batch held in memory (timm benchmark.py).
    Ratio = median over rounds of the per-round ratio (rounds are paired in time)."""
    n = len(images_u8)
    splits = {s: (images_u8, labels) for s in ("train", "val", "test")}
    gen = torch.Generator(device=device).manual_seed(seed)
    feeder = Feeder(model, [], splits, device=device, amp=amp, batch_size=batch_size, aug_cfg=aug_cfg,
                    augment_train=True, cache=False, views=1, view_seed=seed, channels_last=channels_last,
                    aug_gen=gen, max_cache_bytes=0.0)
    assert feeder.augment_train and not feeder.cache
    order = torch.Generator(device=device).manual_seed(seed)
    ready_x, ready_y = feeder.batch("train", torch.arange(min(batch_size, n), device=device), train=False)
    # A dense tensor in the layout the model trains in (to_float's output is an NHWC-strided
    # view; on CPU that alone costs ~25% of a resnet18 step, see benchmarks/README.md).
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ready_x, ready_y = ready_x.contiguous(memory_format=fmt).clone(), ready_y.clone()
    model.train()
    step = train_step(model, device, amp, max_grad_norm, train_cfg)

    def engine() -> None:
        # a random batch, drawn and indexed on the device (the engine moves each epoch's order once)
        idx = torch.randperm(n, generator=order, device=device)[:batch_size]
        step(*feeder.batch("train", idx, train=True))

    def ready() -> None:
        step(ready_x, ready_y)

    t = interleaved({"engine": engine, "ready": ready}, device, warmup=warmup, steps=steps, rounds=rounds, sync=sync)
    bs = len(ready_y)
    ratios = [r / e for e, r in zip(t["engine"], t["ready"], strict=True)]
    return {"engine_images_per_s": bs / statistics.median(t["engine"]),
            "ready_images_per_s": bs / statistics.median(t["ready"]),
            "ratio": statistics.median(ratios), "round_ratios": ratios,
            "engine_s_per_step": t["engine"], "ready_s_per_step": t["ready"], "batch": bs,
            "ready_x": ready_x, "ready_y": ready_y}


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 8192, reps: int = 20,
                warmup: int = 3) -> float:
    """Measured dense matmul FLOP/s of the card: best of `reps` timed n x n x n products."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(warmup):
        a @ b
    best = float("inf")
    for _ in range(reps):
        runtime.synchronize(device)
        t0 = time.perf_counter()
        a @ b
        runtime.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best


def machine(device: torch.device) -> dict:
    """Which machine produced a figure, and how busy it was (CPU timings share the cores)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"device": str(device), "device_name": env.device_name(device), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "loadavg_1m": round(load[0], 2)}


def save_result(cfg: dict, case: str, entry: dict) -> Path:
    """Merge one case's result into <report.dir>/perf.json (keyed by case, atomic write)."""
    path = Path(cfg["report"]["dir"]) / "perf.json"
    doc = {}
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError:
            doc = {}
    doc[case] = {**entry, "profile": cfg["profile"],
                 "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(path, doc)
    return path


def judge(value: float | None, target: float | None, op: str) -> bool | None:
    """Target met? None when there is no value or no target (not judged)."""
    if value is None or target is None:
        return None
    return {">=": value >= float(target), "<": value < float(target), "<=": value <= float(target)}[op]


def throughput_settings(cfg: dict, device: torch.device) -> dict:
    """Knobs of the throughput case. CUDA: the target's setting (bf16 autocast, channels_last,
    bench.gpu_image_size / gpu_batch_size, the gpu step counts). Elsewhere: the profile's own
    training setting, so a CPU run measures what the smoke grid runs (and is not judged)."""
    b, t = cfg["bench"], cfg["train"]
    if device.type == "cuda":
        return {"amp": torch.bfloat16, "channels_last": True, "size": int(b["gpu_image_size"]),
                "batch": int(b["gpu_batch_size"]), "warmup": int(b["gpu_warmup_steps"]),
                "steps": int(b["gpu_timed_steps"]), "peak_dtype": torch.bfloat16, "peak_n": 8192}
    amp = runtime.amp_dtype(t, device)
    return {"amp": amp, "channels_last": False, "size": int(cfg["data"]["image_size"]),
            "batch": int(t["batch_size"]), "warmup": int(b["warmup_steps"]), "steps": int(b["timed_steps"]),
            "peak_dtype": amp or torch.float32, "peak_n": 1024}


def mfu_row(name: str, res: dict, size: int, peak: float) -> dict:
    """Achieved training FLOP/s (counted forward FLOPs x 3, thtl_bench.perf.flops) over the peak."""
    fwd = flops.per_image(name, size)
    step = flops.TRAIN_PER_FORWARD * fwd * res["batch"] if fwd else None
    achieved = step * res["engine_images_per_s"] / res["batch"] if step else None
    return {"model": name, "ratio": res["ratio"], "engine_images_per_s": res["engine_images_per_s"],
            "ready_images_per_s": res["ready_images_per_s"], "round_ratios": res["round_ratios"],
            "train_step_gflop": step / 1e9 if step else None,
            "achieved_tflops": achieved / 1e12 if achieved else None, "peak_tflops": peak / 1e12,
            "mfu": achieved / peak if achieved else None}


def same_predictions(a: dict, b: dict, atol: float) -> float:
    """The largest difference between two records' test probabilities (the same case run two ways,
    e.g. with and without the feature cache), asserted within `atol`. Determinism means that one
    path run again gives the same bits; two paths are not one: the cached prefix runs over other
    batches (and, with channels_last on CPU, other kernels) than the per-batch prefix, so they
    agree to rounding (measured 3e-7 on CPU at 64 px), and on a GPU to bf16 and autotuning
    differences. AssertionError names the gap."""
    ta, tb = a["predictions"]["test"], b["predictions"]["test"]
    assert ta["ids"] == tb["ids"] and ta["labels"] == tb["labels"], "not the same test images"
    pa, pb = np.asarray(ta["probs"], dtype=float), np.asarray(tb["probs"], dtype=float)
    gap = float(np.abs(pa - pb).max()) if pa.size else 0.0
    if all((r.get("env") or {}).get("determinism", {}).get("bitwise") for r in (a, b)):
        atol = min(atol, FP32_ROUNDING)  # fp32 on both sides: rounding only
    assert gap <= atol, f"test probabilities differ by up to {gap:.3g} (> {atol:g})"
    return gap


FP32_ROUNDING = 1e-5  # two fp32 paths of one computation (e.g. other batchings): differences this small


def fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def step1_shared_problems(cfg: dict, recs: list[dict], files: list[Path]) -> list[str]:
    """Why THTL step 1 was not shared, if it was not: one step-1 record per step-1 case; each
    THTL child names that record as its parent, started from the same best.pt (sha256), and was
    created after it (a step 1 re-run after its children would be newer)."""
    from thtl_bench.engine.identity import parent_case

    problems = []
    counts: dict[str, int] = {}
    for f in files:
        r = records.read(f)
        if r["case"]["arm"] == "thtl_step1":
            counts[r["slug"]] = counts.get(r["slug"], 0) + 1
    problems += [f"{slug}: {n} step-1 records" for slug, n in counts.items() if n > 1]
    step1 = {r["slug"]: r for r in recs if r["case"]["arm"] == "thtl_step1"}
    shas: dict[str, set] = {}
    for r in recs:
        if r["case"]["arm"] not in THTL_CHILDREN or r["status"] != "ok":
            continue
        pslug = parent_case(records.Case.of(r)).slug
        parent = step1.get(pslug)
        if parent is None:
            problems.append(f"{r['slug']}: no step-1 record ({pslug})")
            continue
        if (r.get("parent") or {}).get("case_id") != parent["case_id"]:
            problems.append(f"{r['slug']}: parent {r.get('parent')} != step-1 case_id {parent['case_id']}")
        if r["weights"].get("detail", {}).get("parent_case_id") != parent["case_id"]:
            problems.append(f"{r['slug']}: started from {r['weights'].get('source')} of another step 1")
        if r["created"] < parent["created"]:
            problems.append(f"{r['slug']}: created {r['created']} before its step 1 ({parent['created']}): re-run")
        shas.setdefault(pslug, set()).add(r["weights"].get("sha256"))
    for pslug, found in shas.items():
        best = Path(cfg["grid"]["checkpoints_dir"]) / pslug / "best.pt"
        if best.is_file():
            found = found | {sha256_file(best)}
        if len(found) > 1:
            problems.append(f"{pslug}: THTL arms started from {len(found)} different step-1 weights")
    return problems


def scaling_check(name: str, from_px: int, to_px: int, device: torch.device, *, amp: torch.dtype | None,
                  batch_size: int, warmup: int, steps: int, rounds: int, train_cfg: dict) -> dict:
    """How well counted FLOPs predict the change of training step time between two image sizes
    (the projection's compute scaling): interleaved ready-tensor train steps of one model at
    both sizes. time_over_flop < 1: the projection overestimates (small images use the machine
    less well); > 1: it underestimates."""
    from thtl_bench import models

    fns, per = {}, {}
    for px in (from_px, to_px):
        runtime.seed_everything(0)
        model = models.build(name, 2, init="random", image_size=px).to(device).train()
        x = torch.randn(batch_size, 3, px, px, device=device)
        y = torch.arange(batch_size, device=device) % 2
        step = train_step(model, device, amp, None, train_cfg)
        fns[px] = functools.partial(step, x, y)
        per[px] = flops.per_image(name, px)
    t = interleaved({str(k): v for k, v in fns.items()}, device, warmup=warmup, steps=steps, rounds=rounds)
    time_ratio = statistics.median(b / a for a, b in zip(t[str(from_px)], t[str(to_px)], strict=True))
    flop_ratio = per[to_px] / per[from_px] if per[to_px] and per[from_px] else None
    return {"model": name, "from_px": from_px, "to_px": to_px, "batch": batch_size,
            "s_per_step": {str(k): statistics.median(v) for k, v in t.items()},
            "time_ratio": time_ratio, "flop_ratio": flop_ratio,
            "time_over_flop": time_ratio / flop_ratio if flop_ratio else None}


def run_child(cmd: list[str], env: dict | None = None) -> tuple[float, float, int, str]:
    """(wall s, max RSS GiB, exit code, output tail) of one child process. os.wait4 gives the
    rusage of this child alone (getrusage(RUSAGE_CHILDREN) would be the max over every child
    this process ever waited for)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    return wall, usage.ru_maxrss / 2**20, proc.returncode, out[-3000:]  # ru_maxrss: KiB on Linux
