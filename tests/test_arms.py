"""The arms registry: canonical order, policies, unknown names."""

from __future__ import annotations

import dataclasses

import pytest

from thtl_bench import arms
from thtl_bench.errors import UserError


def test_canonical_order_and_policies():
    assert arms.NAMES == ["scratch", "onestep_last", "onestep_all", "thtl_step1", "thtl_last", "thtl_all", "swft"]
    table = {n: (a.trains_on, a.init, a.trainable, a.parent) for n, a in arms.ARMS.items()}
    assert table == {
        "scratch": ("target", "random", "all", None),
        "onestep_last": ("target", "imagenet", "head", None),
        "onestep_all": ("target", "imagenet", "all", None),
        "thtl_step1": ("intermediate", "imagenet", "all", None),
        "thtl_last": ("target", "parent", "head", "thtl_step1"),
        "thtl_all": ("target", "parent", "all", "thtl_step1"),
        "swft": ("target", "parent", "swft", "thtl_step1"),
    }
    assert arms.children("thtl_step1") == ["thtl_last", "thtl_all", "swft"]
    assert [n for n, a in arms.ARMS.items() if a.via_intermediate] == ["thtl_step1", "thtl_last", "thtl_all", "swft"]


TRAIN = {"lr_head": 1e-3, "lr_backbone": 1e-4, "lr_scratch": 1e-3, "batch_size": 8, "optimizer": "adamw",
         "weight_decay": 0.01, "schedule": "cosine", "warmup_epochs": 1, "min_epochs": 3, "max_epochs": 12,
         "patience": 4, "max_grad_norm": 5.0, "head_init_std": 0.01, "swft_lr_decay": 0.5, "augment": {"hflip": True},
         "head_only_views": 1, "feature_cache": True}
GROUPS = [("head", ["fc"]), ("layer4", ["layer4"]), ("layer3", ["layer3"]), ("stem", ["stem", "layer1"])]
STAGES = ["stem", "layer1", "layer3", "layer4", "fc"]


def test_every_stage_of_every_arm_gets_the_same_budget_rule():
    # Both sides of every claim train under one criterion: the same min/max epochs and patience
    # for head-only, all-layer and every SWFT step (issue: SWFT and all-layer arms had other caps).
    budgets, floors = {}, {}
    for name in ("onestep_last", "onestep_all", "scratch", "thtl_last", "thtl_all", "swft"):
        for plan in arms.plans(arms.get(name), GROUPS, STAGES, TRAIN):
            budgets[(name, plan.name)] = plan.max_epochs
            floors[(name, plan.name)] = plan.min_epochs
        sub = arms.train_subset(TRAIN, arms.get(name))
        assert (sub["min_epochs"], sub["max_epochs"], sub["patience"], sub["warmup_epochs"]) == (3, 12, 4, 1)
    assert set(budgets.values()) == {12} and len(budgets) == 6 + 3
    # every stage that starts a new head waits min_epochs; SWFT's later steps continue from
    # trained weights and wait `patience` epochs without improvement, like every stage
    assert {k: v for k, v in floors.items() if v != 3} == {("swft", "step2"): 4, ("swft", "step3"): 4,
                                                            ("swft", "step4"): 4}
    text = arms.budget_text(TRAIN)
    assert "at most 12 epochs" in text and "not before epoch 3" in text and "at least 4" in text


def test_swft_steps_scale_every_lr_down_so_unfreezing_refines():
    steps = arms.plans(arms.get("swft"), GROUPS, STAGES, TRAIN)
    assert [p.groups for p in steps] == [["head"], ["head", "layer4"], ["head", "layer4", "layer3"],
                                         ["head", "layer4", "layer3", "stem"]]
    assert steps[0].lrs["head"] == 1e-3  # step 1 = THTL last-layer's recipe
    assert [p.lrs["head"] for p in steps] == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])
    assert [p.lrs["layer4"] for p in steps] == pytest.approx([1e-4, 5e-5, 2.5e-5, 1.25e-5])
    assert steps[-1].stages == STAGES and steps[1].stages == ["fc", "layer4"]
    head = arms.plans(arms.get("thtl_last"), GROUPS, STAGES, TRAIN)
    assert len(head) == 1 and head[0].lrs == steps[0].lrs and head[0].groups == steps[0].groups


def test_learning_rates():
    train = {"lr_head": 1e-3, "lr_backbone": 1e-4, "lr_scratch": 5e-3}
    assert arms.get("scratch").lrs(train) == (5e-3, 5e-3)
    for name in ("onestep_last", "onestep_all", "thtl_step1", "thtl_all", "swft"):
        assert arms.get(name).lrs(train) == (1e-3, 1e-4)


def test_unknown_arm_lists_names():
    with pytest.raises(UserError, match="onestep_last.*swft"):
        arms.get("one_step")


def test_arms_are_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        arms.get("swft").init = "imagenet"
    with pytest.raises(ValueError):
        arms.Arm("x", "target", "parent", "all")  # parent init needs a parent arm
    with pytest.raises(ValueError):
        arms.Arm("x", "target", "pretrained", "all")
    with pytest.raises(ValueError):
        arms.Arm("x", "larynx", "random", "all")  # trains_on is a role, not a domain
