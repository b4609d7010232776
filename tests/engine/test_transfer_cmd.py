"""`thtl-bench transfer`: scores of trained step-1 networks on the larynx training split, ImageNet
distances, skips with the command to run, strict mode, determinism, and the report reading the
file. Tiny phantoms (32 px) and a tiny StagedModel through the engine's model seam; no weights
are ever fetched."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support.models import accept_model_names
from torch import nn

from thtl_bench import config, transfer, transferability
from thtl_bench.analysis import aggregate, studies
from thtl_bench.cli import studies as studies_cli
from thtl_bench.engine import case as case_mod
from thtl_bench.engine import run_case
from thtl_bench.engine.inputs import tensors
from thtl_bench.engine.load import load_case_model
from thtl_bench.errors import UserError
from thtl_bench.io import json_text
from thtl_bench.models.staged import StagedModel
from thtl_bench.models.weights import WeightsUnavailable
from thtl_bench.records import Case

ROOT = Path(__file__).resolve().parents[2]
STEP1 = Case("tiny", "thtl_step1", 0, 0, "fundus")
ENTRY_KEYS = {"model", "arm", "domain", "replicate", "intermediate_fraction", "slug", "case_id",
              "checkpoint_sha256", "source_classes", "n_target", "target_counts", "feature_dim",
              "n_intermediate", "scores", "distances", "notes"}


def tiny(name, num_classes, init, cfg):
    """A 4-stage StagedModel; its "ImageNet" weights are one fixed draw (like a real file);
    'noweights' has none."""
    if init == "imagenet" and name == "noweights":
        raise WeightsUnavailable(f"no offline ImageNet weights for {name}")
    with torch.random.fork_rng():
        if init == "imagenet":
            torch.manual_seed(1234)
        stages = [
            ("stem", nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())),
            ("block", nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())),
            ("top", nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3))),
            ("fc", nn.Linear(8, num_classes)),
        ]
    groups = [("fc", ["fc"]), ("top", ["top"]), ("block", ["block"]), ("stem", ["stem"])]
    return StagedModel(stages, groups, head_stage="fc", cam_layers={}, name=name, family="tiny",
                       weights_info={"init": init, "source": f"tiny-{init}"})


def _overrides(tmp: Path) -> list[str]:
    return [f"data.root={tmp}/data", f"data.cache_dir={tmp}/cache", f"data.fundus.root={tmp}/data/fundus",
            f"data.larynx.root={tmp}/data/larynx", f"split.dir={tmp}/splits", f"report.dir={tmp}/report",
            f"grid.records_dir={tmp}/records", f"grid.checkpoints_dir={tmp}/ck",
            "synth.image_size=32", "data.image_size=32", "synth.fundus.per_grade=[6,6,6,6,6]",
            "synth.larynx.patients={benign: 7, malignant: 7}", "synth.larynx.images_per_patient=[2,3]",
            "train.batch_size=8", "train.max_epochs=2", "train.min_epochs=1", "train.warmup_epochs=1",
            "train.patience=2", "train.num_threads=1", "train.device=cpu", "grid.replicates=[[0, 0], [1, 1]]",
            "grid.models=[tiny, noweights]", "grid.arms=[onestep_last, thtl_step1, thtl_last]",
            "stats.bootstrap=50"]


@pytest.fixture(scope="module", autouse=True)
def stand_in_models():
    """tiny and noweights are built by this module's `tiny`; config accepts their names."""
    mp = pytest.MonkeyPatch()
    accept_model_names(mp, "tiny", "noweights")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Phantoms, then tiny's step 1 (and the two arms of the THTL gain) at replicate (0, 0) only;
    noweights' step 1 ends not_run (no ImageNet weights), replicate (1, 1) is never trained."""
    from thtl_bench.data import phantoms

    tmp = tmp_path_factory.mktemp("transfer")
    over = _overrides(tmp)
    cfg = config.load(ROOT / "params.yaml", "smoke", over)
    phantoms.synth(tmp / "data", cfg["synth"])
    mp = pytest.MonkeyPatch()
    mp.setattr(case_mod, "build_model", tiny)
    try:
        recs = [run_case(cfg, Case("tiny", arm, 0, 0, "fundus" if arm != "onestep_last" else None))
                for arm in ("thtl_step1", "thtl_last", "onestep_last")]
        recs.append(run_case(cfg, Case("noweights", "thtl_step1", 0, 0, "fundus")))
    finally:
        mp.undo()
    assert [r["status"] for r in recs] == ["ok", "ok", "ok", "not_run"]
    return tmp, over, cfg, recs


@pytest.fixture
def cfg(trained, monkeypatch):
    monkeypatch.setattr(case_mod, "build_model", tiny)
    return copy.deepcopy(trained[2])


