"""One case = (model, arm, seed): its canonical config and id, and running it to a record.

Identity: `case_id` is `config.digest(case_config(...))`. The canonical config holds only what
changes the result: model, arm, seed, the data fingerprint and image size (not the profile name),
the split parameters, the training parameters the arm uses, and for THTL arms the parent's
case_id. Execution knobs (device, precision, threads, compile, deterministic) are recorded in
`env`, not hashed. The exact feature cache (plain, one view) gives the same result as the
uncached path, so it is hashed only where it changes the training recipe (SWFT, multi-view).

Idempotence: the record (written last, atomically) is the done marker. A record with the same
case_id and status ok is returned as is; a not_run record (e.g. no ImageNet weights offline) is
retried. Checkpoints live in `grid.checkpoints_dir/<slug>/`: `last.pt` (resume; removed once
the record is written) and `best.pt` (chosen weights, tagged with the case_id). THTL arms find
their step-1 weights there by slug and check the case_id, so any shard can reuse them.
Processes sharing those folders never run one case at the same time (`case_lock`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from thtl_bench import arms, config, envinfo, metrics, records
from thtl_bench.augment import enabled as augment_enabled
from thtl_bench.engine import checkpoint, inputs, loop, runtime
from thtl_bench.hashing import sha256_file
from thtl_bench.models.staged import swft_groups

try:
    import fcntl
except ImportError:  # not POSIX: cases are not locked against other processes
    fcntl = None

LOCK_NAME = "case.lock"

ENGINE_VERSION = 1  # bump when the training recipe changes, so old records are not reused


def _domain_classes(cfg: dict, domain: str) -> tuple[list[str], str | None]:
    d = cfg["data"][domain]
    return list(d["classes"]), d.get("positive")


def _train_subset(cfg: dict, arm: arms.Arm) -> dict:
    t = cfg["train"]
    head_lr, body_lr = arm.lrs(t)
    keys = ("batch_size", "optimizer", "weight_decay", "schedule", "patience", "max_grad_norm")
    sub = {k: t[k] for k in keys}
    sub.update(lr_head=head_lr, lr_body=body_lr, max_epochs=max_epochs(t, arm))
    views = int(t.get("head_only_views", 1))
    if arm.trainable == "head":
        sub["head_only_views"] = views
        if views > 1:
            sub.update(augment=t["augment"], feature_cache=bool(t["feature_cache"]))
    else:
        sub["augment"] = t["augment"]
        if arm.trainable == "swft":
            sub["feature_cache"] = bool(t["feature_cache"])
            sub["head_step_epochs"] = head_epochs(t)
    return sub


def head_epochs(t: dict) -> int:
    """Budget of a head-only stage (`train.head_max_epochs`, null = max_epochs): with the feature
    cache it costs little, so last-layer training may run longer."""
    return int(t["head_max_epochs"]) if t.get("head_max_epochs") is not None else int(t["max_epochs"])


def max_epochs(t: dict, arm: arms.Arm) -> int:
    """Epoch budget per stage: SWFT steps have their own (its head-only first step: head_epochs)."""
    if arm.trainable == "swft":
        return int(t["swft_max_epochs"])
    if arm.trainable == "head":
        return head_epochs(t)
    return int(t["max_epochs"])


def case_config(cfg: dict, model: str, arm: str, seed: int) -> dict:
    a = arms.get(arm)
    dom = inputs.domain(cfg, a.domain)
    classes, positive = _domain_classes(cfg, a.domain)
    fraction_key = "target_fraction" if a.domain == "larynx" else "intermediate_fraction"
    sp = cfg["split"]
    conf = {
        "engine": ENGINE_VERSION, "model": model, "arm": arm, "seed": int(seed),
        "data": {"domain": a.domain, "fingerprint": dom.fingerprint,
                 "image_size": int(cfg["data"]["image_size"]), "classes": classes, "positive": positive},
        # The assignment itself is hashed too: split files can change without any parameter.
        "split": {"seed": sp["seed"], "val": sp["val"], "test": sp["test"], fraction_key: sp[fraction_key],
                  "assignment": config.digest([str(x) for x in dom.split], 16)},
        "train": _train_subset(cfg, a),
    }
    if a.parent:
        conf["parent"] = case_id(cfg, model, a.parent, seed)
    return conf


def case_id(cfg: dict, model: str, arm: str, seed: int) -> str:
    return config.digest(case_config(cfg, model, arm, seed))


def checkpoint_dir(cfg: dict, model: str, arm: str, seed: int) -> Path:
    return Path(cfg["grid"]["checkpoints_dir"]) / records.slug(model, arm, seed)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _existing(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return records.read(path)
    except records.RecordError:
        return None  # unreadable or old schema: run the case again and overwrite it


def _base(cfg, model, arm, seed, conf, cid) -> dict:
    return {"schema": records.SCHEMA, "case_id": cid, "slug": records.slug(model, arm, seed),
            "case": {"model": model, "arm": arm, "seed": int(seed), "profile": cfg.get("profile")},
            "config": conf}


def _not_run(cfg, base: dict, reason: str) -> dict:
    # The same case not run for the same reason keeps its record untouched: retries stay
    # idempotent (git, and DVC's view of the records as outputs, see no change).
    c = base["case"]
    old = _existing(records.record_path(cfg["grid"]["records_dir"], c["model"], c["arm"], c["seed"]))
    if old is not None and old["status"] == "not_run" and old["case_id"] == base["case_id"] \
            and old.get("reason") == reason and old.get("parent") == base.get("parent"):
        return old
    rec = {**base, "status": "not_run", "reason": reason, "created": _now()}
    records.write(cfg["grid"]["records_dir"], rec)
    return rec


def has_best(cfg: dict, model: str, arm: str, seed: int, cid: str) -> bool:
    """Whether the case's best.pt is there and was trained as this case_id."""
    best = checkpoint_dir(cfg, model, arm, seed) / "best.pt"
    return best.is_file() and checkpoint.load(best).get("case_id") == cid


