"""The GPU workflow's sequence on CPU at a tiny size (issue 10): for the paper profile, synth
writes the profile's own data folder, the benchmark's data check accepts it, split, grid,
aggregate and report run through the real CLI; the default profile's data is refused under the
paper profile, naming both. A tiny StagedModel stands in for the networks (no weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.engine import tiny

from thtl_bench import config
from thtl_bench.cli import main
from thtl_bench.data.check import verify
from thtl_bench.data.errors import DataError
from thtl_bench.engine import case as case_mod

ROOT = Path(__file__).resolve().parents[1]
TINY = ["synth.image_size=16", "data.image_size=16", "synth.fundus.per_grade=[4,4,4,4,4]",
        "synth.larynx.patients={benign: 6, malignant: 6}", "synth.larynx.images_per_patient=[2,2]",
        "train.batch_size=8", "train.max_epochs=2", "train.min_epochs=1", "train.patience=1", "train.num_threads=0",
        "train.device=cpu", "train.precision=fp32", "train.channels_last=false", "stats.bootstrap=50",
        "stats.calibration.n_sim=20"]


def _sets(extra: list[str] | None = None) -> list[str]:
    return [x for o in TINY + (extra or []) for x in ("-S", o)]


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(case_mod, "build_model", tiny)
    return tmp_path


@pytest.mark.slow
def test_paper_sequence_synth_split_benchmark_data_grid_report(checkout, capsys):
    assert main(["synth", "--profile", "paper", *_sets()]) == 0
    assert (checkout / "data" / "paper" / "larynx" / "manifest.csv").is_file() and not (checkout / "data" / "smoke").exists()
    assert main(["data", "split", "--profile", "paper", *_sets()]) == 0
    assert sorted(p.name for p in (checkout / "splits" / "paper" / "larynx").iterdir())[:2] == ["k0.csv", "k1.csv"]
    cfg = config.load("params.yaml", "paper", TINY)
    lines = verify(cfg, regenerate=True)  # what benchmarks/conftest.py's `cfg` fixture runs
    assert any("records no stage output data/paper" in x for x in lines), lines  # no dvc.lock here: used as found

    grid = ["grid", "--profile", "paper", "--quiet", "--models", "resnet18",
            "--arms", "scratch,onestep_last,thtl_step1,thtl_last", "--replicates", "0/0,1/1", *_sets()]
    assert main(grid) == 0
    recs = sorted(p.name for p in (checkout / "records" / "paper").glob("*.json"))
    assert len(recs) == 8 and "resnet18__thtl_last__fundus__s1__k1.json" in recs
    rec = json.loads((checkout / "records" / "paper" / "resnet18__scratch__s0__k0.json").read_text())
    assert rec["case"]["profile"] == "paper" and rec["data"]["image_size"] == 16
    assert rec["env"]["machine"]["cpu"] and "torch_cpu_capability" in rec["env"]["machine"]

    assert main(["aggregate", "--profile", "paper", *_sets()]) == 0
    assert main(["report", "--profile", "paper", *_sets(), "--summary", "report/summary.json"]) == 0
    text = (checkout / "REPORT.md").read_text()
    assert "**Profile** paper" in text and "1 model(s) (resnet18)" in text and "2 replicate(s)" in text
    assert "dvc.lock not found" in text  # data not versioned by DVC in this checkout: said so
    capsys.readouterr()


def test_default_data_under_the_paper_profile_is_refused_naming_both(checkout):
    # The smoke profile's phantoms (its own size and recipe), put where the paper profile looks.
    assert main(["synth", "--profile", "smoke", "--out", "data/paper", "-S", "synth.fundus.per_grade=[1,1,1,1,1]",
                 "-S", "synth.larynx.patients={benign: 1, malignant: 1}"]) == 0
    cfg = config.load("params.yaml", "paper", TINY)
    with pytest.raises(DataError) as exc:
        verify(cfg, regenerate=True)
    msg = str(exc.value)
    assert "'smoke'" in msg and "'paper'" in msg and "64 px" in msg and "16 px" in msg


def test_matching_phantoms_pass_the_foreign_check(checkout):
    """The generator's own meta (size under `params`) must be read: phantoms synthesised for a
    profile are that profile's, not foreign."""
    assert main(["synth", "--profile", "paper", *_sets()]) == 0
    lines = verify(config.load("params.yaml", "paper", TINY), regenerate=False)
    assert not any("foreign" in x or "made for profile" in x for x in lines), lines
