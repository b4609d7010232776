"""The benchmark helpers (thtl_bench.perf.bench, .session) at tiny size on CPU: throughput settings,
MFU, the interleaved throughput loop, the engine-input-path vs ready-tensor measurement, the
matmul peak, the THTL step-1 sharing check, the target verdicts and the session bookkeeping (the
GPU case uses the same functions on CUDA)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from thtl_bench import records
from thtl_bench.models.staged import StagedModel
from thtl_bench.perf import bench as perf
from thtl_bench.perf import session
from thtl_bench.records import Case

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

CPU = torch.device("cpu")


def tiny(num_classes: int = 2) -> StagedModel:
    stages = [("stem", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())),
              ("top", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
              ("fc", nn.Linear(4, num_classes))]
    return StagedModel(stages, [("fc", ["fc"]), ("top", ["top"]), ("stem", ["stem"])], head_stage="fc",
                       cam_layers={}, name="tiny", family="tiny")


def test_throughput_settings_target_setting_on_cuda_profile_setting_elsewhere():
    from thtl_bench import config

    cfg = config.load(Path(__file__).resolve().parents[2] / "params.yaml")
    gpu = perf.throughput_settings(cfg, torch.device("cuda"))  # inspects the device type only
    assert gpu["amp"] is torch.bfloat16 and gpu["channels_last"] and gpu["peak_dtype"] is torch.bfloat16
    assert (gpu["size"], gpu["batch"]) == (cfg["bench"]["gpu_image_size"], cfg["bench"]["gpu_batch_size"])
    cpu = perf.throughput_settings(cfg, CPU)
    assert cpu["amp"] is None and not cpu["channels_last"] and cpu["peak_dtype"] is torch.float32
    assert (cpu["size"], cpu["batch"]) == (cfg["data"]["image_size"], cfg["train"]["batch_size"])


def test_mfu_row_is_counted_train_flops_times_rate_over_peak():
    from thtl_bench.perf import flops

    res = {"ratio": 0.95, "engine_images_per_s": 100.0, "ready_images_per_s": 105.0, "round_ratios": [0.95],
           "batch": 16}
    row = perf.mfu_row("resnet18", res, 64, peak=1e12)
    per_image = 3 * flops.per_image("resnet18", 64)
    assert row["train_step_gflop"] == pytest.approx(per_image * 16 / 1e9)
    assert row["mfu"] == pytest.approx(per_image * 100.0 / 1e12)
    assert perf.mfu_row("vit_b_16", res, 60, peak=1e12)["mfu"] is None  # size the model cannot take


def test_interleaved_times_each_callable_and_alternates_order():
    calls: list[str] = []

    def make(name: str, seconds: float):
        def fn():
            calls.append(name)
            time.sleep(seconds)
        return fn

    t = perf.interleaved({"fast": make("fast", 0.001), "slow": make("slow", 0.006)}, CPU,
                         warmup=1, steps=2, rounds=3)
    assert len(t["fast"]) == len(t["slow"]) == 3
    assert all(s > f for f, s in zip(t["fast"], t["slow"], strict=True))
    assert len(calls) == 2 * (1 + 2 * 3)
    timed = calls[2:]  # after the warm-up calls: ABBA... order per round
    assert timed[:4] == ["fast", "fast", "slow", "slow"] and timed[4:8] == ["slow", "slow", "fast", "fast"]


def test_pipeline_vs_ready_trains_through_the_feeder_on_cpu():
    torch.manual_seed(0)
    model = tiny()
    images = torch.randint(0, 256, (20, 16, 16, 3), dtype=torch.uint8)
    labels = torch.randint(0, 2, (20,))
    before = [p.detach().clone() for p in model.parameters()]
    res = perf.pipeline_vs_ready(model, images, labels, device=CPU, amp=None, channels_last=False, batch_size=8,
                                 aug_cfg={"hflip": True, "rotate_deg": 10, "brightness": 0.1},
                                 max_grad_norm=5.0, warmup=1, steps=2, rounds=3, train_cfg={"weight_decay": 0.01})
    assert res["batch"] == 8 and res["ready_x"].shape == (8, 3, 16, 16)
    assert res["ready_x"].is_contiguous()  # a dense NCHW tensor, not to_float's NHWC-strided view
    assert res["engine_images_per_s"] > 0 and res["ready_images_per_s"] > 0
    assert len(res["round_ratios"]) == 3
    assert res["ratio"] == pytest.approx(sorted(res["round_ratios"])[1])  # median of paired rounds
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_matmul_peak_is_a_finite_rate():
    peak = perf.matmul_peak(CPU, torch.float32, n=64, reps=2, warmup=1)
    assert 0 < peak < float("inf")


def test_judge_verdicts():
    assert perf.judge(0.95, 0.9, ">=") is True and perf.judge(0.85, 0.9, ">=") is False
    assert perf.judge(0.5, 1.0, "<") is True and perf.judge(1.0, 1.0, "<") is False
    assert perf.judge(600, 600, "<=") is True
    assert perf.judge(None, 1.0, "<") is None and perf.judge(3.0, None, "<=") is None


def _rec(case: Case, cid, created, parent=None, sha="a"):
    """A record as step1_shared_problems reads it (case, slug, ids, created, weights)."""
    r = {"case": case.as_dict() | {"profile": "t"}, "case_id": cid, "status": "ok", "slug": case.slug,
         "created": created, "weights": {"sha256": sha, "detail": {}}}
    if parent:
        r["parent"] = {"case_id": parent}
        r["weights"]["detail"]["parent_case_id"] = parent
        r["weights"]["source"] = "step1 best.pt"
    return r


T0, T1, T2 = "2024-01-01T00:00:00+00:00", "2024-01-01T00:01:00+00:00", "2024-01-01T00:02:00+00:00"


def test_step1_shared_problems_detects_each_violation(tmp_path):
    cfg = {"grid": {"checkpoints_dir": str(tmp_path / "ck")}}
    s1 = _rec(Case("m", "thtl_step1", 0, 0, "fundus"), "S1", T0)
    last = _rec(Case("m", "thtl_last", 0, 0, "fundus"), "C1", T1, parent="S1")

    def swft(**kw):
        return _rec(Case("m", "swft", 0, 0, "fundus"), "C2", kw.pop("created", T2), **{"parent": "S1", **kw})

    good = [s1, last, swft()]
    assert perf.step1_shared_problems(cfg, good, []) == []
    assert any("parent" in p for p in perf.step1_shared_problems(cfg, [s1, last, swft(parent="OTHER")], []))
    assert any("re-run" in p for p in perf.step1_shared_problems(
        cfg, [s1, last, swft(created="2023-12-31T00:00:00+00:00")], []))
    two_weights = perf.step1_shared_problems(cfg, [s1, last, swft(sha="b")], [])
    assert any("m__thtl_step1__fundus__s0__k0: THTL arms started from 2 different step-1 weights" in p
               for p in two_weights)
    orphan = [_rec(Case("m", "thtl_all", 1, 0, "fundus"), "C3", T0, parent="S9")]
    assert any("no step-1 record (m__thtl_step1__fundus__s1__k0)" in p
               for p in perf.step1_shared_problems(cfg, orphan, []))
    # The best.pt on disk is one more witness of the step-1 weights the children started from.
    best = tmp_path / "ck" / s1["slug"] / "best.pt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"weights")
    assert any("2 different step-1 weights" in p for p in perf.step1_shared_problems(cfg, good, []))
    # Two step-1 record files of one case (e.g. two shards' folders merged by hand).
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        records.write(tmp_path / d, _valid_step1(s1))
    files = sorted(tmp_path.glob("[xy]/*.json"))
    assert "m__thtl_step1__fundus__s0__k0: 2 step-1 records" in perf.step1_shared_problems(cfg, [], files)


def _valid_step1(rec: dict) -> dict:
    """`rec` as a schema-valid not_run record (enough for the file count of step1_shared_problems)."""
    return {"schema": records.SCHEMA, "case_id": rec["case_id"], "slug": rec["slug"], "status": "not_run",
            "reason": "test", "case": rec["case"], "config": {}, "created": rec["created"]}


def test_step1_is_matched_per_domain_and_replicate_and_shared_across_target_shares(tmp_path):
    # A THTL child's step 1 is the one of its own intermediate domain and replicate (seed AND
    # split); the target share is not part of step 1 (it never sees the target).
    cfg = {"grid": {"checkpoints_dir": str(tmp_path / "ck")}}
    s1 = _rec(Case("m", "thtl_step1", 0, 0, "fundus"), "S1", T0)
    half = _rec(Case("m", "thtl_last", 0, 0, "fundus", target_fraction=0.5), "C1", T1, parent="S1")
    assert perf.step1_shared_problems(cfg, [s1, half], []) == []
    for other in (Case("m", "thtl_last", 0, 0, "angio"), Case("m", "thtl_last", 0, 1, "fundus"),
                  Case("m", "thtl_last", 1, 0, "fundus"),
                  Case("m", "thtl_last", 0, 0, "fundus", intermediate_fraction=0.5)):
        (problem,) = perf.step1_shared_problems(cfg, [s1, _rec(other, "C9", T1, parent="S1")], [])
        assert "no step-1 record" in problem, other


def test_a_partial_benchmark_run_is_not_the_session():
    # `pytest benchmarks -k ...`, node ids, one file, -x or Ctrl-C: not the whole suite.
    want = {"test_study.py": 3, "test_perf.py": 2, "test_calibration.py": 1}
    assert session.partial_reason(dict(want), want, 0, False) is None
    assert session.partial_reason({"test_study.py": 3, "test_perf.py": 2}, want, 0, False) \
        == "test_calibration.py not run"
    assert session.partial_reason({"test_perf.py": 2, "test_calibration.py": 1}, want, 0, False) \
        == "test_study.py not run"
    assert session.partial_reason({"test_study.py": 3, "test_perf.py": 1, "test_calibration.py": 1}, want, 0,
                                  False) == "1 of 2 cases of test_perf.py selected"
    assert session.partial_reason(want, want, 0, True) == "the run was stopped before the end"
    assert session.partial_reason(want, want, 1, False) == "1 case(s) deselected"


def test_a_failed_or_partial_run_never_overwrites_measured_figures(tmp_path):
    cfg = {"profile": "smoke", "report": {"dir": str(tmp_path)}, "bench": {"session_wall_s": 600}}
    good = dict(wall_s=300.0, cases=5, failed=0, errors=[], exitstatus=0, partial=None, device="cpu",
                counts={"study_cases_trained": 3})
    written, last = session.finish(cfg, **good)
    assert written == tmp_path / session.SESSION_FILE and json.loads(written.read_text())["wall_s"] == 300.0
    # Every case errored (e.g. the data fixture failed): a whole session, but not a clean one.
    bad = {**good, "wall_s": 14.7, "failed": 5, "errors": ["test_case[a] (setup): DataError ..."], "exitstatus": 1}
    written, last = session.finish(cfg, **bad)
    assert written is None
    assert json.loads((tmp_path / session.SESSION_FILE).read_text())["wall_s"] == 300.0  # kept
    run = json.loads(last.read_text())
    assert run["status"] == "failed" and run["errors"][0].startswith("test_case[a]")
    written, last = session.finish(cfg, **{**good, "wall_s": 22.0, "partial": "1 case(s) deselected"})
    assert written is None and json.loads(last.read_text())["status"] == "partial"
    assert json.loads((tmp_path / session.SESSION_FILE).read_text())["wall_s"] == 300.0


def test_benchmark_files_hold_the_expected_cases():
    # The session's completeness check counts test_ functions of test_perf.py: five targets; the
    # study file holds the grid (its workers train) and the per-case test; one calibration case.
    text = (BENCHMARKS / "test_perf.py").read_text()
    assert text.count("\ndef test_") == 5
    assert (BENCHMARKS / "test_study.py").read_text().count("\ndef test_") == 2
    assert (BENCHMARKS / "test_calibration.py").read_text().count("\ndef test_") == 1


def test_scaling_check_compares_step_time_with_counted_flops(monkeypatch):
    from thtl_bench.perf import flops

    # Real steps at tiny size first (the function runs end to end) ...
    out = perf.scaling_check("resnet18", 32, 64, CPU, amp=None, batch_size=2, warmup=1, steps=1, rounds=2,
                             train_cfg={"weight_decay": 0.01})
    assert out["flop_ratio"] == pytest.approx(flops.per_image("resnet18", 64) / flops.per_image("resnet18", 32))
    assert set(out["s_per_step"]) == {"32", "64"} and out["time_ratio"] > 0
    # ... then the arithmetic on known times: median of the per-round ratios, over the FLOP ratio.
    monkeypatch.setattr(perf, "interleaved", lambda fns, *a, **k: {"32": [1.0, 1.0, 2.0], "64": [3.0, 2.5, 7.0]})
    out = perf.scaling_check("resnet18", 32, 64, CPU, amp=None, batch_size=2, warmup=0, steps=1, rounds=3,
                             train_cfg={"weight_decay": 0.01})
    assert out["time_ratio"] == pytest.approx(3.0)  # ratios 3.0, 2.5, 3.5
    assert out["s_per_step"] == {"32": 1.0, "64": 3.0}
    assert out["time_over_flop"] == pytest.approx(3.0 / out["flop_ratio"])


def test_progress_eta_weights_cases_by_arm_cost():
    from thtl_bench.engine import grid

    assert grid.case_cost(Case("m", "onestep_last", 0)) == 0.2 and grid.case_cost(Case("m", "scratch", 0)) == 1.0
    assert grid.case_cost(Case("m", "swft", 0, 1, "fundus")) == 2.5
    assert session.eta_s(10.0, 1.0, 3.0) == pytest.approx(20.0)  # 10 s per unit, 2 units left
    assert session.eta_s(10.0, 3.0, 3.0) == 0.0


def _bench_conftest():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_conftest", BENCHMARKS / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_parts_partition_the_study_by_engine_shards():
    """THTL_BENCH_PART (the sharded GPU workflow): study:I/N keeps exactly the engine's shard I of
    N of the study cases, the parts together are the whole study once, perf keeps the rest."""
    from types import SimpleNamespace

    from thtl_bench import config
    from thtl_bench.engine import grid
    from thtl_bench.errors import UserError

    conf = _bench_conftest()
    cfg = config.load(BENCHMARKS.parent / "params.yaml", "paper")
    cases = grid.cases(cfg)
    study = [SimpleNamespace(fspath=BENCHMARKS / "test_study.py", callspec=SimpleNamespace(params={"case": c}))
             for c in cases]
    perf_items = [SimpleNamespace(fspath=BENCHMARKS / "test_perf.py") for _ in range(5)]
    items = study + perf_items
    seen = []
    for i in range(3):
        keep = conf.part_filter(f"study:{i}/3", cfg)
        kept = [it.callspec.params["case"] for it in items if keep(it)]
        assert kept == grid.shard(cases, i, 3)
        seen += kept
    assert sorted(seen) == sorted(cases)
    perf_only = conf.part_filter("perf", cfg)
    assert [it for it in items if perf_only(it)] == perf_items
    for bad in ("study:3/3", "study:x", "grid:0/2"):
        with pytest.raises(UserError, match="THTL_BENCH_PART"):
            conf.part_filter(bad, cfg)


def _pred_rec(probs, bitwise: bool, acc: float = 0.5) -> dict:
    return {"predictions": {"test": {"ids": ["a", "b"], "labels": [0, 1], "probs": probs}},
            "metrics": {"test": {"accuracy": acc}}, "env": {"determinism": {"bitwise": bitwise}}}


def test_cached_and_uncached_predictions_compare_within_rounding_or_a_tolerance():
    p = [[0.6, 0.4], [0.3, 0.7]]
    q = [[0.61, 0.39], [0.3, 0.7]]
    assert perf.same_predictions(_pred_rec(p, True), _pred_rec(p, True), 0.05) == 0.0
    r = [[0.6 + 3e-7, 0.4 - 3e-7], [0.3, 0.7]]  # two fp32 batchings of one prefix (measured on CPU)
    assert perf.same_predictions(_pred_rec(p, True), _pred_rec(r, True), 0.05) == pytest.approx(3e-7)
    with pytest.raises(AssertionError, match="differ by up to 0.01"):
        perf.same_predictions(_pred_rec(p, True), _pred_rec(q, True), 0.05)  # CPU fp32: rounding only
    assert perf.same_predictions(_pred_rec(p, False), _pred_rec(q, False), 0.05) == pytest.approx(0.01)
    with pytest.raises(AssertionError, match="differ by up to 0.2"):
        perf.same_predictions(_pred_rec(p, False), _pred_rec([[0.4, 0.6], [0.3, 0.7]], False), 0.05)
    with pytest.raises(AssertionError, match="not the same test images"):
        perf.same_predictions(_pred_rec(p, False), {**_pred_rec(p, False), "predictions": {"test": {
            "ids": ["b", "a"], "labels": [0, 1], "probs": p}}}, 0.05)
