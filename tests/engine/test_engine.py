"""Engine: arms' trainable sets, frozen BN, SWFT, strict loading, resume, determinism, feature
cache, records, skip-when-done, not_run. Tiny phantoms (32 px, ~30 images) and a tiny StagedModel
(one test uses the real resnet18 registry entry)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from support.engine import C, best_state, initial_state, other_dirs, same_results, tiny
from torch import nn

from thtl_bench import config, records
from thtl_bench.engine import case as case_mod
from thtl_bench.engine import checkpoint, identity, loop, run_case, runtime
from thtl_bench.engine import lock as lock_mod
from thtl_bench.engine import record as record_mod
from thtl_bench.engine.augment import augment
from thtl_bench.errors import UserError
from thtl_bench.models.staged import StagedModel
from thtl_bench.models.weights import WeightsUnavailable
from thtl_bench.records import Case


# -- arms ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("arm,groups", [
    ("scratch", ["fc", "top", "block", "stem"]),
    ("onestep_last", ["fc"]),
    ("onestep_all", ["fc", "top", "block", "stem"]),
    ("thtl_last", ["fc"]),
    ("thtl_all", ["fc", "top", "block", "stem"]),
])
@pytest.mark.parametrize("feature_cache", [True, False])
def test_trainable_sets_and_frozen_batchnorm(cfg, arm, groups, feature_cache):
    cfg["train"]["feature_cache"] = feature_cache
    rec = run_case(cfg, C("tiny", arm, 0))
    records.validate(rec)
    assert rec["status"] == "ok" and rec["trainable"]["groups"] == groups
    net = tiny("tiny", 2, "random", cfg)
    expect = sum(p.numel() for g, ss in net.groups if g in groups for s in ss for p in net.stages[s].parameters())
    assert rec["trainable"]["params"] == expect
    assert rec["trainable"]["total_params"] == sum(p.numel() for p in net.parameters())
    assert rec["trainable"]["frozen_bn_eval"] is True
    # Frozen stages end exactly where they started, running BN statistics included.
    start = initial_state(cfg, arm) if arm.startswith(("onestep", "scratch")) else best_state(cfg, C("tiny", "thtl_step1"))
    end = best_state(cfg, C("tiny", arm))
    for k, v in end.items():
        frozen = k.split(".")[1] not in groups
        if k.startswith("stages.fc.") and arm.startswith("thtl"):
            continue  # a new 2-class head replaces step 1's 5-class head
        if frozen:
            assert torch.equal(v, start[k]), k
    moved = [k for k in end if "running_mean" in k and not torch.equal(end[k], start[k])]
    assert bool(moved) == (len(groups) > 1)
    if arm.startswith("thtl"):
        assert rec["parent"]["slug"] == "tiny__thtl_step1__fundus__s0__k0"
        assert sorted(rec["weights"]["detail"]["replaced_head_keys"]) == ["stages.fc.bias", "stages.fc.weight"]
    assert rec["timing"]["feature_cache"] == (feature_cache and groups == ["fc"])


def test_step1_runs_once_and_is_reused(cfg, monkeypatch):
    calls = []
    real_fit = loop.fit
    monkeypatch.setattr(loop, "fit", lambda ctx, *a, **k: calls.append(ctx.slug) or real_fit(ctx, *a, **k))
    r1 = run_case(cfg, C("tiny", "thtl_last", 0))
    r2 = run_case(cfg, C("tiny", "thtl_all", 0))
    assert calls == ["tiny__thtl_step1__fundus__s0__k0", "tiny__thtl_last__fundus__s0__k0", "tiny__thtl_all__fundus__s0__k0"]
    step1 = records.read(records.record_path(cfg["grid"]["records_dir"], C("tiny", "thtl_step1", 0)))
    assert step1["data"]["domain"] == "fundus" and "qwk" in step1["metrics"]["test"]
    assert r1["config"]["parent"] == r2["config"]["parent"] == step1["case_id"]
    assert r1["weights"]["sha256"] == r2["weights"]["sha256"]


# -- SWFT --------------------------------------------------------------------------------------------
def test_swft_accumulates_groups_from_previous_best(cfg):
    rec = run_case(cfg, C("tiny", "swft", 0))
    records.validate(rec)
    steps = rec["swft_steps"]
    assert [s["groups"] for s in steps] == [["fc"], ["fc", "top"], ["fc", "top", "block"], ["fc", "top", "block", "stem"]]
    for prev, nxt in zip(steps, steps[1:], strict=False):
        assert nxt["start_digest"] == prev["best_digest"]
    chosen = [s for s in steps if s["selected"]]
    assert len(chosen) == 1
    assert chosen[0]["best_val_loss"] == min(s["best_val_loss"] for s in steps)
    assert rec["metrics"]["val"] == chosen[0]["val"] and rec["metrics"]["test"] == chosen[0]["test"]
    assert rec["trainable"]["groups"] == chosen[0]["groups"]
    # Cached steps train on plain features; the all-layer step augments.
    assert [s["feature_cache"] for s in steps] == [True, True, True, False]
    assert [s["augment"] for s in steps] == [False, False, False, True]
    assert {h["stage"] for h in rec["history"]} == {"step1", "step2", "step3", "step4"}
    assert checkpoint.state_digest(best_state(cfg, C("tiny", "swft"))) == chosen[0]["best_digest"]


def test_ensure_checkpoint_reruns_a_record_without_weights(cfg):
    # A fresh clone has the records (git) but not the checkpoints (DVC cache): LayerCAM and DVC's
    # checkpoint outputs need best.pt back, and the deterministic re-run must give the same record.
    first = run_case(cfg, C("tiny", "onestep_last", 0))
    best = identity.checkpoint_dir(cfg, C("tiny", "onestep_last", 0)) / "best.pt"
    best.unlink()
    assert run_case(cfg, C("tiny", "onestep_last", 0))["created"] == first["created"]  # record alone: reused
    assert not best.exists()
    again = run_case(cfg, C("tiny", "onestep_last", 0), ensure_checkpoint=True)
    assert best.is_file() and case_mod.has_best(cfg, C("tiny", "onestep_last", 0), first["case_id"])
    assert again["case_id"] == first["case_id"] and again["metrics"] == first["metrics"]
    assert again["predictions"] == first["predictions"]


def test_not_run_retry_leaves_an_unchanged_record_untouched(cfg, monkeypatch):

    def no_weights(name, k, init, cfg):
        raise WeightsUnavailable(f"no ImageNet weights for {name} (test)")

    monkeypatch.setattr(case_mod, "build_model", no_weights)
    stamps = iter(["2026-01-01T00:00:00+00:00", "2026-01-01T00:00:09+00:00"])  # a rewrite would show
    monkeypatch.setattr(record_mod, "now", lambda: next(stamps))
    first = run_case(cfg, C("tiny", "onestep_last", 0))
    path = records.record_path(cfg["grid"]["records_dir"], C("tiny", "onestep_last", 0))
    before = path.read_bytes()
    again = run_case(cfg, C("tiny", "onestep_last", 0))  # retried (not_run is never final) ...
    assert first["status"] == again["status"] == "not_run"
    assert path.read_bytes() == before  # ... but an identical outcome is not rewritten


def test_swft_first_step_is_thtl_last_recipe(cfg):
    # Step 1 trains the head alone with last-layer training's recipe and budget, from the same
    # step-1 weights and seed: the same model as thtl_last, so C2/C3 measure what the later steps
    # add. Later steps train at lr x swft_lr_decay^(k-1).
    swft = run_case(cfg, C("tiny", "swft", 0))
    last = run_case(cfg, C("tiny", "thtl_last", 0))
    step1 = swft["swft_steps"][0]
    assert step1["groups"] == ["fc"] and step1["test"] == last["metrics"]["test"]
    decay = cfg["train"]["swft_lr_decay"]
    peak = {}
    for h in swft["history"]:
        peak[h["stage"]] = max(peak.get(h["stage"], 0.0), h["lr"])
    assert [peak[f"step{k}"] for k in range(1, 5)] == pytest.approx([peak["step1"] * decay ** (k - 1) for k in range(1, 5)])


def test_swft_refuses_models_without_groups(cfg, monkeypatch):
    def flat(name, k, init, cfg):
        return StagedModel([("body", nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4))), ("fc", nn.Linear(4, k))],
                           [("fc", ["fc"]), ("body", ["body"])], head_stage="fc", cam_layers={}, name=name,
                           family="flat")
    monkeypatch.setattr(case_mod, "build_model", flat)
    with pytest.raises(UserError, match="SWFT"):
        run_case(cfg, C("flat", "swft", 0))


# -- strict loading --------------------------------------------------------------------------------
def _describe(cfg, path: Path) -> None:
    """Make step 1's record describe the file at `path` (as if it had been trained so)."""
    from thtl_bench.io import sha256_file

    rec_path = identity.record_path(cfg, C("tiny", "thtl_step1", 0))
    rec = records.read(rec_path)
    rec["checkpoint"]["sha256"] = sha256_file(path)
    records.write(cfg["grid"]["records_dir"], rec)


