"""The arms registry: canonical order, policies, unknown names."""

from __future__ import annotations

import dataclasses

import pytest

from thtl_bench import arms
from thtl_bench.errors import UserError


def test_canonical_order_and_policies():
    assert arms.NAMES == ["scratch", "onestep_last", "onestep_all", "thtl_step1", "thtl_last", "thtl_all", "swft"]
    table = {n: (a.domain, a.init, a.trainable, a.parent) for n, a in arms.ARMS.items()}
    assert table == {
        "scratch": ("larynx", "random", "all", None),
        "onestep_last": ("larynx", "imagenet", "head", None),
        "onestep_all": ("larynx", "imagenet", "all", None),
        "thtl_step1": ("fundus", "imagenet", "all", None),
        "thtl_last": ("larynx", "parent", "head", "thtl_step1"),
        "thtl_all": ("larynx", "parent", "all", "thtl_step1"),
        "swft": ("larynx", "parent", "swft", "thtl_step1"),
    }
    assert arms.children("thtl_step1") == ["thtl_last", "thtl_all", "swft"]


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
        arms.Arm("x", "larynx", "parent", "all")  # parent init needs a parent arm
    with pytest.raises(ValueError):
        arms.Arm("x", "larynx", "pretrained", "all")
