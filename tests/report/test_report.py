"""Golden aggregate of the committed sample records, REPORT.md sections, CLI shells.

Regenerate the golden files after a deliberate change of the aggregation with
`python tests/fixtures/make_sample_records.py --golden`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
from pathlib import Path

import pytest
from fixtures import make_sample_records as samples

from thtl_bench import records, report
from thtl_bench.analysis import aggregate as agg
from thtl_bench.analysis import claims
from thtl_bench.analysis import summary as summ
from thtl_bench.cli import report as report_cli
from thtl_bench.report import sections

DATA = Path(samples.HERE)


@pytest.fixture(autouse=True)
def pinned_registry(monkeypatch):
    """Pin the canonical order (the registries are others' modules; importing models is slow)."""
    monkeypatch.setattr(summ, "_registry", lambda kind: list(samples.GOLDEN_ORDER[kind]))


@pytest.fixture(scope="module")
def sample_records():
    return records.load_all([DATA / "records"])


def _same(a, b, path="$") -> list[str]:
    """Differences between two JSON values; floats compared to 1e-9 relative."""
    if isinstance(a, float) or isinstance(b, float):
        ok = (isinstance(a, (int, float)) and isinstance(b, (int, float))
              and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())} differ"]
        return [d for k in a for d in _same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _cfg(tmp_path: Path, **stats_over) -> dict:
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"].update(stats_over)
    cfg["report"].update(dir=str(tmp_path / "report"), path=str(tmp_path / "REPORT.md"), speed_change=0.2)
    cfg["data"] = {"root": str(tmp_path / "data")}
    cfg["grid"] = {"records_dir": str(DATA / "records")}
    # The FLOP artefact the running side writes beside the report (thtl-bench flops).
    (tmp_path / "report").mkdir(parents=True, exist_ok=True)
    shutil.copy(samples.GOLDEN_FLOPS_PATH, tmp_path / "report" / "flops.json")
    return cfg


def test_sample_records_are_labelled_fixtures(sample_records):
    assert len(sample_records) == 44
    assert all(samples.FIXTURE_NOTE == r["fixture"] for r in sample_records)


def test_golden_summary_and_claims_table(sample_records):
    summary, table = samples.golden_outputs()
    golden = json.loads((DATA / "golden" / "summary.json").read_text())
    diffs = _same(json.loads(json.dumps(summary)), golden)
    assert not diffs, "aggregation changed (regenerate with --golden if intended):\n" + "\n".join(diffs[:20])
    assert table == (DATA / "golden" / "claims_table.md").read_text()


def test_golden_comparison_detects_a_changed_aggregate(sample_records):
    recs = copy.deepcopy(sample_records)
    swft = next(r for r in recs if r["slug"] == "resnet18__swft__s1")
    swft["metrics"]["test"]["accuracy"] -= 0.01
    changed = agg.aggregate(recs, samples.GOLDEN_CFG, samples.GOLDEN_ORDER)
    golden = json.loads((DATA / "golden" / "summary.json").read_text())
    assert _same(json.loads(json.dumps(changed)), golden)


def test_report_writes_every_section(tmp_path):
    cfg = _cfg(tmp_path, bootstrap=200)
    path = report.write(cfg, [DATA / "records"])
    text = path.read_text()
    for heading in ("# thtl-bench report", "## Provenance", "## Cases not run", "## Larynx test results",
                    "## THTL step 1 (fundus", "## Claims C1-C5", "Decision rules:", "## SWFT step curves",
                    "## LayerCAM", "## Speed", "### Projected cost of the full study", "## Assumptions"):
        assert heading in text, heading
    assert "Which data produced this report:** **synthetic phantom images**" in text
    assert "FIXTURE RECORDS" in text
    assert "**Absent**" in text and "cam.json" in text  # no cam.json written
    assert "This is an extrapolation" in text and "CPU-hours" in text
    assert "vit_b_16 | onestep_last" in text  # a not-run case with its reason
    assert "data.dvc not found" in text
    assert "| records' config.train.max_epochs, by case.arm | scratch/onestep_all/thtl_step1/thtl_all 6; " \
           "onestep_last/thtl_last 30; swft 3 per step" in text
    rdir = tmp_path / "report"
    for f in ("summary.json", "metrics.json", "swft_steps.csv", "figures/swft_steps_resnet18.png",
              "figures/swft_steps_efficientnet_lite0.png"):
        assert (rdir / f).is_file(), f
    assert "](report/figures/swft_steps_resnet18.png)" in text
    metrics = json.loads((rdir / "metrics.json").read_text())
    assert metrics["claims.C3.resnet18.verdict"] == 1
    assert metrics["grid.resnet18.swft.accuracy.mean"] == pytest.approx(
        agg.cell(agg.load_summary(rdir / "summary.json"), "resnet18", "swft")["metrics"]["accuracy"]["mean"],
        abs=1e-6)
    first = {f: (rdir / f).read_bytes() for f in ("metrics.json", "swft_steps.csv", "summary.json")}
    report.write(cfg, [DATA / "records"])
    assert first == {f: (rdir / f).read_bytes() for f in first}  # deterministic: no dates inside


def test_report_cam_section_and_data_version(tmp_path):
    cfg = _cfg(tmp_path, bootstrap=100)
    (tmp_path / "data.dvc").write_text("outs:\n- md5: 0123456789abcdef.dir\n  path: data\n")
    rdir = tmp_path / "report"
    fig = rdir / "figures" / "cam_resnet18.png"
    fig.parent.mkdir(parents=True)
    fig.write_bytes(b"png")
    entries = [{"model": "resnet18", "arm": arm, "domain": "larynx", "image_id": "m/1.png", "label": "malignant",
                "figure": str(fig), "vessel_mass": {"layer3": share, "layer4": share / 2}, "vessel_fraction": 0.1}
               for arm, share in (("thtl_last", 0.2), ("swft", 0.6))]
    (rdir / "cam.json").write_text(json.dumps(entries))
    text = report.write(cfg, [DATA / "records"]).read_text()
    assert "md5 0123456789abcdef.dir" in text
    assert "**Absent**" not in text
    assert "| resnet18 | swft      | larynx   | 1      | 10.0              | 60.0     | 30.0     |" in text
    assert "![LayerCAM resnet18 / larynx malignant / m/1.png](report/figures/cam_resnet18.png)" in text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    report_cli.add_cli(p.add_subparsers(dest="command"))
    return p


def test_cli_aggregate_then_report_from_summary(tmp_path, monkeypatch, capsys):
    params = tmp_path / "params.yaml"
    cfg = _cfg(tmp_path, bootstrap=100)
    cfg["profiles"] = {"t": {}}
    params.write_text(json.dumps(cfg))  # JSON is YAML
    args = _parser().parse_args(["aggregate", str(DATA / "records"), "--params", str(params), "--profile", "t"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "42 ok / 2 not run" in out and "| C1 " in out
    summary = tmp_path / "report" / "summary.json"
    assert agg.load_summary(summary)["provenance"]["n_ok"] == 42
    args = _parser().parse_args(["report", "--summary", str(summary), "--params", str(params), "--profile", "t"])
    assert args.func(args) == 0
    assert "## Claims C1-C5" in (tmp_path / "REPORT.md").read_text()


def test_claims_table_matches_rule_text_parameters(sample_records):
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"]["equivalence_margin_pp"] = 50.0
    res = claims.evaluate(sample_records, cfg, samples.GOLDEN_ORDER)
    c5 = {r["model"]: r for r in res if r["id"] == "C5"}
    # A wide margin turns the small resnet18 difference into a reproduced equivalence.
    assert c5["resnet18"]["verdict"] == "reproduced"
    assert "+-50 pp" in claims.rule_text(cfg["stats"])


def test_assumptions_read_per_arm_lrs_and_epoch_budgets_from_records(sample_records):
    """lrs and epoch budgets are arm-dependent: read per case.arm from the engine's config.train."""
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"]["bootstrap"] = 50
    rows = {r[0]: r[2] for r in sections.per_arm_rows(agg.aggregate(sample_records, cfg, samples.GOLDEN_ORDER))}
    assert rows["Epoch budget per stage (per arm; SWFT: per step)"] == (
        "scratch/onestep_all/thtl_step1/thtl_all 6; onestep_last/thtl_last 30; swft 3 per step")
    assert rows["lr, new head (per arm)"] == "scratch/onestep_last/onestep_all/thtl_step1/thtl_last/thtl_all/swft 0.001"
    assert rows[next(k for k in rows if k.startswith("lr, body"))] == (
        "scratch 0.001; onestep_last/onestep_all/thtl_step1/thtl_last/thtl_all/swft 0.0001")
    differ = rows["Epoch budgets differ between arms"]
    assert differ.startswith("**yes**: last-layer arms (onestep_last/thtl_last) 30 epochs; SWFT (swft) 3 epochs per step")
    assert "C2 (swft vs thtl_last), C3 (swft vs thtl_last)" in differ and "C1" not in differ

    # Records with the whole params `train:` section (the old fixture layout, no per-arm keys)
    # must not pass for per-arm values: they are reported as missing instead.
    old = copy.deepcopy(sample_records)
    for r in old:
        r["config"]["train"] = {"lr_head": 1e-3, "lr_backbone": 1e-4, "lr_scratch": 1e-3, "max_epochs": 6,
                                "swft_max_epochs": 3}
    rows = {r[0]: r[2] for r in sections.per_arm_rows(agg.aggregate(old, cfg, samples.GOLDEN_ORDER))}
    assert "n/a (not in records)" in rows[next(k for k in rows if k.startswith("lr, body"))]
    assert "onestep_last/thtl_last 30" not in rows["Epoch budget per stage (per arm; SWFT: per step)"]