def test_parent_checkpoint_is_loaded_strictly(cfg):
    run_case(cfg, C("tiny", "thtl_step1", 0))
    best = identity.checkpoint_dir(cfg, C("tiny", "thtl_step1", 0)) / "best.pt"
    good = checkpoint.load(best)
    for mutate, msg in [(lambda s: s.pop("stages.block.0.weight"), "missing"),
                        (lambda s: s.__setitem__("stages.extra.weight", torch.zeros(1)), "unexpected")]:
        bad = copy.deepcopy(good)
        mutate(bad["model"])
        checkpoint.save(bad, best)
        _describe(cfg, best)  # the record vouches for the file: its keys are what is wrong
        with pytest.raises(UserError, match=msg):
            run_case(cfg, C("tiny", "thtl_last", 0))


def test_a_swapped_or_damaged_parent_checkpoint_retrains_the_parent(cfg):
    step1 = run_case(cfg, C("tiny", "thtl_step1", 0))
    best = identity.checkpoint_dir(cfg, C("tiny", "thtl_step1", 0)) / "best.pt"
    blob = checkpoint.load(best)
    blob["model"] = {k: v + 1 for k, v in blob["model"].items()}  # another file under the same name
    checkpoint.save(blob, best)
    child = run_case(cfg, C("tiny", "thtl_last", 0))
    assert child["status"] == "ok" and child["parent"]["sha256"] == step1["checkpoint"]["sha256"]
    assert checkpoint.load(best)["model"].keys() == blob["model"].keys()
    best.write_bytes(best.read_bytes()[:100])  # truncated (power loss)
    again = run_case(cfg, C("tiny", "thtl_all", 0))
    assert again["status"] == "ok" and again["parent"]["sha256"] == step1["checkpoint"]["sha256"]


