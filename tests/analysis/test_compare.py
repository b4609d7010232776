"""compare, the regression gate, both ways: it fails on planted regressions (the issue's 8 pp /
28.6 pp edit of one arm's records with the same case ids, a 5 pp drop at the default's replicate
count) and passes on unchanged work (identical predictions on a slower, other host; another run of
the study); a verdict change is labelled with its cause and fails the gate only when a metric
change explains it; the exact comparison of predictions comes first; every kind of side loads."""

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
from thtl_bench.analysis import compare
from thtl_bench.analysis import summary as summ
from thtl_bench.cli import report as report_cli
from thtl_bench.errors import UserError
from thtl_bench.records import Case

DATA = Path(samples.HERE)
# The default's design: 8 replicates, each its own split; 50 test images (25 patients) each.
REPS = [(s, s) for s in range(8)]
N_TEST = 50
THTL = "resnet18/thtl_last[fundus]"
ONESTEP = "resnet18/onestep_last"


@pytest.fixture(autouse=True)
def pinned_registry(monkeypatch):
    monkeypatch.setattr(summ, "_registry", lambda kind: list(samples.GOLDEN_ORDER[kind]))


def _cfg(tmp_path: Path, small: bool = False) -> dict:
    """The golden analysis plan; `small`: one primary claim (C1/resnet18)."""
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    if small:
        cfg["stats"].update(primary_claims=["C1"], primary_models=["resnet18"])
    cfg["report"].update(dir=str(tmp_path / "report"), path=str(tmp_path / "REPORT.md"))
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


def _drop(rec: dict, images: int, positives_first: bool = True) -> dict:
    """The record with `images` correct test predictions turned wrong (malignant ones first, as in
    the issue's edit), same case id; metrics recomputed from the predictions."""
    t = rec["predictions"]["test"]
    labels = np.array(t["labels"])
    correct = np.array(t["probs"]).argmax(1) == labels
    hits = np.flatnonzero(correct)
    order = sorted(hits, key=lambda i: (labels[i] != 1) if positives_first else 0)
    correct[order[:images]] = False
    new = record(Case.of(rec), correct, n=len(labels))
    return {**rec, "metrics": new["metrics"], "predictions": new["predictions"]}


@pytest.fixture
def sides(tmp_path):
    """Folder A (thtl_last at 80 %, onestep_last at 90 %), and copies of it: `regressed`, the
    issue's edit (every onestep_last replicate loses 4 of 50 test images: 8 pp of accuracy, mostly
    malignant ones); `slower`: identical predictions, 21 % lower throughput on another CPU;
    `rerun`: every record re-drawn at the same accuracies (another run of the study)."""
    a = pair(REPS, 0.8, 0.9, n=N_TEST, seed=0)
    reg = [_drop(r, 4) if r["case"]["arm"] == "onestep_last" else r for r in copy.deepcopy(a)]
    slow = copy.deepcopy(a)
    for r in slow:
        r["timing"] = {k: v / 1.21 if k.endswith("_per_s") else v * 1.21 for k, v in r["timing"].items()}
        r["env"] = {**r["env"], "device_name": "another, slower CPU"}
    return (_write(tmp_path / "a", a), _write(tmp_path / "regressed", reg), _write(tmp_path / "slower", slow),
            _write(tmp_path / "rerun", pair(REPS, 0.8, 0.9, n=N_TEST, seed=1)))


def _row(d: dict, cell: str, metric: str) -> dict:
    return next(r for r in d["metrics"] if (r["cell"], r["metric"]) == (cell, metric))


