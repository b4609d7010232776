"""The prepared GPU check and the preflight on CPU (issue 22.6): `scripts/gpu_check.sh` runs end to
end at a tiny size (device facts, matmul peak, throughput and MFU through the engine's step, the
paper-profile slice with records and the cached-feature speed-up, the FLOP projection), and both
fail fast, saying why, when the GPU a profile asks for does not come up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thtl_bench import records
from thtl_bench.perf import preflight

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
TINY = ["--device", "cpu", "--models", "efficientnet_lite0", "--project-models", "efficientnet_lite0",
        "--size", "32", "--batch", "4", "--warmup", "1", "--steps", "2", "--peak-n", "64", "--slice-size", "32",
        "--slice-epochs", "1", "--slice-patients", "4", "--slice-fundus", "4", "--slice-arms", "onestep_last,thtl_last"]


def _run(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "THTL_PYTHON": sys.executable, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("THTL_PROFILE", None)
    return subprocess.run(["bash", str(SCRIPT), str(out), *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=out.parent)


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_at_tiny_size(tmp_path):
    out = tmp_path / "check"
    res = _run(out, *TINY)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads((out / "gpu_check.json").read_text())
    parts = doc["parts"]
    assert set(parts) == {"device", "peak", "throughput", "slice", "projection"}
    assert all(p["ok"] for p in parts.values())
    dev = parts["device"]
    assert dev["device"] == "cpu" and dev["precision"] == "fp32" and "seeds are fixed" in dev["determinism"]["statement"]
    assert parts["peak"]["tflops"] > 0
    (row,) = parts["throughput"]["rows"]
    assert row["model"] == "efficientnet_lite0" and row["train_images_per_s"] > 0 and row["inference_images_per_s"] > 0
    assert row["train_tflops"] > 0 and row["train_mfu_measured_peak"] > 0 and row["train_mfu_spec_peak"] > 0
    sl = parts["slice"]
    assert [c["status"] for c in sl["cases"]] == ["ok", "ok"] and sl["image_size"] == 32
    assert sl["feature_cache_speedup"]["epoch_ratio"] > 0 and sl["uncached_onestep_last"]["feature_cache"] is False
    assert sorted(sl["records"]) == ["efficientnet_lite0__onestep_last__s0__k0.json",
                                     "efficientnet_lite0__thtl_last__fundus__s0__k0.json",
                                     "efficientnet_lite0__thtl_step1__fundus__s0__k0.json"]
    rec = records.read(out / "slice" / "records" / sl["records"][0])
    assert rec["case"]["profile"] == "paper" and rec["env"]["determinism"]["bitwise"] is False
    pr = parts["projection"]
    assert pr["assumed"]["basis"] == "assumed" and pr["assumed"]["hours"][0] > 0
    assert pr["measured"]["basis"] == "measured" and pr["measured"]["models"] == ["efficientnet_lite0"]
    md = (out / "gpu_check.md").read_text()
    assert "Matmul peak" in md and "| efficientnet_lite0 |" in md and "Projection (assumed)" in md


def test_gpu_check_fails_fast_without_a_gpu_and_says_why(tmp_path):
    out = tmp_path / "check"
    res = _run(out)  # the paper profile's train.device: cuda
    assert res.returncode == 2, res.stdout + res.stderr
    doc = json.loads((out / "gpu_check.json").read_text())
    assert list(doc["parts"]) == ["device"] and not doc["parts"]["device"]["ok"]
    assert "CUDA did not come up" in doc["parts"]["device"]["error"] and "did not come up" in res.stderr
    assert "train.device=cpu" in doc["parts"]["device"]["error"]


def test_gpu_check_needs_an_outdir(tmp_path):
    res = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "usage" in res.stderr


def test_preflight_refuses_what_would_not_run_on_the_gpu(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("THTL_PROFILE", raising=False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    params = str(ROOT / "params.yaml")
    assert preflight.main(["--params", params, "--profile", "paper", "--json", str(tmp_path / "p.json")]) == 2
    assert "CUDA did not come up" in capsys.readouterr().err
    assert json.loads((tmp_path / "p.json").read_text())["ok"] is False
    assert preflight.main(["--params", params, "--profile", "smoke"]) == 0  # auto: the CPU, on purpose
    assert json.loads(capsys.readouterr().out)["device"] == "cpu"
    assert preflight.main(["--params", params, "--profile", "smoke", "--require-cuda"]) == 2
    assert "a GPU run was required" in capsys.readouterr().err
