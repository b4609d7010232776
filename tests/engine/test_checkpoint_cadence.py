"""Checkpoints by cadence (issue 22.5): last.pt is written every `train.checkpoint_every_min`
minutes of wall time (a patched clock here), at every stage end and by the kill drill, not after
every epoch; a case killed after its last checkpoint repeats the epochs since and ends exactly
where an uninterrupted run ends (CPU, deterministic)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.engine import C, other_dirs, same_results

from thtl_bench.engine import checkpoint, identity, loop, run_case


class Clock:
    """The engine's clock; the `clock` fixture advances it by `step_s` at every question."""

    def __init__(self, step_s: float):
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def saves(monkeypatch):
    """Every last.pt the engine writes for a case other than THTL step 1 (the parent it runs first):
    (stage index, epoch of the stage snapshot, or None at a stage end)."""
    out = []
    real = checkpoint.save

    def spy(obj, path):
        if Path(path).name == "last.pt" and "thtl_step1" not in obj["slug"]:
            stage = obj.get("stage")
            out.append((obj["stage_index"], None if stage is None else stage["epoch"]))
        return real(obj, path)

    monkeypatch.setattr(checkpoint, "save", spy)
    return out


@pytest.fixture
def clock(monkeypatch):
    c = Clock(0.0)
    monkeypatch.setattr(loop, "clock", c)
    real = loop.Ctx.checkpoint_due

    def due(self):  # time passes by one epoch's worth between two questions
        c.now += c.step_s
        return real(self)

    monkeypatch.setattr(loop.Ctx, "checkpoint_due", due)
    return c


def _epochs(cfg, arm="swft"):
    cfg["train"].update(max_epochs=3, patience=3)
    return C("tiny", arm)


@pytest.mark.parametrize("every_min,epoch_min,expect", [
    (0, 1.0, "every epoch"), (10, 1.0, "stage ends only"), (10, 6.0, "every second epoch")])
def test_last_pt_follows_the_wall_clock_cadence(cfg, saves, clock, every_min, epoch_min, expect):
    cfg["train"]["checkpoint_every_min"] = every_min
    clock.step_s = epoch_min * 60
    case = _epochs(cfg)
    rec = run_case(cfg, case)
    stage_ends = [(k, None) for k in range(1, len(rec["swft_steps"]))]
    mid = [s for s in saves if s[1] is not None]
    assert [s for s in saves if s[1] is None] == stage_ends  # every stage end, whatever the cadence
    epochs = [(i, h["epoch"]) for h in rec["history"] if h["epoch"] > 0
              for i, st in enumerate(rec["swft_steps"]) if h["stage"] == f"step{st['step']}"]
    if expect == "every epoch":
        assert mid == epochs
    elif expect == "stage ends only":
        assert mid == []
    else:  # 6 min per epoch, 10 min cadence: the clock passes 10 min at every second epoch
        assert mid and len(mid) < len(epochs) and all(e % 2 == 0 for _, e in mid)
    assert not (identity.checkpoint_dir(cfg, case) / "last.pt").exists()  # removed with the record


def test_the_kill_drill_forces_a_checkpoint_whatever_the_cadence(cfg, saves, monkeypatch):
    cfg["train"]["checkpoint_every_min"] = 10_000
    monkeypatch.setenv(loop.KILL_ENV, "2")
    case = _epochs(cfg, "scratch")
    with pytest.raises(loop.SimulatedKill):
        run_case(cfg, case)
    assert saves == [(0, 2)]
    blob = checkpoint.load(identity.checkpoint_dir(cfg, case) / "last.pt")
    assert blob["stage"]["epoch"] == 2 and "optimizer" in blob["stage"]  # a mid-stage resume needs it
    assert "optimizer" not in blob  # nothing else carries optimizer state


@pytest.mark.parametrize("arm", ["scratch", "swft"])
def test_a_kill_after_an_old_checkpoint_resumes_exactly(cfg, tmp_path, saves, clock, monkeypatch, arm):
    case = _epochs(cfg, arm)
    ref = run_case(other_dirs(cfg, tmp_path, "ref"), case)
    if arm == "swft":
        run_case(cfg, C("tiny", "thtl_step1"))  # its parent, first: the clock and the kill are the child's
    saves.clear()
    # A checkpoint after the first epoch only (cadence 10 min, 11 min at the first question, then
    # no more time passes); then a kill two epochs later, after no checkpoint: the work since is lost.
    cfg["train"]["checkpoint_every_min"] = 10
    clock.step_s = 11 * 60
    real_due = loop.Ctx.checkpoint_due

    def once(self):
        due = real_due(self)
        clock.step_s = 0.0
        return due

    monkeypatch.setattr(loop.Ctx, "checkpoint_due", once)
    seen = []

    def kill(ev):
        seen.append(ev["epoch"])
        if len(seen) == 3:
            raise loop.SimulatedKill("killed without a checkpoint")

    with pytest.raises(loop.SimulatedKill):
        run_case(cfg, case, progress=kill)
    assert saves[0] == (0, 1) and all(s[1] is None for s in saves[1:])
    rec = run_case(cfg, case)
    same_results(rec, ref)
    assert [(h["stage"], h["epoch"], h["val_loss"]) for h in rec["history"]] == \
        [(h["stage"], h["epoch"], h["val_loss"]) for h in ref["history"]]
