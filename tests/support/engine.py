"""Shared builders for engine tests: the tiny StagedModel, case names, result comparisons."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from torch import nn

from thtl_bench import arms
from thtl_bench.engine import checkpoint, identity, runtime
from thtl_bench.models.staged import StagedModel
from thtl_bench.models.weights import WeightsUnavailable
from thtl_bench.records import Case


def C(model: str, arm: str, seed: int = 0, **kw) -> Case:
    """The case of `arm` at replicate (seed, seed) through the fundus phantoms where it has a domain."""
    return Case(model, arm, seed, kw.pop("split", seed), "fundus" if arms.get(arm).via_intermediate else None, **kw)



def other_dirs(cfg, tmp_path, name):
    c = copy.deepcopy(cfg)
    c["grid"].update(records_dir=str(tmp_path / name / "records"), checkpoints_dir=str(tmp_path / name / "ck"))
    return c


def tiny(name, num_classes, init, cfg):
    """A 4-group StagedModel with batch norm and dropout; 'noweights' has no ImageNet weights."""
    if init == "imagenet" and name == "noweights":
        raise WeightsUnavailable(f"no offline ImageNet weights for {name}")
    stages = [
        ("stem", nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())),
        ("block", nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())),
        ("top", nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3))),
        ("fc", nn.Linear(8, num_classes)),
    ]
    groups = [("fc", ["fc"]), ("top", ["top"]), ("block", ["block"]), ("stem", ["stem"])]
    return StagedModel(stages, groups, head_stage="fc", cam_layers={}, name=name, family="tiny",
                       weights_info={"init": init, "source": f"tiny-{init}"})


def initial_state(cfg, arm, seed=0, model="tiny"):
    """The weights the engine starts from (same seeded build)."""
    runtime.seed_everything(runtime.subseed(seed, "init"))
    return tiny(model, 2 if arm != "thtl_step1" else 5, "imagenet", cfg).state_dict()


def best_state(cfg, case):
    return checkpoint.load(identity.checkpoint_dir(cfg, case) / "best.pt")["model"]


def same_results(a, b, exact=True):
    assert a["predictions"]["test"]["labels"] == b["predictions"]["test"]["labels"]
    pa, pb = np.array(a["predictions"]["test"]["probs"]), np.array(b["predictions"]["test"]["probs"])
    if exact:
        assert np.array_equal(pa, pb)
        assert a["metrics"] == b["metrics"]
    else:
        np.testing.assert_allclose(pa, pb, atol=1e-5)
        for split in ("train", "val", "test"):
            for k, v in a["metrics"][split].items():
                if k in ("loss", "auc"):
                    assert v == pytest.approx(b["metrics"][split][k], abs=1e-5)
                else:
                    assert v == b["metrics"][split][k], (split, k)