def test_schema_scores_distances_and_skips(cfg):
    doc = transfer.compute(cfg)
    assert doc["schema"] == transfer.SCHEMA == "thtl-bench/transfer/v1"
    assert set(doc) == {"schema", "settings", "data", "entries", "skipped", "note"}
    assert [e["slug"] for e in doc["entries"]] == [STEP1.slug]
    e = doc["entries"][0]
    assert set(e) == ENTRY_KEYS
    assert (e["model"], e["arm"], e["domain"], e["replicate"]) == ("tiny", "thtl_step1", "fundus", [0, 0])
    # the names the reporting side looks up, all finite
    assert set(e["scores"]) == set(transferability.SCORES)
    assert set(e["distances"]) == set(transferability.DISTANCES)
    assert all(np.isfinite(v) for v in {**e["scores"], **e["distances"]}.values())
    assert e["scores"]["leep"] <= 0 and e["scores"]["nce"] <= 0
    assert e["notes"] == [] and e["feature_dim"] == 8 and e["source_classes"] == ["0", "1", "2", "3", "4"]
    target = tensors(cfg, "larynx", 0)
    assert e["n_target"] == len(target.index("train")) == sum(e["target_counts"].values())
    assert e["n_intermediate"] == len(tensors(cfg, "fundus", 0).index("train"))
    assert set(doc["data"]) == {"larynx", "fundus"} and doc["data"]["larynx"]["kind"] == "phantom"
    # tiny at (1, 1) was never trained; noweights' step 1 is not_run: skipped, each with its command
    skipped = {s["slug"]: s for s in doc["skipped"]}
    assert set(skipped) == {"tiny__thtl_step1__fundus__s1__k1", "noweights__thtl_step1__fundus__s0__k0",
                            "noweights__thtl_step1__fundus__s1__k1"}
    s = skipped["tiny__thtl_step1__fundus__s1__k1"]
    assert s["command"] == ("thtl-bench run --profile smoke --model tiny --arm thtl_step1 --seed 1 --split 1 "
                            "--domain fundus --ensure-checkpoint")
    assert "no best.pt" in s["reason"]
    assert "not run" in skipped["noweights__thtl_step1__fundus__s0__k0"]["reason"]
    assert "ImageNet" in skipped["noweights__thtl_step1__fundus__s0__k0"]["reason"]
    assert "Skipped 3 step-1 case(s)" in doc["note"] and "--ensure-checkpoint" in doc["note"]


def test_scores_read_the_head_input_and_the_step1_softmax(cfg):
    doc = transfer.compute(cfg)
    e = doc["entries"][0]
    net = load_case_model(cfg, STEP1)
    target = tensors(cfg, "larynx", 0)
    idx = target.index("train")
    feats, probs = transfer.outputs(net, target.images[idx], torch.device("cpu"), 5)  # batches of 5: same
    # the features are what the head reads; the probabilities the whole network's eval-mode softmax
    from thtl_bench.cam import _inputs

    with torch.no_grad():
        logits = net.eval()(_inputs(np.asarray(target.images[idx]), torch.device("cpu"))).double().numpy()
        head = net.stages["fc"]
        np.testing.assert_allclose(feats @ head.weight.double().numpy().T + head.bias.double().numpy(), logits,
                                   atol=1e-5)
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(1, keepdims=True), atol=1e-6)
    labels = np.asarray(target.labels)[idx]
    assert e["scores"]["logme"] == pytest.approx(transferability.logme(feats, labels), rel=1e-6)
    assert e["scores"]["hscore"] == pytest.approx(transferability.hscore(feats, labels), rel=1e-6)
    assert e["scores"]["leep"] == pytest.approx(transferability.leep(probs, labels), rel=1e-6)
    assert e["scores"]["nce"] == pytest.approx(transferability.nce(probs.argmax(1), labels), rel=1e-6, abs=1e-12)
    # distances use the ImageNet initialisation, not the trained step-1 weights
    inet = tiny("tiny", 5, "imagenet", cfg)
    fund = tensors(cfg, "fundus", 0)
    a = transfer.outputs(inet, fund.images[fund.index("train")], torch.device("cpu"), 16)[0]
    b = transfer.outputs(inet, target.images[idx], torch.device("cpu"), 16)[0]
    assert e["distances"]["frechet"] == pytest.approx(transferability.frechet_distance(a, b), rel=1e-6)
    assert e["distances"]["mmd"] == pytest.approx(transferability.mmd(a, b), rel=1e-6)
    stepped = transfer.outputs(net, fund.images[fund.index("train")], torch.device("cpu"), 16)[0]
    assert transferability.frechet_distance(stepped, b) != pytest.approx(e["distances"]["frechet"], rel=1e-3)


def test_same_checkpoints_give_the_same_file(cfg):
    a, b = transfer.compute(cfg), transfer.compute(cfg)
    assert json_text(a) == json_text(b)


