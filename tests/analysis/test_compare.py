"""compare: an injected regression is flagged, seed-level noise is not; every kind of side loads."""

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

from thtl_bench import io as tio
from thtl_bench import metrics, records
from thtl_bench.analysis import compare
from thtl_bench.analysis import summary as summ
from thtl_bench.cli import report as report_cli
from thtl_bench.errors import UserError

DATA = Path(samples.HERE)


@pytest.fixture(autouse=True)
def pinned_registry(monkeypatch):
    monkeypatch.setattr(summ, "_registry", lambda kind: list(samples.GOLDEN_ORDER[kind]))


def _cfg(tmp_path: Path) -> dict:
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"]["bootstrap"] = 200
    cfg["report"].update(dir=str(tmp_path / "report"), path=str(tmp_path / "REPORT.md"), speed_change=0.2)
    cfg["grid"] = {"records_dir": "records/smoke"}
    return cfg


def _rewrite(folder: Path, slug: str, edit) -> None:
    path = folder / f"{slug}.json"
    rec = records.read(path)
    edit(rec)
    tio.atomic_write_json(path, rec)


def _break_predictions(rec: dict, n: int) -> None:
    """Turn the first n correct test predictions wrong and recompute the metrics from them."""
    pred = rec["predictions"]["test"]
    probs = np.array(pred["probs"])
    labels = np.array(pred["labels"])
    right = np.flatnonzero(probs.argmax(1) == labels)[:n]
    probs[right] = probs[right][:, ::-1]
    pred["probs"] = probs.tolist()
    rec["metrics"]["test"] = metrics.compute(labels, probs, rec["data"]["classes"], rec["data"]["positive"])


@pytest.fixture
def folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(DATA / "records", a)
    shutil.copytree(DATA / "records", b)
    for s in range(3):  # regression: resnet18 SWFT loses ~20 correct test images per seed
        _rewrite(b, f"resnet18__swft__s{s}", lambda r: _break_predictions(r, 20))
    for s, eps in enumerate((0.01, -0.012, 0.006)):  # noise well inside the seed spread

        def jitter(r, eps=eps):
            r["metrics"]["test"]["accuracy"] += eps

        _rewrite(b, f"efficientnet_lite0__onestep_all__s{s}", jitter)
    for s in range(3):  # a 2x slowdown of one case

        def slow(r):
            r["timing"]["train_images_per_s"] /= 2

        _rewrite(b, f"resnet18__scratch__s{s}", slow)
    return a, b


def _row(d: dict, model: str, arm: str, metric: str) -> dict:
    return next(r for r in d["metrics"] if (r["model"], r["arm"], r["metric"]) == (model, arm, metric))


def test_flags_injected_regression_not_noise(folders, tmp_path):
    a, b = folders
    d, text = compare.run(str(a), str(b), _cfg(tmp_path))
    swft = _row(d, "resnet18", "swft", "accuracy")
    assert swft["flag"] == "REGRESSION" and swft["delta_pp"] < -20
    noisy = _row(d, "efficientnet_lite0", "onestep_all", "accuracy")
    assert noisy["delta_pp"] != 0 and noisy["flag"] == ""
    untouched = _row(d, "resnet18", "thtl_all", "accuracy")
    assert untouched["delta_pp"] == 0 and untouched["flag"] == ""
    speed = next(r for r in d["speed"] if (r["model"], r["arm"], r["what"]) == ("resnet18", "scratch",
                                                                               "train_images_per_s"))
    assert speed["flag"] == "SLOWER" and speed["rel"] == pytest.approx(-0.5)
    assert any("resnet18/swft accuracy" in r for r in d["regressions"])
    assert not any("efficientnet_lite0/onestep_all" in r for r in d["regressions"])
    c4 = next(r for r in d["claims"] if (r["id"], r["model"]) == ("C4", "resnet18"))
    assert c4["changed"] and c4["a"] == "reproduced" and c4["b"] == "contradicted"
    assert "VERDICT CHANGED" in text and "REGRESSION" in text


def test_identical_sides_have_no_flags(tmp_path):
    d, _ = compare.run(str(DATA / "records"), str(DATA / "records"), _cfg(tmp_path))
    assert not d["regressions"] and d["flagged"] == 0 and not any(r["changed"] for r in d["claims"])
    assert "same records" in d["notes"][0]


def _cli(argv):
    p = argparse.ArgumentParser()
    report_cli.add_cli(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    return args.func(args)


def test_cli_exit_code_and_summary_side(folders, tmp_path, capsys):
    a, b = folders
    params = tmp_path / "params.yaml"
    cfg = _cfg(tmp_path)
    cfg["profiles"] = {"t": {}}
    params.write_text(json.dumps(cfg))
    common = ["--params", str(params), "--profile", "t"]
    assert _cli(["compare", str(a), str(b), *common]) == 0  # informational by default
    assert _cli(["compare", str(a), str(b), "--fail-on-regression", *common]) == 1
    assert _cli(["aggregate", str(a), "--out", str(tmp_path / "a.json"), *common]) == 0
    assert _cli(["compare", str(tmp_path / "a.json"), str(a), "--fail-on-regression", *common]) == 0
    assert "0 regression(s)" in capsys.readouterr().out


def test_git_revision_side(folders, tmp_path, monkeypatch):
    a, b = folders
    repo = tmp_path / "repo"
    (repo / "records").mkdir(parents=True)
    for f in a.glob("*.json"):
        shutil.copy(f, repo / "records" / f.name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "records"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "records"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    cfg = _cfg(tmp_path)
    cfg["grid"]["records_dir"] = "records"
    d, text = compare.run("HEAD", str(b), cfg)
    assert "A = HEAD:records" in text
    assert _row(d, "resnet18", "swft", "accuracy")["flag"] == "REGRESSION"
    with pytest.raises(UserError, match="not a records folder"):
        compare.run("no-such-thing", str(b), cfg)