def test_the_gate_fails_on_the_planted_regression(sides, tmp_path):
    a, regressed, _, _ = sides
    d, text = compare.run(str(a), str(regressed), _cfg(tmp_path, small=True))
    acc, rec = _row(d, ONESTEP, "accuracy"), _row(d, ONESTEP, "recall")
    assert acc["delta_pp"] == pytest.approx(-8.0) and acc["flag"] == "REGRESSION" and acc["ci_pp"][1] < 0
    assert rec["delta_pp"] == pytest.approx(-16.0) and rec["flag"] == "REGRESSION"  # 4 of 25 malignant
    assert _row(d, THTL, "accuracy")["flag"] == "identical predictions"
    assert d["cases"]["identical"] == 8 and len(d["cases"]["changed"]) == 8
    assert any(f"{ONESTEP} accuracy -8.0 pp" in r for r in d["regressions"])
    lines = text.splitlines()
    assert lines[4].startswith("Gate: FAIL") and lines[1].startswith("Cases: 16 on both sides, 8 with identical")


def test_a_five_point_drop_is_caught_at_the_default_replicate_count(sides, tmp_path):
    a, _, _, _ = sides
    folder = tmp_path / "five"
    recs = [_drop(r, 2, positives_first=False) if r["case"]["arm"] == "onestep_last" else r
            for r in records.load_all([a])]  # 2 of 50 images: a 4 pp drop per replicate ...
    recs = [_drop(r, 1, positives_first=False) if r["case"]["arm"] == "onestep_last" and r["case"]["seed"] % 2 else r
            for r in recs]  # ... and 6 pp in every other one: 5 pp on average
    d, _ = compare.run(str(a), str(_write(folder, recs)), _cfg(tmp_path, small=True))
    row = _row(d, ONESTEP, "accuracy")
    assert row["delta_pp"] == pytest.approx(-5.0) and row["flag"] == "REGRESSION"
    assert d["regressions"] and row["mde_pp"] is not None and row["mde_pp"] < 5.0


def test_the_gate_passes_unchanged_work_on_a_slower_host(sides, tmp_path):
    a, _, slower, _ = sides
    d, text = compare.run(str(a), str(slower), _cfg(tmp_path, small=True))
    assert not d["regressions"] and d["tests"] == 0 and d["cases"]["identical"] == 16
    assert all(r["flag"] == "identical predictions" for r in d["metrics"])
    assert any(r["rel"] == pytest.approx(1 / 1.21 - 1) for r in d["speed"])  # shown, never failed
    assert "Gate: pass" in text and "different hosts" in text


def test_another_run_of_the_study_is_within_noise(sides, tmp_path):
    a, _, _, rerun = sides
    d, _ = compare.run(str(a), str(rerun), _cfg(tmp_path, small=True))
    moved = [r for r in d["metrics"] if r["delta_pp"]]
    assert len(moved) >= 4 and d["tests"] >= 4  # the predictions changed, and were judged
    assert d["flagged"] == 0 and not d["regressions"]
    assert [r["p_holm"] for r in d["metrics"] if r["p_holm"] is not None] == pytest.approx(
        compare.holm([r["p"] for r in d["metrics"] if r["gated"] and r["p"] is not None]))


def test_identical_sides(tmp_path):
    d, text = compare.run(str(DATA / "records"), str(DATA / "records"), _cfg(tmp_path))
    assert not d["regressions"] and d["flagged"] == 0 and not any(r["changed"] for r in d["claims"])
    assert d["cases"]["changed"] == {} and "Gate: pass" in text


@pytest.fixture
def undertrained(tmp_path):
    """The sample records, and a copy in which one resnet18 one-step (all layers) replicate fails
    the fit gate (learned too little): same predictions, so no metric moves, but C5's verdict does."""
    a, b = tmp_path / "samples_a", tmp_path / "samples_b"
    shutil.copytree(DATA / "records", a)
    shutil.copytree(DATA / "records", b)
    _rewrite(b, "resnet18__onestep_all__s0__k0",
             lambda r: r["stages"][0]["fit"].update(train_accuracy=r["stages"][0]["fit"]["majority"]))
    return a, b


