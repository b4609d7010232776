"""Fair arms (issue 11): one head distribution for every init, one budget rule for every stage,
the training fit on record. Tiny phantoms (32 px) through the engine, plus every registry model's
head."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import tiny as tiny_data

from thtl_bench import arms, catalog, models
from thtl_bench.engine import case as case_mod
from thtl_bench.engine import loop, run_case
from thtl_bench.records import Case


@pytest.fixture(scope="module")
def data_cfg(tmp_path_factory):
    return tiny_data.phantom_cfg(tmp_path_factory.mktemp("fair"), [
        "synth.larynx.patients={benign: 8, malignant: 8}", "train.max_epochs=4", "train.min_epochs=3",
        "train.patience=1", "grid.exclude=[]"])


@pytest.fixture
def cfg(data_cfg, tmp_path):
    c = copy.deepcopy(data_cfg)
    c["grid"].update(records_dir=str(tmp_path / "records"), checkpoints_dir=str(tmp_path / "ck"))
    return c


def C(arm: str, model: str = "efficientnet_lite0", seed: int = 0) -> Case:
    return Case(model, arm, seed, 0, "fundus" if arms.get(arm).via_intermediate else None)


@pytest.mark.parametrize("name", catalog.MODELS)
def test_every_registry_model_gets_the_same_head_whatever_the_start(name):
    # The library's own head init differs by family (timm's efficientnet U(+-1/sqrt(fan_out)) is
    # 25x wider than a fresh nn.Linear); init_head replaces it, so random, ImageNet-replaced and
    # parent-loaded heads of one case are the same tensors.
    size = 32
    a = models.build(name, 2, init="random", image_size=size)
    b = models.build(name, 2, init="random", image_size=size)
    b.replace_head(2)  # what the ImageNet path does after loading the 1000-class model
    seed = 1234
    stats_a = a.init_head(0.01, torch.Generator().manual_seed(seed))
    stats_b = b.init_head(0.01, torch.Generator().manual_seed(seed))
    ha, hb = a.stages[a.head_stage], b.stages[b.head_stage]
    assert torch.equal(ha.weight, hb.weight) and torch.equal(ha.bias, hb.bias)
    assert stats_a == stats_b and stats_a["weight_std"] == pytest.approx(0.01, rel=0.3)
    assert float(ha.bias.abs().max()) == 0.0


def test_imagenet_and_parent_arms_start_from_the_scratch_arms_head(cfg):
    # The real default model with its genuine packaged ImageNet weights: the three inits.
    nets = {}
    for arm in ("scratch", "onestep_last"):
        nets[arm], w = case_mod._build(cfg, C(arm), 2, None, None)
        assert w["head_init"]["std"] == 0.01
    state = {k: v + 0.5 for k, v in nets["onestep_last"].state_dict().items()}  # a "parent" of 2 classes
    path = Path(cfg["grid"]["checkpoints_dir"]) / "parent.pt"
    from thtl_bench.engine import checkpoint

    checkpoint.save({"case_id": "p", "slug": "p", "model": state}, path)
    nets["thtl_last"], _ = case_mod._build(cfg, C("thtl_last"), 2, path, {"case_id": "p", "slug": "p"})
    heads = {a: n.stages[n.head_stage] for a, n in nets.items()}
    for arm in ("onestep_last", "thtl_last"):
        assert torch.equal(heads[arm].weight, heads["scratch"].weight), arm
        assert torch.equal(heads[arm].bias, heads["scratch"].bias), arm
    # ... while the bodies differ: random, ImageNet, parent.
    body = lambda n: next(p for k, p in n.state_dict().items() if "conv_stem" in k)  # noqa: E731
    assert not torch.equal(body(nets["scratch"]), body(nets["onestep_last"]))
    assert torch.equal(body(nets["thtl_last"]), body(nets["onestep_last"]) + 0.5)


@pytest.mark.parametrize("arm", ["onestep_last", "thtl_last"])
def test_a_head_only_arm_starts_at_chance_loss(cfg, arm):
    rec = run_case(cfg, C(arm))
    start = [h for h in rec["history"] if h["epoch"] == 0]
    assert len(start) == 1 and start[0]["val_loss"] == pytest.approx(math.log(2), abs=0.05)
    assert rec["weights"]["head_init"]["std"] == 0.01


def test_every_stage_obeys_the_budget_rule_and_warms_up(cfg):
    t = cfg["train"]
    for arm in ("onestep_last", "onestep_all", "scratch", "swft"):
        rec = run_case(cfg, C(arm))
        for st in rec["stages"]:
            # patience 1 would stop after epoch 2; min_epochs 3 keeps every fresh stage going,
            # SWFT's continuation steps stop by the rule (patience epochs at least)
            floor = t["min_epochs"] if st["name"] in ("main", "step1") else t["patience"]
            assert floor <= st["epochs"] <= t["max_epochs"], (arm, st)
            assert st["start_val_loss"] is not None
        first = {}
        for h in rec["history"]:
            if h["epoch"] == 1:
                first[h["stage"]] = h["lr"]
        base = {"onestep_last": t["lr_head"], "onestep_all": t["lr_head"], "scratch": t["lr_scratch"]}
        if arm in base:  # epoch 1 of the warm-up: base lr / (warmup + 1)
            assert first["main"] == pytest.approx(base[arm] / (t["warmup_epochs"] + 1))


def test_the_training_fit_facts_are_recorded(cfg):
    # the engine records what the analysis plan's fit gate judges (thtl_bench.analysis.fit)
    rec = run_case(cfg, C("onestep_all"))
    fit, (stage,) = rec["fit"], rec["stages"]
    assert fit["train_accuracy"] == pytest.approx(rec["metrics"]["train"]["accuracy"])
    assert fit == stage["fit"] and set(fit) == {"train_accuracy", "majority", "converged", "at_cap"}
    assert fit["converged"] == (stage["epochs"] - stage["best_epoch"] >= cfg["train"]["patience"])
    f = loop.training_fit
    assert f(0.9, majority=0.7, epochs=12, best_epoch=8, patience=4, max_epochs=20)["converged"]
    capped = f(0.9, majority=0.7, epochs=20, best_epoch=19, patience=4, max_epochs=20)
    assert capped["at_cap"] and not capped["converged"]
    assert not f(0.9, majority=0.7, epochs=20, best_epoch=16, patience=4, max_epochs=20)["at_cap"]


def test_lr_factor_warms_up_then_follows_the_schedule():
    assert [loop.lr_factor(e, 10, 2, "cosine") for e in (1, 2)] == pytest.approx([1 / 3, 2 / 3])
    assert loop.lr_factor(3, 10, 2, "cosine") == pytest.approx(1.0)
    assert loop.lr_factor(10, 10, 2, "cosine") < 0.1
    assert loop.lr_factor(10, 10, 2, "constant") == 1.0
    with pytest.raises(Exception, match="schedule"):
        loop.lr_factor(5, 10, 2, "step")


def test_sgd_is_implemented_not_only_accepted(cfg):
    p = torch.nn.Parameter(torch.ones(3))
    opt = loop.make_optimizer([{"params": [p], "lr": 0.1}], {**cfg["train"], "optimizer": "sgd"})
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["base_lr"] == 0.1
    assert np.isclose(opt.defaults["momentum"], 0.9)
