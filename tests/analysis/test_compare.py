"""compare: an injected regression is flagged, run-to-run noise is not; every p-value goes
through one Benjamini-Hochberg adjustment; a verdict change is explained and counts as a
regression; slowdowns on another machine are noted, not counted; every kind of side loads."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fixtures import make_sample_records as samples
from support.records import pair, record

from thtl_bench import io as tio
from thtl_bench import records
from thtl_bench.analysis import compare, inference
from thtl_bench.analysis import summary as summ
from thtl_bench.cli import report as report_cli
from thtl_bench.errors import UserError
from thtl_bench.records import Case

DATA = Path(samples.HERE)
# Six replicates, three training seeds on each of two splits: both sides ran the same design,
# so compare stratifies by split. 120 test images per split.
REPS = [(s, k) for k in (0, 1) for s in range(3)]
N_TEST = 120
THTL = "resnet18/thtl_last[fundus]"
ONESTEP = "resnet18/onestep_last"


@pytest.fixture(autouse=True)
def pinned_registry(monkeypatch):
    monkeypatch.setattr(summ, "_registry", lambda kind: list(samples.GOLDEN_ORDER[kind]))


def _cfg(tmp_path: Path, small: bool = False) -> dict:
    """The golden analysis plan; `small`: one primary claim (C1/resnet18), no power simulation."""
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"]["bootstrap"] = 200
    if small:
        cfg["stats"].pop("power")
        cfg["stats"].update(primary_claims=["C1"], primary_models=["resnet18"])
    cfg["report"].update(dir=str(tmp_path / "report"), path=str(tmp_path / "REPORT.md"), speed_change=0.2)
    cfg["grid"] = {"records_dir": "records/smoke"}
    return cfg


def _write(folder: Path, recs: list[dict]) -> Path:
    folder.mkdir(parents=True)
    for r in recs:
        records.write(folder, r)
    return folder


def _rewrite(folder: Path, slug: str, edit) -> None:
    path = folder / f"{slug}.json"
    rec = records.read(path)
    edit(rec)
    tio.atomic_write_json(path, rec)


def _break_half(rec: dict) -> dict:
    """The record with every second correct test prediction turned wrong (metrics recomputed)."""
    t = rec["predictions"]["test"]
    correct = np.array(t["probs"]).argmax(1) == np.array(t["labels"])
    correct[np.flatnonzero(correct)[::2]] = False
    return {**record(Case.of(rec), correct), "timing": rec["timing"], "env": rec["env"]}


@pytest.fixture
def sides(tmp_path):
    """Folders A, a regressed B (THTL last-layer loses half its correct test images in every
    replicate; the one-step arm trains at half speed) and a noisy B (every record re-drawn at the
    same accuracies: another run of the same study)."""
    a = pair(REPS, 0.5, 0.9, n=N_TEST, seed=0)
    reg = []
    for r in copy.deepcopy(a):
        if r["case"]["arm"] == "thtl_last":
            r = _break_half(r)
        else:
            r["timing"]["train_images_per_s"] /= 2
        reg.append(r)
    return (_write(tmp_path / "a", a), _write(tmp_path / "regressed", reg),
            _write(tmp_path / "noise", pair(REPS, 0.5, 0.9, n=N_TEST, seed=1)))


def _row(d: dict, cell: str, metric: str) -> dict:
    return next(r for r in d["metrics"] if (r["cell"], r["metric"]) == (cell, metric))


def _speed(d: dict, cell: str, what: str) -> dict:
    return next(r for r in d["speed"] if (r["cell"], r["what"]) == (cell, what))


def _acc(folder: Path, arm: str) -> float:
    return float(np.mean([r["metrics"]["test"]["accuracy"] for r in records.load_all([folder])
                          if r["case"]["arm"] == arm]))


def test_flags_injected_regression_not_noise(sides, tmp_path):
    a, regressed, noise = sides
    cfg = _cfg(tmp_path, small=True)
    d, text = compare.run(str(a), str(regressed), cfg)
    acc = _row(d, THTL, "accuracy")
    assert acc["flag"] == "REGRESSION" and acc["p_adjusted"] < 0.05
    assert acc["delta_pp"] == pytest.approx(100 * (_acc(regressed, "thtl_last") - _acc(a, "thtl_last")))
    assert acc["delta_pp"] < -20 and acc["ci_pp"][1] < 0
    untouched = _row(d, ONESTEP, "accuracy")
    assert untouched["delta_pp"] == 0 and untouched["flag"] == ""
    assert _speed(d, ONESTEP, "train_images_per_s")["flag"] == "SLOWER"
    assert _speed(d, ONESTEP, "train_images_per_s")["rel"] == pytest.approx(-0.5)
    assert f"{THTL} accuracy" in " ".join(d["regressions"]) and f"{ONESTEP} train_images_per_s -50 %" in d["regressions"]
    assert not any(ONESTEP in r and " pp " in r for r in d["regressions"])
    assert "REGRESSION" in text and "SLOWER" in text

    # Another run of the same study: the numbers move, nothing is beyond noise.
    d, _ = compare.run(str(a), str(noise), cfg)
    moved = [r for r in d["metrics"] if r["delta_pp"]]
    assert len(moved) >= 6 and max(abs(r["delta_pp"]) for r in moved) > 2
    assert d["flagged"] == 0 and not d["regressions"] and not any(r["changed"] for r in d["claims"])


def test_one_bh_adjustment_over_metrics_and_claims(sides, tmp_path):
    a, regressed, _ = sides
    d, text = compare.run(str(a), str(regressed), _cfg(tmp_path, small=True))
    tested = [r for r in d["metrics"] + d["claims"] if r["p"] is not None]
    assert any(r in d["claims"] for r in tested)  # the claim's difference is one of the tests
    assert d["tests"] == len(tested) and f"over all {len(tested)} tests" in text
    assert [r["p_adjusted"] for r in tested] == pytest.approx(inference.bh([r["p"] for r in tested]))
    assert all(r["p_adjusted"] >= r["p"] for r in tested)
    # flags follow the adjusted p, not the raw one
    for r in d["metrics"]:
        assert (r["flag"] in ("REGRESSION", "improvement")) == (r["p_adjusted"] is not None and r["p_adjusted"] < 0.05)


def test_identical_sides_have_no_flags(tmp_path):
    d, _ = compare.run(str(DATA / "records"), str(DATA / "records"), _cfg(tmp_path))
    assert not d["regressions"] and d["flagged"] == 0 and not any(r["changed"] for r in d["claims"])
    assert all(r["delta_pp"] in (0, None) for r in d["metrics"])
    assert "same cases under the same settings" in d["notes"][0]


def test_slowdown_on_another_machine_is_noted_not_a_regression(sides, tmp_path):
    a, regressed, _ = sides
    for f in regressed.glob("*onestep_last*.json"):
        _rewrite(regressed, f.stem, lambda r: r["env"].update(device_name="another CPU"))
    d, _ = compare.run(str(a), str(regressed), _cfg(tmp_path, small=True))
    row = _speed(d, ONESTEP, "train_images_per_s")
    assert row["flag"] == "slower (different machines: not comparable)"
    assert row["devices"] == (["cpu (test CPU)"], ["cpu (another CPU)"])
    assert not any("train_images_per_s" in r for r in d["regressions"])
    assert any(n.startswith("devices differ") and "another CPU" in n for n in d["notes"])
    assert any(f"{THTL} accuracy" in r for r in d["regressions"])  # the accuracy drop still counts


@pytest.fixture
def undertrained(tmp_path):
    """The sample records, and a copy in which one resnet18 one-step (all layers) replicate
    missed its training fit: same predictions, so no metric moves, but C5's verdict does."""
    a, b = tmp_path / "samples_a", tmp_path / "samples_b"
    shutil.copytree(DATA / "records", a)
    shutil.copytree(DATA / "records", b)
    _rewrite(b, "resnet18__onestep_all__s0__k0", lambda r: r["fit"].update(ok=False))
    return a, b