def test_checkpoints_never_run_code(cfg, tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": Boom()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="evil.pt"):
        checkpoint.load(path)
    path.write_bytes(pickle.dumps({"a": 1})[:5])
    with pytest.raises(checkpoint.CheckpointError, match="evil.pt"):
        checkpoint.load(path)


def test_a_damaged_last_pt_restarts_the_case(cfg, capsys):
    ref = run_case(other_dirs(cfg, Path(cfg["grid"]["records_dir"]).parent, "ref"), C("tiny", "scratch", 0))
    last = identity.checkpoint_dir(cfg, C("tiny", "scratch", 0)) / "last.pt"
    last.parent.mkdir(parents=True, exist_ok=True)
    last.write_bytes(b"PK\x03\x04 truncated")
    rec = run_case(cfg, C("tiny", "scratch", 0))
    assert "starts from the beginning" in capsys.readouterr().err
    assert rec["metrics"]["test"] == ref["metrics"]["test"]


def test_checkpoint_files_are_shared_readable(cfg):
    run_case(cfg, C("tiny", "onestep_last", 0))
    best = identity.checkpoint_dir(cfg, C("tiny", "onestep_last", 0)) / "best.pt"
    rec = identity.record_path(cfg, C("tiny", "onestep_last", 0))
    assert best.stat().st_mode & 0o777 == 0o644 and rec.stat().st_mode & 0o777 == 0o644


# -- resume, determinism ---------------------------------------------------------------------------
@pytest.mark.parametrize("arm,kill_after", [("scratch", 1), ("swft", 2), ("swft", 3)])
def test_killed_case_resumes_to_the_same_result(cfg, tmp_path, monkeypatch, arm, kill_after):
    cfg["train"]["max_epochs"] = 3
    cfg["train"]["patience"] = 3
    ref = run_case(other_dirs(cfg, tmp_path, "ref"), C("tiny", arm, 0))
    run_case(cfg, C("tiny", "thtl_step1", 0))  # the kill drill counts this case's own epochs only
    monkeypatch.setenv(loop.KILL_ENV, str(kill_after))
    with pytest.raises(loop.SimulatedKill):
        run_case(cfg, C("tiny", arm, 0))
    last = identity.checkpoint_dir(cfg, C("tiny", arm, 0)) / "last.pt"
    assert last.is_file()
    assert not records.record_path(cfg["grid"]["records_dir"], C("tiny", arm, 0)).exists()
    monkeypatch.delenv(loop.KILL_ENV)
    rec = run_case(cfg, C("tiny", arm, 0))
    same_results(rec, ref)
    assert [h["val_loss"] for h in rec["history"]] == [h["val_loss"] for h in ref["history"]]
    assert not last.exists()  # removed once the record is written


def test_same_seed_same_result_different_seed_differs(cfg, tmp_path):
    a = run_case(cfg, C("tiny", "onestep_all", 0))
    b = run_case(other_dirs(cfg, tmp_path, "b"), C("tiny", "onestep_all", 0))
    c = run_case(other_dirs(cfg, tmp_path, "c"), C("tiny", "onestep_all", 1))
    same_results(a, b)
    assert a["predictions"]["test"]["probs"] != c["predictions"]["test"]["probs"]


# -- feature cache ---------------------------------------------------------------------------------
def test_feature_cache_matches_uncached_path(cfg, tmp_path):
    cfg["train"]["max_epochs"] = 4
    cached = run_case(cfg, C("tiny", "onestep_last", 0))
    plain_cfg = other_dirs(cfg, tmp_path, "plain")
    plain_cfg["train"]["feature_cache"] = False
    plain = run_case(plain_cfg, C("tiny", "onestep_last", 0))
    assert cached["timing"]["feature_cache"] and not plain["timing"]["feature_cache"]
    assert cached["case_id"] == plain["case_id"]  # exact cache: same case
    same_results(cached, plain, exact=False)


def test_multi_view_cache_is_a_different_recipe(cfg, tmp_path):
    cfg["train"]["head_only_views"] = 3
    rec = run_case(cfg, C("tiny", "onestep_last", 0))
    assert rec["timing"]["feature_cache"]
    plain = other_dirs(cfg, tmp_path, "v1")
    plain["train"]["head_only_views"] = 1
    assert identity.case_id(plain, C("tiny", "onestep_last", 0)) != rec["case_id"]


# -- records, idempotence, not_run, divergence -----------------------------------------------------
def test_record_schema_and_skip_when_done(cfg, monkeypatch):
    rec = run_case(cfg, C("tiny", "onestep_last", 0))
    path = records.record_path(cfg["grid"]["records_dir"], C("tiny", "onestep_last", 0))
    on_disk = records.read(path)
    assert on_disk["case_id"] == rec["case_id"] == config.digest(identity.case_config(cfg, C("tiny", "onestep_last", 0)))
    preds = on_disk["predictions"]["test"]
    assert len(preds["ids"]) == len(preds["labels"]) == len(preds["probs"]) == on_disk["metrics"]["test"]["n"]
    for key in ("wall_s", "train_images_per_s", "epoch_s", "inference_images_per_s", "feature_cache"):
        assert key in on_disk["timing"]
    for key in ("python", "torch", "torchvision", "timm", "numpy", "device", "device_name", "platform",
                "git_commit", "deterministic"):
        assert key in on_disk["env"]
    assert on_disk["data"]["positive"] == "malignant" and on_disk["case"]["profile"] == "smoke"

    monkeypatch.setattr(loop, "fit", lambda *a, **k: pytest.fail("a finished case was trained again"))
    assert run_case(cfg, C("tiny", "onestep_last", 0)) == on_disk
    cfg["train"]["max_epochs"] = 1  # another config: another case id, so it runs
    with pytest.raises(pytest.fail.Exception):
        run_case(cfg, C("tiny", "onestep_last", 0))


def test_case_identity(cfg):
    ids = {a: identity.case_id(cfg, C("tiny", a, 0)) for a in ("scratch", "thtl_last")}
    other = copy.deepcopy(cfg)
    other["profile"] = "paper"  # the profile name is not part of what a case is
    assert identity.case_id(other, C("tiny", "scratch", 0)) == ids["scratch"]
    assert identity.case_id(other, C("tiny", "thtl_last", 0)) == ids["thtl_last"]
    # A smaller intermediate share changes step 1 and so its children, never the target-only arms.
    half = C("tiny", "thtl_last", 0, intermediate_fraction=0.5)
    assert identity.case_id(cfg, half) != ids["thtl_last"]
    assert identity.parent_case(half).intermediate_fraction == 0.5
    assert identity.case_id(cfg, C("tiny", "scratch", 1)) != ids["scratch"]
    with pytest.raises(UserError, match="known arms"):
        identity.case_config(cfg, Case("tiny", "nope", 0))


def test_execution_settings_and_code_are_part_of_the_identity(cfg):
    base = identity.case_id(cfg, C("tiny", "onestep_all", 0))
    for key, value in (("num_threads", 3), ("feature_cache_max_gb", 1.0), ("deterministic", False)):
        other = copy.deepcopy(cfg)
        other["train"][key] = value
        assert identity.case_id(other, C("tiny", "onestep_all", 0)) != base, key
    conf = identity.case_config(cfg, C("tiny", "onestep_all", 0))
    assert conf["code"] == identity.code_fingerprint() and conf["execution"]["threads"] >= 1
    assert conf["data"]["resize"] == cfg["data"]["resize"]


def test_code_fingerprint_ignores_comments_and_docstrings_but_not_code(tmp_path):
    a = tmp_path / "a.py"
    a.write_text('"""doc"""\n\ndef f(x):\n    """doc"""\n    return x + 1  # one\n')
    b = tmp_path / "b.py"
    b.write_text('"""other words"""\ndef f(x):\n\n    return x + 1\n')
    c = tmp_path / "c.py"
    c.write_text('"""doc"""\ndef f(x):\n    return x + 2\n')
    assert identity._tokens(a) == identity._tokens(b) != identity._tokens(c)


def test_missing_weights_give_not_run_and_are_retried(cfg, monkeypatch):
    rec = run_case(cfg, C("noweights", "onestep_last", 0))
    assert rec["status"] == "not_run" and "noweights" in rec["reason"]
    child = run_case(cfg, C("noweights", "swft", 0))
    assert child["status"] == "not_run" and "thtl_step1" in child["reason"]
    records.validate(records.read(records.record_path(cfg["grid"]["records_dir"], C("noweights", "swft", 0))))
    # Weights appear later: the same cases now run.
    monkeypatch.setattr(case_mod, "build_model", lambda n, k, i, c: tiny("tiny", k, i, c))
    assert run_case(cfg, C("noweights", "onestep_last", 0))["status"] == "ok"
    assert run_case(cfg, C("noweights", "thtl_last", 0))["status"] == "ok"


def test_divergence_stops_with_a_clear_error_and_keeps_checkpoint(cfg, monkeypatch):
    monkeypatch.setenv(loop.KILL_ENV, "1")
    with pytest.raises(loop.SimulatedKill):
        run_case(cfg, C("tiny", "scratch", 0))
    monkeypatch.delenv(loop.KILL_ENV)
    cfg["train"]["divergence_loss"] = 1e-6  # an execution limit: same case, resumes at epoch 2
    with pytest.raises(UserError, match=r"tiny__scratch__s0.*epoch 2"):
        run_case(cfg, C("tiny", "scratch", 0))
    assert (identity.checkpoint_dir(cfg, C("tiny", "scratch", 0)) / "last.pt").is_file()


def test_real_registry_model(cfg, monkeypatch):
    from thtl_bench import models

    monkeypatch.setattr(case_mod, "build_model", lambda n, k, i, c: models.build(n, k, init=i, cfg=c))
    cfg["train"]["max_epochs"] = 1
    cfg["grid"]["exclude"] = []  # the smoke profile leaves resnet18 scratch out for its budget
    rec = run_case(cfg, C("resnet18", "scratch", 0))
    net = models.build("resnet18", 2, init="random", cfg=cfg)
    assert rec["status"] == "ok" and rec["trainable"]["groups"] == [g for g, _ in net.groups]
    assert rec["trainable"]["params"] == rec["trainable"]["total_params"] == sum(p.numel() for p in net.parameters())


# -- augmentation ------------------------------------------------------------------------------------
def test_augment_is_seeded_and_flips_are_exact():
    x = torch.rand(6, 3, 8, 8)
    flip_only = {"hflip": True}
    y = augment(x, torch.Generator().manual_seed(0), flip_only)
    for a, b in zip(x, y, strict=False):
        assert torch.allclose(b, a, atol=1e-6) or torch.allclose(b, a.flip(-1), atol=1e-6)
    full = {"hflip": True, "vflip": True, "rotate_deg": 10, "brightness": 0.1, "contrast": 0.1}
    y1 = augment(x, torch.Generator().manual_seed(1), full)
    y2 = augment(x, torch.Generator().manual_seed(1), full)
    assert torch.equal(y1, y2) and not torch.equal(y1, x)
    assert y1.min() >= 0 and y1.max() <= 1


# -- accelerator settings -----------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_accelerator_settings_run_end_to_end_on_cpu(cfg, monkeypatch, precision):
    # AMP (with the GradScaler for fp16), channels_last and the feature cache under autocast are
    # CUDA-only settings; CPU supports them all, so this drives those code paths through every
    # kind of stage (all layers, cached head, SWFT's cached-prefix steps) without a GPU.
    monkeypatch.setattr(runtime, "accelerated", lambda device: True)
    cfg["train"].update(precision=precision, channels_last=True)
    seen = []
    real = loop.Feeder

    def spy(*args, **kwargs):
        seen.append((kwargs["amp"], kwargs["channels_last"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "Feeder", spy)
    for arm in ("scratch", "onestep_last", "swft"):
        rec = run_case(cfg, C("tiny", arm, 0))
        assert rec["status"] == "ok", rec.get("reason")
        assert rec["env"]["precision"] == precision and rec["env"]["channels_last"] is True
        probs = np.array(rec["predictions"]["test"]["probs"])
        assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)
        assert all(np.isfinite(h["val_loss"]) for h in rec["history"])
    want = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert seen and all(amp is want and cl for amp, cl in seen)


# -- concurrency ------------------------------------------------------------------------------------------
def test_two_processes_never_train_one_case_twice(cfg, monkeypatch):
    # Two shards reaching the same THTL step 1 at once (threads here; flock also separates open
    # files within one process): one trains it, the other waits and reuses its record.
    import threading

    from thtl_bench.engine import inputs

    inputs.tensors(cfg, "fundus", 0)  # the data cache first: only the case is contended
    calls = []
    real = case_mod._train

    def slow_train(*args, **kwargs):
        calls.append(args[2:4])  # (model, seed)
        time.sleep(0.3)  # keep the lock while the other thread arrives
        return real(*args, **kwargs)

    monkeypatch.setattr(case_mod, "_train", slow_train)
    out: dict = {}
    start = threading.Barrier(2)

    def contender(k):
        start.wait()
        out[k] = run_case(cfg, C("tiny", "thtl_step1", 0))

    threads = [threading.Thread(target=contender, args=(k,), daemon=True) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(calls) == 1, calls
    assert out[0] == out[1] and out[0]["status"] == "ok"
    lock = identity.checkpoint_dir(cfg, C("tiny", "thtl_step1", 0)) / lock_mod.LOCK_NAME
    assert lock.is_file()


def test_case_lock_refuses_re_entry_and_survives_a_file_system_without_flock(cfg, monkeypatch, capsys):
    with lock_mod.case_lock(cfg, C("tiny", "scratch", 0)):
        with pytest.raises(RuntimeError, match="taken twice by one thread"):
            with lock_mod.case_lock(cfg, C("tiny", "scratch", 0)):
                pass
    import errno

    def no_flock(fh, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_mod.fcntl, "flock", no_flock)
    rec = run_case(cfg, C("tiny", "scratch", 0))  # runs unlocked, with a warning
    assert rec["status"] == "ok"
    assert "does not lock files" in capsys.readouterr().err


def test_a_reused_record_takes_no_lock(cfg, monkeypatch):
    run_case(cfg, C("tiny", "onestep_last", 0))
    monkeypatch.setattr(case_mod, "case_lock", lambda *a, **k: pytest.fail("locked a finished case"))
    assert run_case(cfg, C("tiny", "onestep_last", 0))["status"] == "ok"


def test_grid_exclude_records_not_run_with_the_reason(cfg):
    """A profile's [model, arm] exclusion is recorded (not silently absent), its THTL children
    go with their step 1, and the others train."""
    cfg["grid"]["exclude"] = [["tinynet", "thtl_step1"], ["tinynet", "scratch"]]
    for arm in ("scratch", "thtl_step1", "thtl_last"):
        rec = run_case(cfg, C("tinynet", arm))
        assert rec["status"] == "not_run" and "grid.exclude" in rec["reason"], arm
        assert not (Path(cfg["grid"]["checkpoints_dir"]) / rec["slug"] / "best.pt").exists()
    assert run_case(cfg, C("tinynet", "onestep_last"))["status"] == "ok"
    cfg["grid"]["exclude"] = []
    assert run_case(cfg, C("tinynet", "scratch"))["status"] == "ok"  # a not_run record is retried
