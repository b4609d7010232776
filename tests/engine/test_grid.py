"""Grid order, shard partition and the grid runner (run_case substituted: no training here)."""

from __future__ import annotations

import itertools

import pytest

from thtl_bench import arms
from thtl_bench.engine import grid
from thtl_bench.engine.identity import parent_case
from thtl_bench.errors import UserError
from thtl_bench.records import Case


def _cfg(models=("m1", "m2"), seeds=(0, 1, 2), arm_names=None, domains=("fundus",), tf=(1.0,), inf=(1.0,)):
    return {"grid": {"models": list(models), "replicates": [[s, s] for s in seeds],
                     "arms": list(arm_names or reversed(arms.NAMES)), "domains": list(domains),
                     "target_fractions": list(tf), "intermediate_fractions": list(inf),
                     "records_dir": "unused", "checkpoints_dir": "unused"}}


def test_canonical_order():
    cs = grid.cases(_cfg(models=("b", "a"), seeds=(1, 0)))
    # Models and replicates keep the params order; arms follow ARMS whatever order they were listed in.
    assert [(c.model, c.arm, c.seed, c.split) for c in cs[:7]] == [("b", a, 1, 1) for a in arms.NAMES]
    assert cs[7] == Case("b", "scratch", 0, 0) and cs[14] == Case("a", "scratch", 1, 1)
    assert all(c.domain == ("fundus" if arms.get(c.arm).via_intermediate else None) for c in cs)
    assert len(cs) == 2 * 2 * 7
    with pytest.raises(UserError, match="known arms"):
        grid.cases(_cfg(arm_names=["scratch", "fancy"]))
    with pytest.raises(UserError, match="intermediate domains"):
        grid.cases(_cfg(domains=("larynx",)))


def test_domains_and_size_axes_vary_one_at_a_time():
    cs = grid.cases(_cfg(models=("m",), seeds=(0,), domains=("fundus", "angio"), tf=(0.1, 1.0), inf=(0.5, 1.0)))
    by = lambda arm: sorted((c.domain, c.target_fraction, c.intermediate_fraction) for c in cs if c.arm == arm)  # noqa: E731
    assert by("scratch") == [(None, 0.1, 1.0), (None, 1.0, 1.0)]  # target-only arms: shared by all domains
    assert by("thtl_step1") == [("angio", 1.0, 0.5), ("angio", 1.0, 1.0), ("fundus", 1.0, 0.5), ("fundus", 1.0, 1.0)]
    # children: (0.1, 1.0), (1.0, 0.5), (1.0, 1.0) per domain, never (0.1, 0.5)
    assert by("thtl_last") == sorted([(d, t, i) for d in ("fundus", "angio") for t, i in ((0.1, 1.0), (1.0, 0.5), (1.0, 1.0))])
    for c in cs:
        if arms.get(c.arm).parent:
            p = parent_case(c)
            assert p in cs and p.target_fraction == 1.0 and p.intermediate_fraction == c.intermediate_fraction
    assert len({c.slug for c in cs}) == len(cs)  # every case its own file


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 13, 42, 50])
def test_shards_partition_the_grid(n):
    cs = grid.cases(_cfg())
    parts = [grid.shard(cs, i, n) for i in range(n)]
    flat = list(itertools.chain.from_iterable(parts))
    assert sorted(flat) == sorted(cs) and len(flat) == len(cs)  # each case exactly once
    for p in parts:
        assert p == [c for c in cs if c in p]  # canonical order inside a shard
    assert parts == [grid.shard(cs, i, n) for i in range(n)]  # deterministic
    families = {(c.model, c.seed) for c in cs}
    n_units = len(families) * 4  # per (model, replicate): 3 single cases + 1 THTL family
    if n <= n_units:  # enough units: a THTL family stays on one shard
        for m, s in families:
            owners = {i for i, p in enumerate(parts) for c in p
                      if c.model == m and c.seed == s and c.arm in ("thtl_step1", "thtl_last", "thtl_all", "swft")}
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

    def fake_run_case(cfg, case, progress=None, ensure_checkpoint=False):
        seen.append(case)
        assert ensure_checkpoint is expect_ensure
        progress({"case": case.slug, "stage": "main", "epoch": 1, "max_epochs": 2, "val_loss": 0.5})
        if case.arm == "swft" and case.seed == 2:
            raise UserError("diverged")
        return {"slug": case.slug, "status": "ok", "metrics": {"test": {"accuracy": 0.5}}}

    monkeypatch.setattr(engine, "run_case", fake_run_case)
    cfg = _cfg(models=("m",), seeds=(0, 1))
    expect_ensure = True  # passed through to every case
    recs = grid.run_grid(cfg, shard=(0, 2), progress=False, ensure_checkpoint=True)
    expect_ensure = False
    assert seen == grid.shard(grid.cases(cfg), 0, 2) and len(recs) == len(seen) > 0
    seen.clear()
    cfg = _cfg(models=("m",), seeds=(0, 1, 2))
    with pytest.raises(UserError, match=r"(?s)1 case\(s\) failed.*m__swft__fundus__s2__k2"):
        grid.run_grid(cfg, progress=False)
    assert seen == grid.cases(cfg)  # a failure does not stop the other cases


def test_arm_and_model_replicate_counts():
    from thtl_bench import config

    cfg = config.load(None, "smoke", ["grid.models=[efficientnet_lite0, resnet18]", "grid.domains=[fundus]",
                                      "grid.replicates=[[0, 0], [1, 1], [2, 2]]",
                                      "grid.arm_replicates={swft: 1, thtl_all: 5}",
                                      "grid.model_replicates={resnet18: 2}"])
    cs = grid.cases(cfg)
    runs: dict = {}
    for c in cs:
        runs.setdefault((c.model, c.arm), set()).add(c.seed)
    runs = {k: sorted(v) for k, v in runs.items()}
    assert runs[("efficientnet_lite0", "swft")] == [0]  # its first replicate only
    assert runs[("efficientnet_lite0", "thtl_all")] == [0, 1, 2]  # more than there are: all
    assert runs[("efficientnet_lite0", "thtl_step1")] == [0, 1, 2]  # step 1 wherever a child runs
    assert runs[("resnet18", "thtl_all")] == [0, 1]  # the model's count caps every arm
    assert runs[("resnet18", "swft")] == [0]
    with pytest.raises(Exception, match="at least one"):
        config.load(None, "smoke", ["grid.arm_replicates={swft: 0}"])