def _parent_weights(cfg, model, parent, seed, progress) -> tuple[dict, Path | None]:
    """The parent's record and best.pt; runs the parent (once) when either is missing."""
    rec = run_case(cfg, model, parent, seed, progress=progress, ensure_checkpoint=True)
    if rec["status"] != "ok":
        return rec, None
    return rec, checkpoint_dir(cfg, model, parent, seed) / "best.pt"


def build_model(name: str, num_classes: int, init: str, cfg: dict):
    """The model registry's build (one seam, so tests can substitute a tiny StagedModel)."""
    from thtl_bench import models

    return models.build(name, num_classes, init=init, cfg=cfg)


def _build(cfg, model: str, a: arms.Arm, n_classes: int, parent_best: Path | None):
    if a.init != "parent":
        net = build_model(model, n_classes, a.init, cfg)
        info = dict(getattr(net, "weights_info", None) or {})
        weights = {"init": a.init, "source": info.get("source", a.init), "detail": info}
        if info.get("sha256"):
            weights["sha256"] = info["sha256"]
        return net, weights
    net = build_model(model, n_classes, "random", cfg)
    state = checkpoint.load(parent_best)
    replaced = net.load_strict(state["model"], except_head=True, what=str(parent_best))
    weights = {"init": "parent", "source": f"{state['slug']} best.pt",
               "detail": {"path": str(parent_best), "parent_case_id": state["case_id"],
                          "replaced_head_keys": replaced},
               "sha256": sha256_file(parent_best)}
    return net, weights


