"""REPORT.md's benchmark-target tables (report.cost.perf) from perf.json and bench_session.json."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fixtures import make_sample_records as samples

from thtl_bench import report
from thtl_bench.analysis import summary as summ
from thtl_bench.report import cost, gather

DATA = Path(samples.HERE)

PERF = {
    "data_pipeline_ratio": {"measure": "resnet18 train img/s: engine input path / ready tensors", "value": 0.8123,
                            "ratio": 0.8123, "target": 0.9, "op": ">=", "met": False, "device": "cpu",
                            "device_name": "x86_64", "threads": 2, "loadavg_1m": 2.5, "torch": "2.14.1",
                            "image_size": 64, "batch": 32, "precision": "fp32", "channels_last": False,
                            "profile": "smoke", "created": "2025-01-02T03:04:05+00:00"},
    "study_cost_projection": {"measure": "projected paper-profile cost (CPU-hours, from CPU records)",
                              "value": 123.4, "unit": "CPU-hours", "target": 1.0, "op": "<", "met": None,
                              "not_judged_because": "CPU records only: the target is in GPU-hours",
                              "device_name": "cpu (x86_64)", "torch": "2.14.1", "profile": "smoke"},
    "throughput_mfu": {"measure": "train img/s at 224 px (worst model)", "value": 0.95, "ratio": 0.95,
                       "target": 0.9, "op": ">=", "met": True, "device_name": "NVIDIA H100 80GB HBM3",
                       "torch": "2.14.1", "precision": "bf16", "channels_last": True, "profile": "paper",
                       "table": {"headers": ["model", "MFU"], "rows": [["resnet50", "41.0%"]]}},
}
SESSION = {"profile": "smoke", "wall_s": 712.3, "peak_rss_gib": 1.8, "cases": 47, "failed": 0, "exitstatus": 0,
           "device": "x86_64", "cpu_count": 2, "targets": {"wall_s": 600, "peak_rss_gib": 4.0}}


def _write(rdir: Path, perf=PERF, session=SESSION) -> None:
    rdir.mkdir(parents=True, exist_ok=True)
    if perf is not None:
        (rdir / "perf.json").write_text(json.dumps(perf))
    if session is not None:
        (rdir / "bench_session.json").write_text(json.dumps(session))


def _perf(rdir: Path, now: datetime | None = None) -> list[str]:
    """The section as REPORT.md renders it from the files in `rdir` at time `now`."""
    return cost.perf(gather.gather({"report": {"dir": str(rdir)}, "data": {"root": str(rdir / "data")}}), now)


def _cells(text: str, first: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {first}"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_perf_tables_show_value_target_verdict_and_machine(tmp_path):
    _write(tmp_path)
    text = "\n".join(_perf(tmp_path))
    row = " | ".join(_cells(text, "data_pipeline_ratio"))
    assert "0.812 x" in row and ">= 0.9" in row and "**not met**" in row
    assert "x86_64" in row and "2 threads, load 2.5" in row and "64 px" in row and "batch 32" in row
    proj = " | ".join(_cells(text, "study_cost_projection"))
    assert "123.400 CPU-hours" in proj and "not judged (CPU records only" in proj
    gpu = _cells(text, "throughput_mfu")
    assert gpu[4] == "met" and "NVIDIA H100 80GB HBM3" in gpu[5] and "bf16" in gpu[5]
    assert _cells(text, "resnet50") == ["resnet50", "41.0%"]  # the per-model table of a case
    assert "on **x86_64** (2 CPUs)" in text
    # The same case measured on a CPU: figures shown, verdict not judged, with the reason.
    cpu = copy.deepcopy(PERF)
    cpu["throughput_mfu"].update(met=None, not_judged_because="no CUDA device: the target is for a GPU",
                                 device_name="x86_64", precision="fp32", channels_last=False)
    _write(tmp_path, perf=cpu)
    row = _cells("\n".join(_perf(tmp_path)), "throughput_mfu")
    assert row[2] == "0.950 x" and row[4] == "not judged (no CUDA device: the target is for a GPU)"
    _write(tmp_path)
    text = "\n".join(_perf(tmp_path))
    assert _cells(text, "benchmark session") == ["benchmark session wall time (s)", "712", "600", "**not met**"]
    assert _cells(text, "peak RSS") == ["peak RSS (GiB)", "1.80", "4.0", "met"]


def test_perf_section_without_results_or_with_a_broken_file(tmp_path):
    assert "No benchmark results" in "\n".join(_perf(tmp_path))
    _write(tmp_path, perf=None)
    (tmp_path / "perf.json").write_text("{not json")
    text = "\n".join(_perf(tmp_path))
    assert "is not valid JSON" in text and "| benchmark session wall time" in text


def test_report_speed_section_includes_the_benchmark_targets(tmp_path, monkeypatch):
    monkeypatch.setattr(summ, "_registry", lambda kind: list(samples.GOLDEN_ORDER[kind]))
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"].update(bootstrap=200)
    cfg["report"].update(dir=str(tmp_path / "report"), path=str(tmp_path / "REPORT.md"), speed_change=0.2)
    cfg["data"] = {"root": str(tmp_path / "data")}
    cfg["grid"] = {"records_dir": str(DATA / "records")}
    _write(tmp_path / "report")
    text = report.write(cfg, [DATA / "records"]).read_text()
    speed, assumptions = text.index("## Speed"), text.index("## Assumptions")
    bench = text.index("### Benchmark targets")
    assert speed < bench < assumptions
    assert "**not met**" in text[bench:assumptions]


def test_session_line_counts_trained_and_not_run_cases_apart(tmp_path):
    _write(tmp_path, session={**SESSION, "study_cases_trained": 18, "study_cases_reused": 0,
                              "study_cases_not_run": 24})
    text = "\n".join(_perf(tmp_path))
    assert "(18 trained, 24 recorded as not run)" in text and "42" not in text.split("A fresh run")[1][:120]


def test_main_job_time_is_the_benchmark_session_plus_the_report_chain_when_run_in_one_go(tmp_path):
    end = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    fast = {**SESSION, "wall_s": 520.0, "created": end.isoformat()}
    _write(tmp_path, session=fast)
    # written 70 s after the session ended: one main job of 590 s, under the 600 s target
    row = _cells("\n".join(_perf(tmp_path, end + timedelta(seconds=70))), "main job")
    assert row == ["main job wall time (s)", "590 (benchmark 520 + report 70)", "600", "met"]
    # the same session with a slow report chain: the main job misses the target
    row = _cells("\n".join(_perf(tmp_path, end + timedelta(seconds=95))), "main job")
    assert row[1] == "615 (benchmark 520 + report 95)" and row[3] == "**not met**"
    # the report re-rendered a day later: no main-job figure, the session alone decides nothing
    text = "\n".join(_perf(tmp_path, end + timedelta(days=1)))
    assert "| main job" not in text
    row = _cells(text, "benchmark session")
    assert row[1] == "520" and row[3].startswith("not judged (the main job is not measured: this report was written 1440 min")
    # an end time written without its UTC offset is read as UTC
    _write(tmp_path, session={**fast, "created": end.replace(tzinfo=None).isoformat()})
    row = _cells("\n".join(_perf(tmp_path, end + timedelta(seconds=70))), "main job")
    assert row[1] == "590 (benchmark 520 + report 70)"
    # a session with no end time (older files) is shown, not timed as a main job
    _write(tmp_path, session={k: v for k, v in fast.items() if k != "created"})
    row = _cells("\n".join(_perf(tmp_path, end)), "benchmark session")
    assert "recorded no end time" in row[3]