def test_subsample_is_capped_seeded_and_shared_by_models(cfg):
    cfg["transferability"]["max_images"] = 6
    e = transfer.compute(cfg)["entries"][0]
    assert e["n_target"] == 6 and e["n_intermediate"] == 6
    target = tensors(cfg, "larynx", 0)
    idx = transfer.subsample(target, "train", 6, 0)
    assert len(set(idx.tolist())) == 6 and (np.asarray(target.split)[idx] == "train").all()
    assert (np.diff(idx) > 0).all()  # data order
    assert np.array_equal(idx, transfer.subsample(target, "train", 6, 0))  # no model in the key
    assert not np.array_equal(idx, transfer.subsample(target, "train", 6, 1))
    full = transfer.compute({**cfg, "transferability": {**cfg["transferability"], "max_images": 500}})["entries"][0]
    assert full["scores"]["logme"] != pytest.approx(e["scores"]["logme"])


def test_missing_imagenet_weights_skip_the_distances_with_a_note(cfg, monkeypatch):
    # Weights present when step 1 was trained, gone now: the scores stand, distances are not faked.
    def no_imagenet(name, k, init, c):
        if init == "imagenet":
            raise WeightsUnavailable(f"no offline ImageNet weights for {name}")
        return tiny(name, k, init, c)

    monkeypatch.setattr(case_mod, "build_model", no_imagenet)
    doc = transfer.compute(cfg)
    e = doc["entries"][0]
    assert e["distances"] == {} and e["n_intermediate"] is None
    assert set(e["scores"]) == set(transferability.SCORES)
    assert any("distances not computed for tiny" in n for n in e["notes"])
    assert "No distances for tiny" in doc["note"]


def test_strict_names_every_missing_checkpoint_and_its_command(cfg):
    with pytest.raises(UserError) as err:
        transfer.compute(cfg, strict=True)
    msg = str(err.value)
    assert msg.startswith("thtl-bench transfer needs the best checkpoint")
    assert "tiny__thtl_step1__fundus__s1__k1/best.pt" in msg
    assert "thtl-bench run --profile smoke --model tiny --arm thtl_step1 --seed 1 --split 1 --domain fundus" in msg
    assert "noweights__thtl_step1__fundus__s0__k0" in msg
    assert "tiny__thtl_step1__fundus__s0__k0" not in msg  # only what is missing


def test_a_checkpoint_of_other_parameters_is_skipped_not_scored(cfg):
    cfg["train"]["weight_decay"] = 0.5  # another recipe: step 1's case_id changes, its best.pt no longer fits
    doc = transfer.compute(cfg)
    assert doc["entries"] == []
    s = next(s for s in doc["skipped"] if s["slug"] == STEP1.slug)
    assert "trained under other parameters" in s["reason"] and s["command"].startswith("thtl-bench run")
    with pytest.raises(UserError, match="other parameters"):
        cfg["grid"]["models"] = ["tiny"]
        cfg["grid"]["replicates"] = [[0, 0]]
        transfer.compute(cfg, strict=True)


def test_a_stale_split_file_fails_loudly_instead_of_skipping(cfg):
    cfg["split"]["val"] = 0.3  # the split files on disk were made with 0.2: a data problem for every case
    with pytest.raises(UserError, match="split"):
        transfer.compute(cfg)


def test_step1_cases_are_the_parents_of_the_thtl_arms(cfg):
    cfg["grid"]["arms"] = ["thtl_last"]  # step 1 not listed: still the network behind thtl_last
    cfg["grid"]["intermediate_fractions"] = [0.5, 1.0]
    cs = transfer.step1_cases(cfg)
    assert cs[0] == STEP1 and all(c.arm == "thtl_step1" and c.intermediate_fraction == 1.0 for c in cs)
    assert len(cs) == 4  # 2 models x 2 replicates, at the largest share only


def test_cli_writes_the_file_the_report_reads(trained, monkeypatch, capsys):
    tmp, over, cfg, recs = trained
    monkeypatch.setattr(case_mod, "build_model", tiny)
    parser = argparse.ArgumentParser()
    studies_cli.add_cli(parser.add_subparsers(dest="command"))
    base = ["transfer", "--params", str(ROOT / "params.yaml"), "--profile", "smoke", *[a for o in over for a in ("-S", o)]]
    args = parser.parse_args(base)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "skip tiny__thtl_step1__fundus__s1__k1" in out and "1 step-1 network(s) scored, 3 skipped" in out
    doc = aggregate.load_artefacts(tmp / "report")["transfer"]
    assert doc == json.loads(json_text(transfer.compute(cfg)))
    # the reporting side: the step-1 scores beside the measured THTL gain of (tiny, fundus)
    table = studies.transfer(recs, doc, cfg["stats"])
    (row,) = table["rows"]
    assert (row["model"], row["domain"], row["n_replicates"]) == ("tiny", "fundus", 1)
    assert row["gain"] is not None
    for name in [*transferability.SCORES, *transferability.DISTANCES]:
        assert row[name] == pytest.approx(doc["entries"][0]["scores"].get(name, doc["entries"][0]["distances"].get(name)))
    assert set(table["kendall"]) == {*transferability.SCORES, *transferability.DISTANCES}
    assert table["note"] == doc["note"]
    # --strict: exit with the error, the artefact left as it was
    strict = parser.parse_args([*base, "--strict"])
    with pytest.raises(UserError, match="thtl-bench transfer needs"):
        strict.func(strict)
