"""Engine test fixtures: tiny phantoms (32 px, ~30 images) and the tiny StagedModel in place of the
registry's networks."""

from __future__ import annotations

import copy

import pytest
from fixtures import tiny as tiny_data
from support.engine import tiny

from thtl_bench.engine import case as case_mod
from thtl_bench.engine import loop


@pytest.fixture(scope="module")
def data_cfg(tmp_path_factory):
    return tiny_data.phantom_cfg(tmp_path_factory.mktemp("phantoms"), [
        "synth.larynx.patients={benign: 7, malignant: 7}", "train.max_epochs=2", "train.min_epochs=1",
        "train.patience=2", "train.num_threads=0", "grid.replicates=[[0, 0], [1, 1]]",
        "grid.arm_replicates={}"])


@pytest.fixture
def cfg(data_cfg, tmp_path, monkeypatch):
    c = copy.deepcopy(data_cfg)
    c["grid"].update(records_dir=str(tmp_path / "records"), checkpoints_dir=str(tmp_path / "ck"))
    monkeypatch.setattr(case_mod, "build_model", tiny)
    monkeypatch.delenv(loop.KILL_ENV, raising=False)
    return c