def _plans(a: arms.Arm, net, t: dict) -> list[loop.Plan]:
    aug = augment_enabled(t.get("augment"))
    cache = bool(t.get("feature_cache"))
    all_groups = [g for g, _ in net.groups]
    if a.trainable == "head":
        views = int(t.get("head_only_views", 1))
        head, stages = net.groups[0]
        return [loop.Plan("main", [head], list(stages), max_epochs(t, a), aug and views > 1, cache, views)]
    if a.trainable == "all":
        return [loop.Plan("main", all_groups, list(net.stages), int(t["max_epochs"]), aug, cache)]
    swft_groups(net)  # refuses a model whose family has no group definition
    plans = []
    for k in range(1, len(net.groups) + 1):
        groups = net.groups[:k]
        last = k == len(net.groups)
        stages = list(net.stages) if last else [s for _, ss in groups for s in ss]
        # Cached steps train on plain features (augmentation would need the frozen prefix per
        # batch); the last step has no frozen prefix and augments like the all-layer arms.
        # Step 1 trains the head alone: THTL last-layer's recipe and budget, so C2/C3 measure what
        # the later steps add rather than a shorter head training.
        epochs = head_epochs(t) if k == 1 else max_epochs(t, a)
        plans.append(loop.Plan(f"step{k}", [g for g, _ in groups], stages, epochs,
                               aug and (last or not cache), cache))
    return plans


_HELD = threading.local()  # case locks this thread holds: flock would deadlock on re-entry
_NO_FLOCK = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP)


@contextlib.contextmanager
def case_lock(cfg: dict, model: str, arm: str, seed: int):
    """Hold one case exclusively across processes that share `grid.checkpoints_dir` (shards, one
    worker per GPU, Slurm array tasks): a second process waits here, then finds the record and
    reuses it, so no case, THTL step 1 in particular, is trained twice or written by two at once.

    POSIX flock on `<slug>/case.lock` (ignored by DVC, .dvcignore). Across machines this holds
    only where the shared file system implements flock (local disks, NFSv4, Lustre with -o flock);
    where it refuses (ENOSYS, ENOLCK, EOPNOTSUPP) the case runs unlocked with a warning, and
    where locks are node-local (NFS `local_lock`, BeeGFS default) two nodes are not kept apart.
    """
    path = checkpoint_dir(cfg, model, arm, seed) / LOCK_NAME
    key = str(path.resolve())
    held = _HELD.__dict__.setdefault("paths", set())
    if key in held:
        raise RuntimeError(f"case lock {path} taken twice by one thread (a case that runs itself?)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        locked = fcntl is not None
        if locked:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"{records.slug(model, arm, seed)}: another process is running this case; waiting for "
                      f"it ({path})", file=sys.stderr, flush=True)
                fcntl.flock(fh, fcntl.LOCK_EX)
            except OSError as exc:
                if exc.errno not in _NO_FLOCK:
                    raise
                locked = False
                _warn_once(str(path.parent.parent), exc.strerror or str(exc))
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            if locked:
                fcntl.flock(fh, fcntl.LOCK_UN)


@functools.cache
def _warn_once(folder: str, why: str) -> None:
    print(f"warning: the file system of {folder} does not lock files ({why}); cases run unlocked, so "
          "shards sharing it may train the same case twice", file=sys.stderr, flush=True)


def _reusable(cfg: dict, model: str, arm: str, seed: int, cid: str, ensure_checkpoint: bool) -> dict | None:
    """The finished record of this case_id (and its best.pt when required), else None."""
    old = _existing(records.record_path(cfg["grid"]["records_dir"], model, arm, seed))
    if old is not None and old["case_id"] == cid and old["status"] == "ok":
        if not ensure_checkpoint or has_best(cfg, model, arm, seed, cid):
            return old
    return None


def run_case(cfg: dict, model: str, arm: str, seed: int, *, progress=None, force: bool = False,
             ensure_checkpoint: bool = False) -> dict:
    """Run one case to its record (returned); a finished case with the same id is not re-run.

    `ensure_checkpoint`: also require its best.pt (LayerCAM, THTL children, DVC outputs); a record
    without its weights (from git, or another shard's folder) is then re-run, deterministically.
    A case that needs work is held by `case_lock` meanwhile and checked again once held (a THTL
    arm takes its step 1's lock inside its own; locks are only ever taken child, then parent).
    """
    conf = case_config(cfg, model, arm, seed)
    cid = config.digest(conf)
    done = None if force else _reusable(cfg, model, arm, seed, cid, ensure_checkpoint)
    if done is not None:
        return done
    with case_lock(cfg, model, arm, seed):
        done = None if force else _reusable(cfg, model, arm, seed, cid, ensure_checkpoint)
        if done is not None:  # finished by another process while this one waited for the lock
            return done
        return _run_case(cfg, model, arm, seed, conf, cid, progress)