def test_verdict_change_is_explained_and_counts_as_a_regression(undertrained, tmp_path):
    a, b = undertrained
    d, text = compare.run(str(a), str(b), _cfg(tmp_path))
    assert d["flagged"] == 0 and all(r["delta_pp"] in (0, None) for r in d["metrics"])
    (changed,) = [r for r in d["claims"] if r["changed"]]
    assert (changed["id"], changed["model"], changed["a"], changed["b"]) == (
        "C5", "resnet18", "underpowered", "not decided: under-trained")
    assert changed["why"] == "inputs differ"  # the B verdict was not read off an interval
    assert d["regressions"] == ["C5/resnet18 verdict underpowered -> not decided: under-trained (inputs differ)"]
    assert "VERDICT CHANGED (inputs differ)" in text and "1 claim verdict change(s)" in text


def _cli(argv):
    p = argparse.ArgumentParser()
    report_cli.add_cli(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    return args.func(args)


def _params(tmp_path: Path, small: bool) -> list[str]:
    params = tmp_path / ("params_small.yaml" if small else "params.yaml")
    cfg = _cfg(tmp_path, small)
    cfg["profiles"] = {"t": {}}
    params.write_text(json.dumps(cfg))
    return ["--params", str(params), "--profile", "t"]


def test_cli_exit_codes_and_summary_side(sides, undertrained, tmp_path, capsys):
    a, regressed, _ = sides
    common = _params(tmp_path, small=True)
    assert _cli(["compare", str(a), str(regressed), *common]) == 0  # informational by default
    assert _cli(["compare", str(a), str(regressed), "--fail-on-regression", *common]) == 1
    # a verdict change alone fails the gate
    ua, ub = undertrained
    golden = _params(tmp_path, small=False)
    assert _cli(["compare", str(ua), str(ub), *golden]) == 0
    assert _cli(["compare", str(ua), str(ub), "--fail-on-regression", *golden]) == 1
    assert _cli(["compare", str(ua), str(ua), "--fail-on-regression", *golden]) == 0
    # a summary.json side: compared by Welch over its replicate values
    capsys.readouterr()
    assert _cli(["aggregate", str(a), "--out", str(tmp_path / "a.json"), *common]) == 0
    assert _cli(["compare", str(tmp_path / "a.json"), str(a), "--fail-on-regression", *common]) == 0
    out = capsys.readouterr().out
    assert "0 regression(s)" in out and "Welch over replicate values" in out
    d, _ = compare.run(str(tmp_path / "a.json"), str(regressed), _cfg(tmp_path, small=True))
    assert _row(d, THTL, "accuracy")["flag"] == "REGRESSION"


def test_git_revision_side(sides, tmp_path, monkeypatch):
    a, regressed, _ = sides
    repo = tmp_path / "repo"
    (repo / "records").mkdir(parents=True)
    for f in a.glob("*.json"):
        shutil.copy(f, repo / "records" / f.name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "records"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "records"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    cfg = _cfg(tmp_path, small=True)
    cfg["grid"]["records_dir"] = "records"
    d, text = compare.run("HEAD", str(regressed), cfg)
    assert "A = HEAD:records" in text
    assert _row(d, THTL, "accuracy")["flag"] == "REGRESSION"
    with pytest.raises(UserError, match="not a records folder"):
        compare.run("no-such-thing", str(regressed), cfg)
