"""Grid order, shard partition and the grid runner (run_case substituted: no training here)."""

from __future__ import annotations

import itertools

import pytest

from thtl_bench import arms
from thtl_bench.engine import grid
from thtl_bench.errors import UserError


def _cfg(models=("m1", "m2"), seeds=(0, 1, 2), arm_names=None):
    return {"grid": {"models": list(models), "seeds": list(seeds), "arms": list(arm_names or reversed(arms.NAMES)),
                     "records_dir": "unused", "checkpoints_dir": "unused"}}


def test_canonical_order():
    cs = grid.cases(_cfg(models=("b", "a"), seeds=(1, 0)))
    # Models and seeds keep the params order; arms follow ARMS whatever order they were listed in.
    assert cs[:7] == [("b", a, 1) for a in arms.NAMES]
    assert cs[7] == ("b", "scratch", 0) and cs[14] == ("a", "scratch", 1)
    assert len(cs) == 2 * 2 * 7
    with pytest.raises(UserError, match="known arms"):
        grid.cases(_cfg(arm_names=["scratch", "fancy"]))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 13, 42, 50])
def test_shards_partition_the_grid(n):
    cs = grid.cases(_cfg())
    parts = [grid.shard(cs, i, n) for i in range(n)]
    flat = list(itertools.chain.from_iterable(parts))
    assert sorted(flat) == sorted(cs) and len(flat) == len(cs)  # each case exactly once
    for p in parts:
        assert p == [c for c in cs if c in p]  # canonical order inside a shard
    assert parts == [grid.shard(cs, i, n) for i in range(n)]  # deterministic
    families = {(m, s) for m, _, s in cs}
    n_units = len(families) * 4  # per (model, seed): 3 single cases + 1 THTL family
    if n <= n_units:  # enough units: a THTL family stays on one shard
        for m, s in families:
            owners = {i for i, p in enumerate(parts) for c in p
                      if c[0] == m and c[2] == s and c[1] in ("thtl_step1", "thtl_last", "thtl_all", "swft")}
            assert len(owners) == 1
    if n <= 6:
        assert all(parts)  # balanced enough that no shard is idle


def test_shard_arguments_checked():
    with pytest.raises(UserError):
        grid.shard([], 2, 2)
    with pytest.raises(UserError):
        grid.shard([], 0, 0)


def test_run_grid_runs_its_shard_and_reports_failures(monkeypatch):
    import thtl_bench.engine as engine

    seen = []

    def fake_run_case(cfg, model, arm, seed, progress=None, ensure_checkpoint=False):
        seen.append((model, arm, seed))
        assert ensure_checkpoint is expect_ensure
        progress({"case": f"{model}__{arm}__s{seed}", "stage": "main", "epoch": 1, "max_epochs": 2, "val_loss": 0.5})
        if arm == "swft" and seed == 2:
            raise UserError("diverged")
        return {"slug": f"{model}__{arm}__s{seed}", "status": "ok", "metrics": {"test": {"accuracy": 0.5}}}

    monkeypatch.setattr(engine, "run_case", fake_run_case)
    cfg = _cfg(models=("m",), seeds=(0, 1))
    expect_ensure = True  # passed through to every case
    recs = grid.run_grid(cfg, shard=(0, 2), progress=False, ensure_checkpoint=True)
    expect_ensure = False
    assert seen == grid.shard(grid.cases(cfg), 0, 2) and len(recs) == len(seen) > 0
    seen.clear()
    cfg = _cfg(models=("m",), seeds=(0, 1, 2))
    with pytest.raises(UserError, match=r"(?s)1 case\(s\) failed.*m__swft__s2"):
        grid.run_grid(cfg, progress=False)
    assert seen == grid.cases(cfg)  # a failure does not stop the other cases