def _run_case(cfg: dict, model: str, arm: str, seed: int, conf: dict, cid: str, progress) -> dict:
    a = arms.get(arm)
    base = _base(cfg, model, arm, seed, conf, cid)
    parent_best = None
    if a.parent:
        prec, parent_best = _parent_weights(cfg, model, a.parent, seed, progress)
        if prec["status"] != "ok":
            return _not_run(cfg, {**base, "parent": {"case_id": prec["case_id"], "slug": prec["slug"]}},
                            f"parent {prec['slug']} not run: {prec.get('reason')}")
        base["parent"] = {"case_id": prec["case_id"], "slug": prec["slug"]}
    return _train(cfg, a, model, seed, base, parent_best, progress)


def _train(cfg, a: arms.Arm, model: str, seed: int, base: dict, parent_best, progress) -> dict:
    from thtl_bench.weights import WeightsUnavailable

    t0 = time.perf_counter()
    t = cfg["train"]
    slug, cid = base["slug"], base["case_id"]
    device = runtime.resolve_device(t)
    runtime.configure(t, device)
    dom = inputs.domain(cfg, a.domain)
    classes, positive = _domain_classes(cfg, a.domain)
    runtime.seed_everything(runtime.subseed(seed, "init"))
    try:
        net, weights = _build(cfg, model, a, len(classes), parent_best)
    except WeightsUnavailable as exc:
        return _not_run(cfg, base, str(exc))
    plans = _plans(a, net, t)
    # Start weights. Stages a stage freezes were never trained before it (SWFT unfreezes back to
    # front), so checkpoints only hold trained stages and are completed from this copy.
    initial = checkpoint.state_copy(net)
    net.to(device)
    if runtime.channels_last(t, device):
        net.to(memory_format=torch.channels_last)
    runtime.seed_everything(runtime.subseed(seed, "train"))
    gens = {"data": torch.Generator().manual_seed(runtime.subseed(seed, "data")),
            "aug": torch.Generator(device=device).manual_seed(runtime.subseed(seed, "aug"))}
    splits = inputs.splits(dom, device)
    ckdir = checkpoint_dir(cfg, model, a.name, seed)
    last = ckdir / "last.pt"

    # Resume state: stage index, finished stage results, best-so-far (SWFT), timings.
    saved = checkpoint.load(last) if last.is_file() else None
    if saved is not None and saved.get("case_id") != cid:
        saved = None  # another configuration's leftovers: start over
    done = saved["results"] if saved else []
    selected_state = saved["selected_state"] if saved else None
    prior_wall = saved["wall_s"] if saved else 0.0
    ctx = loop.Ctx(slug=slug, train=t, device=device, amp=runtime.amp_dtype(t, device), lrs=a.lrs(t),
                   gens=gens, seed=seed, save=None, progress=progress, last_path=str(last))
    if saved:
        ctx.timing = saved["timing"]
        net.load_strict({**initial, **saved["model"]}, what=str(last))
        if saved["stage"] is None:
            runtime.set_rng_state(saved["rng"], gens)

    for k in range(len(done), len(plans)):
        # Called during stage k, so `selected_state` is the best of stages < k (late binding wanted).
        def save(stage_state, k=k):
            checkpoint.save({"case_id": cid, "slug": slug, "results": done,
                             "selected_state": selected_state,  # noqa: B023
                             "stage": stage_state, "model": stage_state["model"], "rng": stage_state["rng"],
                             "timing": ctx.timing, "wall_s": prior_wall + time.perf_counter() - t0,
                             "stage_index": k}, last)

        ctx.save = save
        resume = saved["stage"] if saved and saved["stage"] is not None and saved["stage_index"] == k else None
        res = loop.fit(ctx, net, plans[k], splits, resume)
        state = res.pop("state")  # kept only while it is the selected one
        done.append(res)
        if selected_state is None or res["best_val_loss"] < min(r["best_val_loss"] for r in done[:-1]):
            selected_state = state
        if k + 1 < len(plans):  # between SWFT steps: the next step starts from this step's best
            checkpoint.save({"case_id": cid, "slug": slug, "results": done, "selected_state": selected_state,
                             "stage": None, "model": state,
                             "rng": runtime.rng_state(gens), "timing": ctx.timing,
                             "wall_s": prior_wall + time.perf_counter() - t0, "stage_index": k + 1}, last)

    # Model selection on validation loss only (SWFT: the step with the lowest best val loss).
    sel = min(range(len(done)), key=lambda i: (done[i]["best_val_loss"], i))
    best = done[sel]
    ckdir.mkdir(parents=True, exist_ok=True)
    checkpoint.save({"case_id": cid, "slug": slug, "model_name": model, "arm": a.name, "classes": classes,
                     "model": {**initial, **selected_state}}, ckdir / "best.pt")

    labels = {s: splits[s][1].cpu().numpy() for s in inputs.SPLITS}
    mets = {s: metrics.compute(labels[s], best["evals"][s][1], classes, positive, best["evals"][s][0])
            for s in inputs.SPLITS}
    history = [h for r in done for h in r["history"]]
    timing = ctx.timing
    rec = {
        **base,
        "status": "ok",
        "data": {"kind": getattr(dom, "kind", cfg["data"].get("kind")), "domain": a.domain, "classes": classes,
                 "positive": positive, "fingerprint": dom.fingerprint, "n": inputs.counts(dom),
                 "image_size": int(cfg["data"]["image_size"])},
        "weights": weights,
        "trainable": {"groups": best["groups"], "stages": best["stages"], "params": best["trainable_params"],
                      "total_params": sum(p.numel() for p in net.parameters()),
                      "frozen_bn_eval": all(r["frozen_bn_unchanged"] for r in done)},
        "metrics": mets,
        "predictions": {"test": {"ids": [str(dom.ids[i]) for i in dom.index("test")],
                                 "labels": labels["test"].tolist(),
                                 "probs": best["evals"]["test"][1].tolist()}},
        "history": history,
        "timing": {
            "wall_s": prior_wall + time.perf_counter() - t0,
            "train_images_per_s": timing["train_images"] / max(timing["train_s"] + timing["cache_s"], 1e-9),
            "epoch_s": sum(timing["epoch_s"]) / max(len(timing["epoch_s"]), 1),
            "epochs": len(timing["epoch_s"]),
            "inference_images_per_s": 1.0 / max(best["test_s_per_image"], 1e-12),
            "feature_cache": any(r["feature_cache"] for r in done),
            "feature_cache_s": timing["cache_s"],
        },
        "env": envinfo.collect(device, bool(t.get("deterministic"))) | {
            "precision": str(t.get("precision")) if runtime.amp_dtype(t, device) else "fp32",
            "channels_last": runtime.channels_last(t, device),
            "compile": runtime.compiled(t, device)},
        "created": _now(),
    }
    if a.trainable == "swft":
        rec["swft_steps"] = [
            {"step": i + 1, "groups": r["groups"], "epochs": r["epochs"], "best_epoch": r["best_epoch"],
             "best_val_loss": r["best_val_loss"], "feature_cache": r["feature_cache"], "augment": r["augment"],
             "start_digest": r["start_digest"], "best_digest": r["best_digest"], "selected": i == sel,
             **{s: metrics.compute(labels[s], r["evals"][s][1], classes, positive, r["evals"][s][0])
                for s in ("val", "test")}}
            for i, r in enumerate(done)]
    records.write(cfg["grid"]["records_dir"], rec)
    last.unlink(missing_ok=True)
    return rec