def test_verdict_change_from_the_fit_gate_is_shown_not_failed(undertrained, tmp_path):
    a, b = undertrained
    d, text = compare.run(str(a), str(b), _cfg(tmp_path))
    assert d["flagged"] == 0 and not d["regressions"]
    (changed,) = [r for r in d["claims"] if r["changed"]]
    assert (changed["id"], changed["model"], changed["b"]) == ("C5", "resnet18", "not decided: under-trained")
    assert changed["why"] == "fit gate changed"
    assert "VERDICT CHANGED (fit gate changed)" in text and "Gate: pass" in text


def test_verdict_change_from_a_metric_fails_the_gate(tmp_path):
    # C1 (thtl_last - onestep_last) is reproduced in A; B's thtl_last got as good as onestep_last
    a = pair(REPS, 0.7, 0.9, n=N_TEST, seed=3)
    b = [r if r["case"]["arm"] != "thtl_last" else
         record(Case.of(r), np.array(x["predictions"]["test"]["probs"]).argmax(1) == np.array(x["predictions"]["test"]["labels"]), n=N_TEST)
         for r, x in zip(a, pair(REPS, 0.9, 0.9, n=N_TEST, seed=4), strict=True)]
    d, _ = compare.run(str(_write(tmp_path / "a", a)), str(_write(tmp_path / "b", b)), _cfg(tmp_path, small=True))
    (changed,) = [r for r in d["claims"] if r["changed"] and r["id"] == "C1"]
    assert changed["why"] == "metric moved" and THTL in changed["cells"]
    assert any("C1/resnet18 verdict" in r for r in d["regressions"])


def test_verdict_change_from_the_grid_or_the_plan_is_not_a_regression(sides, tmp_path):
    a, _, _, _ = sides
    fewer = tmp_path / "fewer"
    _write(fewer, [r for r in records.load_all([a]) if r["case"]["seed"] < 2])
    d, _ = compare.run(str(a), str(fewer), _cfg(tmp_path, small=True))
    assert d["cases"]["only_a"] and not d["regressions"]
    for r in d["claims"]:
        assert not r["changed"] or r["why"] == "grid changed"
    cfg = _cfg(tmp_path, small=True)
    sa, ra, _ = compare.load_side(str(a), cfg)
    cfg2 = copy.deepcopy(cfg)
    cfg2["stats"]["confidence"] = 0.999999
    sb, rb, _ = compare.load_side(str(a), cfg2)
    d = compare.diff(sa, sb, cfg, ra, rb)
    assert any(n.startswith("analysis plans differ") for n in d["notes"])
    assert all(r["why"] == "plan changed" for r in d["claims"] if r["changed"]) and not d["regressions"]


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


def test_cli_exit_codes_and_summary_side(sides, tmp_path, capsys):
    a, regressed, slower, _ = sides
    common = _params(tmp_path, small=True)
    assert _cli(["compare", str(a), str(regressed), *common]) == 0  # informational by default
    assert _cli(["compare", str(a), str(regressed), "--fail-on-regression", *common]) == 1
    assert _cli(["compare", str(a), str(slower), "--fail-on-regression", *common]) == 0
    # a summary.json side: a t over the paired replicate values
    capsys.readouterr()
    assert _cli(["aggregate", str(a), "--out", str(tmp_path / "a.json"), *common]) == 0
    assert _cli(["compare", str(tmp_path / "a.json"), str(a), "--fail-on-regression", *common]) == 0
    out = capsys.readouterr().out
    assert "Gate: pass" in out and "paired replicate values" in out
    d, _ = compare.run(str(tmp_path / "a.json"), str(regressed), _cfg(tmp_path, small=True))
    assert _row(d, ONESTEP, "accuracy")["flag"] == "REGRESSION"


def test_git_revision_side(sides, tmp_path, monkeypatch):
    a, regressed, _, _ = sides
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
    assert _row(d, ONESTEP, "accuracy")["flag"] == "REGRESSION"
    with pytest.raises(UserError, match="not a records folder"):
        compare.run("no-such-thing", str(regressed), cfg)
