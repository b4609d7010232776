"""The study as benchmark cases: one per (model, arm, seed) of the profile's grid.

Each case runs through the engine (`run_case`), so a finished case is reused from its record,
never retrained. What pytest-benchmark times is what can be re-measured on every run: inference
of the case's selected weights over its test split (synchronised on CUDA). Training figures come
from the record (train images/s, epoch time, wall time) and go with the metrics and machine facts
into `extra_info`, so the benchmark JSON alone carries the case. A case whose ImageNet weights are
not available offline is skipped with the record's reason: other weights never stand in.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from thtl_bench.engine import grid, inputs, runtime
from thtl_bench.engine.augment import normalise, to_float


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        from thtl_bench import config

        cs = grid.cases(config.load())
        metafunc.parametrize("case", cs, ids=[c.slug for c in cs])


def _test_batch(cfg: dict, case, device: torch.device) -> torch.Tensor:
    dom = inputs.domain(cfg, case)
    u8 = torch.from_numpy(dom.images[dom.index("test")]).to(device)
    return normalise(to_float(u8))


def test_grid(benchmark, cfg, progress):
    """Train the grid first in `bench.grid_workers` processes (one shard each, thtl-bench grid
    --workers): on a 2-core CPU two single-thread workers train 1.4x faster than one two-thread
    process, and the records are the same (each case is deterministic for its settings). The
    study cases below then time inference on the trained cases. With one worker there is nothing
    to do here: the study cases train as they go."""
    from thtl_bench.engine import case_id
    from thtl_bench.engine.case import has_best
    from thtl_bench.records import RecordError, read, record_path

    n = int(cfg["bench"].get("grid_workers") or 1)
    cases = grid.cases(cfg)
    if n <= 1:
        benchmark.extra_info.update(workers=1)
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        return

    def ready(case) -> bool:
        cid = case_id(cfg, case)
        try:
            old = read(record_path(cfg["grid"]["records_dir"], case))
        except (OSError, RecordError):
            return False
        return old["status"] == "ok" and old["case_id"] == cid and has_best(
            cfg, case, cid, (old.get("checkpoint") or {}).get("sha256"))

    before = {c: ready(c) for c in cases}
    cmd = [sys.executable, "-m", "thtl_bench.cli", "grid", "--workers", str(n), "--quiet", "--ensure-checkpoint",
           "--profile", str(cfg["profile"])]

    def run() -> None:
        done = subprocess.run(cmd, capture_output=True, text=True)
        progress.write(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "grid: no output")
        if done.returncode:
            pytest.fail(f"`{' '.join(cmd[1:])}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    benchmark.pedantic(run, rounds=1, iterations=1)
    # the session's counts: what the workers trained and what they reused
    progress.state.update(grid_counted=True, total=len(cases),
                          study_cases_reused=sum(before.values()),
                          study_cases_trained=sum(1 for c in cases if not before[c] and ready(c)),
                          study_cases_not_run=sum(1 for c in cases if not ready(c)))
    benchmark.extra_info.update(workers=n, cases=len(cases), trained=progress.state["study_cases_trained"],
                                reused=progress.state["study_cases_reused"])


def test_case(benchmark, cfg, progress, case):
    from thtl_bench.engine import run_case
    from thtl_bench.engine.load import load_case_model

    cases = grid.cases(cfg)
    progress.state["total"] = len(cases)
    progress.state.setdefault("total_cost", sum(grid.case_cost(c) for c in cases))
    from thtl_bench.engine import case_id
    from thtl_bench.engine.case import has_best
    from thtl_bench.records import RecordError, read, record_path

    cid = case_id(cfg, case)
    try:  # count what this session trains vs reuses, so its wall time is read correctly
        old = read(record_path(cfg["grid"]["records_dir"], case))
        reused = old["status"] == "ok" and old["case_id"] == cid and has_best(
            cfg, case, cid, (old.get("checkpoint") or {}).get("sha256"))
    except (OSError, RecordError):
        reused = False
    # The timed inference needs the case's weights: on a fresh clone the records come from git but
    # the checkpoints do not, so such a case is re-run (deterministically) rather than skipped.
    rec = run_case(cfg, case, progress=progress, ensure_checkpoint=True)
    if not progress.state.get("grid_counted"):  # test_grid's workers counted the session already
        # a case recorded as not run (no weights, excluded) is neither trained nor reused
        key = "study_cases_reused" if reused else "study_cases_trained" if rec["status"] == "ok" else "study_cases_not_run"
        progress.state[key] = progress.state.get(key, 0) + 1
    progress.state["done"] = cases.index(case) + 1
    # ETA: time per unit of work trained so far; a reused case costs ~0 s and leaves the total.
    if reused:
        progress.state["total_cost"] -= grid.case_cost(case)
    else:
        progress.state["done_cost"] = progress.state.get("done_cost", 0.0) + grid.case_cost(case)
    if rec["status"] != "ok":
        benchmark.extra_info.update(status=rec["status"], reason=rec.get("reason"))
        pytest.skip(f"not run: {rec.get('reason', '')[:300]}")

    device = runtime.resolve_device(cfg["train"])
    net = load_case_model(cfg, case, device=device)
    x = _test_batch(cfg, case, device)
    bs = 2 * int(cfg["train"]["batch_size"])

    @torch.inference_mode()
    def infer():
        for i in range(0, len(x), bs):
            net(x[i:i + bs])
        runtime.synchronize(device)

    rounds = int(cfg["bench"]["inference_rounds"])
    benchmark.pedantic(infer, rounds=rounds, warmup_rounds=1, iterations=1)
    t = rec["timing"]
    benchmark.extra_info.update(
        status="ok", case_id=rec["case_id"], profile=cfg["profile"], data_kind=rec["data"]["kind"],
        test_images=len(x), test=rec["metrics"]["test"], val=rec["metrics"]["val"],
        train_images_per_s=t["train_images_per_s"], epoch_s=t["epoch_s"], wall_s=t["wall_s"],
        feature_cache=t["feature_cache"], weights=rec["weights"]["source"],
        device=rec["env"]["device_name"], torch=rec["env"]["torch"], precision=rec["env"]["precision"],
        inference_images_per_s=len(x) / benchmark.stats.stats.mean,
    )
    # The record must be this case under the current config (a stale or foreign one is a harness bug);
    # the profile name is not part of a case's identity, so it is not compared.
    assert rec["slug"] == case.slug
    assert rec["case_id"] == cid
