"""The one training loop: a stage trains some groups of a StagedModel and keeps its best weights.

One optimizer param group per trainable model group at the lr the arm gives it (arms.plans);
the lrs follow `lr_factor` per epoch (linear warm-up, then cosine or constant); early stopping on
validation loss after `train.min_epochs` (the budget rule of thtl_bench.arms); best weights kept
as a copy. Before the first update the stage evaluates its start weights (epoch 0 in the
history), so a head's starting loss and what unfreezing a group does to the previous step are on
record. Only the validation split chooses anything; test is evaluated once, with the chosen
weights. Frozen stages get requires_grad False and stay in eval mode, so their batch-norm
statistics do not move; the stage checks that and reports it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from thtl_bench.arms import Plan
from thtl_bench.engine import checkpoint, runners, runtime
from thtl_bench.engine.feeder import Feeder, Suffix
from thtl_bench.errors import UserError

KILL_ENV = "THTL_KILL_AFTER_EPOCH"  # tests/drills: checkpoint, then raise after this many epochs of one process


class SimulatedKill(RuntimeError):
    """Raised by the kill drill (THTL_KILL_AFTER_EPOCH) right after a checkpoint was written."""


def clock() -> float:
    """Seconds on a monotonic clock: the checkpoint cadence (tests patch it)."""
    return time.monotonic()


@dataclass
class Ctx:
    """Case-level things a stage needs; `save` writes last.pt from a stage snapshot.

    Checkpoint cadence: last.pt is written when `train.checkpoint_every_min` minutes of wall time
    have passed since the last one (0: after every epoch), at every stage end (the case does that),
    and by the kill drill; a resumed case repeats the epochs after its checkpoint, exactly on CPU."""

    slug: str
    train: dict
    device: torch.device
    amp: torch.dtype | None
    gens: dict
    seed: int
    save: object  # callable(stage_state: dict) -> None
    progress: object = None
    last_path: str = ""
    epochs_run: int = 0
    last_save: float = field(default_factory=lambda: clock())  # late bound: tests patch `clock`
    timing: dict = field(default_factory=lambda: {"train_images": 0, "train_s": 0.0, "epoch_s": [],
                                                  "cache_s": 0.0, "cache_images": 0})

    def checkpoint_due(self) -> bool:
        every = float(self.train.get("checkpoint_every_min") or 0.0) * 60.0
        return every <= 0 or clock() - self.last_save >= every

    def saved(self) -> None:
        self.last_save = clock()


def _set_mode(model, trainable: set[str]) -> None:
    # Frozen stages stay in eval mode (their BatchNorm statistics never move); one walk per stage
    # rather than model.train() then eval() over the frozen part (a cost per epoch when cached).
    model.training = True
    for name, stage in model.stages.items():
        stage.train(name in trainable)


def _frozen_buffers(model, trainable: set[str]) -> dict:
    return {f"{n}.{k}": b.detach().clone() for n, st in model.stages.items() if n not in trainable
            for k, b in st.named_buffers()}


def _param_groups(model, plan: Plan) -> list[dict]:
    """One AdamW group per trainable model group, at the lr the arm gives it (arms.plans)."""
    groups, seen = [], set()
    for gname, stage_names in model.groups:
        if gname not in plan.groups:
            continue
        params = [p for s in stage_names for p in model.stages[s].parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            groups.append({"params": params, "lr": plan.lrs[gname], "name": gname})
    # Stages outside every group (rare) train at the arm's "other" lr when they are trainable.
    rest = [p for s in plan.stages for p in model.stages[s].parameters() if id(p) not in seen]
    if rest:
        groups.append({"params": rest, "lr": plan.lrs["other"], "name": "other"})
    return groups


def make_optimizer(param_groups: list[dict], t: dict) -> torch.optim.Optimizer:
    """train.optimizer with the train section's weight decay: adamw, or sgd (momentum 0.9,
    Nesterov). Each group keeps its base lr under `base_lr` (lr_factor scales it per epoch)."""
    for g in param_groups:
        g.setdefault("base_lr", g["lr"])
    name, wd = str(t.get("optimizer", "adamw")), float(t["weight_decay"])
    # foreach: multi-tensor updates, ~1.5x faster on CPU, same numbers
    if name == "adamw":
        return torch.optim.AdamW(param_groups, weight_decay=wd, foreach=True)
    if name == "sgd":
        return torch.optim.SGD(param_groups, momentum=0.9, nesterov=True, weight_decay=wd, foreach=True)
    raise UserError(f"train.optimizer={name!r} is not implemented; use adamw or sgd")


def lr_factor(epoch: int, max_epochs: int, warmup: int, schedule: str) -> float:
    """The lr multiplier of 1-based `epoch`: linear warm-up over `warmup` epochs (1/(w+1) ...
    w/(w+1)), then `schedule` over the remaining epochs (cosine from 1 towards 0, or constant 1)."""
    if epoch <= warmup:
        return epoch / (warmup + 1)
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise UserError(f"train.schedule={schedule!r} is not implemented; use cosine or constant")
    span = max(1, max_epochs - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup - 1) / span))


def train_step(runner, opt, scaler, params: list, x: torch.Tensor, y: torch.Tensor, device: torch.device,
               amp: torch.dtype | None, max_grad_norm: float | None) -> torch.Tensor:
    """One optimisation step (autocast forward, cross-entropy, scaled backward, clipping, update);
    returns the detached batch loss. The benchmarks time this same function."""
    with runtime.autocast(device, amp):
        loss = F.cross_entropy(runner(x).float(), y)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if max_grad_norm:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, float(max_grad_norm))
    scaler.step(opt)
    scaler.update()
    return loss.detach()


def training_fit(train_accuracy: float, *, majority: float, epochs: int, best_epoch: int, patience: int,
                 max_epochs: int) -> dict:
    """What a stage's fit is judged on, recorded as facts (the judgement is the analysis plan's fit
    gate, thtl_bench.analysis.fit, so it is hashed with the rules and can be shown both ways): the
    training accuracy of the selected weights, the training split's majority rate, and whether
    the stage stopped by the convergence rule (validation loss not improved for `patience`
    epochs) or at the epoch cap."""
    converged = epochs - best_epoch >= int(patience)
    return {"train_accuracy": float(train_accuracy), "majority": float(majority), "converged": bool(converged),
            "at_cap": bool(epochs >= int(max_epochs) and not converged)}


def batch_bounds(n: int, bs: int, static: bool = False) -> list[tuple[int, int]]:
    """[start, stop) of the training batches over an epoch's permutation of `n` rows. static
    (compiled runs): every batch has exactly `bs` rows and the last partial batch is left out (a
    different random subset each epoch), so the compiled step never sees a second shape; a split
    smaller than `bs` is one batch. Otherwise a 1-row last batch, which breaks batch norm in train
    mode, is folded into the one before."""
    bounds = [(lo, min(lo + bs, n)) for lo in range(0, n, bs)]
    if static and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < bs:
        return bounds[:-1]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


@torch.no_grad()
def predict(model, runner, feeder: Feeder, split: str, ctx: Ctx, static: bool = False) -> tuple[float, np.ndarray, float]:
    """(mean cross-entropy, probabilities (N, C), seconds) on a split, no augmentation. Indices
    are made on the device and the results stay there until the split is done (one copy to the
    host). static (compiled runs): the last batch is padded to the full size by repeating its
    last row, and the padded rows' outputs are discarded (eval mode is per-sample)."""
    model.eval()
    n = feeder.size(split)
    bs = 2 * int(ctx.train["batch_size"])
    runtime.synchronize(ctx.device)
    t0 = time.perf_counter()
    loss, probs = torch.zeros((), device=ctx.device), []
    with runtime.sync_check(ctx.device):
        for start in range(0, n, bs):
            real = min(bs, n - start)
            size = bs if static else real  # one shape for every split of the stage
            idx = torch.arange(start, start + size, device=ctx.device).clamp_(max=n - 1)
            x, y = feeder.batch(split, idx, train=False)
            with runtime.autocast(ctx.device, ctx.amp):
                logits = runner(x).float()[:real]
            loss += F.cross_entropy(logits, y[:real], reduction="sum")
            probs.append(torch.softmax(logits, 1))
    out = torch.cat(probs).cpu().numpy().astype(np.float64)
    runtime.synchronize(ctx.device)
    return float(loss) / max(n, 1), out, time.perf_counter() - t0


def _diverged(ctx: Ctx, plan: Plan, epoch: int, what: str, value: float) -> UserError:
    return UserError(
        f"case {ctx.slug}: {what} {value:.4g} at {plan.name} epoch {epoch} (NaN or above "
        f"train.divergence_loss={ctx.train['divergence_loss']}); training stopped, the last good "
        f"checkpoint is kept at {ctx.last_path}. Lower the learning rates or check the data.")


def fit(ctx: Ctx, model, plan: Plan, splits: dict, resume: dict | None = None) -> dict:
    """Train one stage; returns its result (best weights of the trainable stages, metrics inputs)."""
    try:
        return _fit(ctx, model, plan, splits, resume)
    except torch.OutOfMemoryError as exc:
        raise UserError(f"case {ctx.slug}: CUDA out of memory at train.batch_size="
                        f"{ctx.train['batch_size']} ({plan.name}); lower it with -S train.batch_size=N") from exc
    except RuntimeError as exc:
        if "does not have a deterministic implementation" not in str(exc):
            raise
        raise UserError(f"case {ctx.slug}: train.deterministic is true, but {str(exc).splitlines()[0]} "
                        f"({plan.name}). A record must not claim a determinism the run does not have: set "
                        "-S train.deterministic=false (the record then says 'not bitwise deterministic')") from exc


def _fit(ctx: Ctx, model, plan: Plan, splits: dict, resume: dict | None) -> dict:
    t = ctx.train
    trainable = set(plan.stages)
    names = list(model.stages)
    for name, stage in model.stages.items():
        stage.requires_grad_(name in trainable)
    n_prefix = next((i for i, s in enumerate(names) if s in trainable), len(names))
    prefix, suffix = names[:n_prefix], names[n_prefix:]
    _set_mode(model, trainable)
    frozen0 = _frozen_buffers(model, trainable)

    feeder = Feeder(
        model, prefix, splits, device=ctx.device, amp=ctx.amp, batch_size=int(t["batch_size"]),
        aug_cfg=t.get("augment") or {}, augment_train=plan.augment, cache=plan.cache, views=plan.views,
        view_seed=runtime.subseed(ctx.seed, f"views/{plan.name}"),
        channels_last=runtime.channels_last(t, ctx.device),
        aug_gen=ctx.gens["aug"], max_cache_bytes=float(t.get("feature_cache_max_gb", 4)) * 2**30)
    ctx.timing["cache_s"] += feeder.cache_s
    ctx.timing["cache_images"] += feeder.cache_images
    run_train, run_eval, cinfo = runners.make(Suffix(model, suffix), t, ctx.device)
    static = cinfo["compiled"]  # compiled: shapes that never change within the stage

    opt = make_optimizer(_param_groups(model, plan), t)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.amp == torch.float16)
    params = [p for g in opt.param_groups for p in g["params"]]

    keep = tuple(f"stages.{name}." for name in trainable)

    def trainable_state() -> dict:
        # Frozen stages cannot change within a stage: only the trainable ones need a copy.
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if k.startswith(keep)}

    st = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "since_best": 0, "history": [],
          "best_state": trainable_state(), "start_digest": checkpoint.state_digest(model.state_dict())}
    if resume is not None:
        opt.load_state_dict(resume["optimizer"])
        scaler.load_state_dict(resume["scaler"])
        st = {k: resume[k] for k in st}
        if st["best_state"] is None:  # saved as "same as the live weights" to halve the file
            st["best_state"] = resume["model"]
        runtime.set_rng_state(resume["rng"], ctx.gens)

    n_train = feeder.size("train")
    if resume is None:
        # Epoch 0: the start weights, before any update (not a candidate for selection: a stage
        # must train at least min_epochs).
        loss0, probs0, _ = predict(model, run_eval, feeder, "val", ctx, static)
        st["history"].append({"epoch": 0, "stage": plan.name, "train_loss": None, "val_loss": loss0,
                              "val_acc": float((probs0.argmax(1) == feeder.host_labels("val")).mean()),
                              "lr": 0.0, "seconds": 0.0, "feature_cache": feeder.cache})
    warmup, schedule, min_epochs = int(t["warmup_epochs"]), str(t["schedule"]), int(plan.min_epochs)
    while st["epoch"] < plan.max_epochs and (st["epoch"] < min_epochs or st["since_best"] < int(t["patience"])):
        epoch = st["epoch"] + 1
        factor = lr_factor(epoch, plan.max_epochs, warmup, schedule)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
        _set_mode(model, trainable)
        runtime.synchronize(ctx.device)
        t0 = time.perf_counter()
        # The epoch's order is drawn on the host (the data generator is a CPU one, so resume and
        # the CPU default stay exact) and moved to the device once: the steps index on the device.
        perm = torch.randperm(n_train, generator=ctx.gens["data"])
        views = torch.randint(feeder.views, (n_train,), generator=ctx.gens["data"]) if feeder.views > 1 else None
        order = runtime.to_device(perm if views is None else torch.stack([perm, views[perm]]), ctx.device)
        loss_sum = torch.zeros((), device=ctx.device)
        used = 0
        with runtime.sync_check(ctx.device):
            for lo, hi in batch_bounds(n_train, int(t["batch_size"]), static):
                idx = order[lo:hi] if views is None else order[0, lo:hi]
                x, y = feeder.batch("train", idx, train=True, view=None if views is None else order[1, lo:hi])
                loss = train_step(run_train, opt, scaler, params, x, y, ctx.device, ctx.amp, t.get("max_grad_norm"))
                loss_sum += loss * (hi - lo)
                used += hi - lo
        train_loss = float(loss_sum) / used  # one sync per epoch, not per batch
        runtime.synchronize(ctx.device)
        train_s = time.perf_counter() - t0
        lr = opt.param_groups[0]["lr"]
        if not math.isfinite(train_loss) or train_loss > float(t["divergence_loss"]):
            raise _diverged(ctx, plan, epoch, "train loss", train_loss)
        val_loss, val_probs, _ = predict(model, run_eval, feeder, "val", ctx, static)
        if not math.isfinite(val_loss):
            raise _diverged(ctx, plan, epoch, "validation loss", val_loss)
        val_acc = float((val_probs.argmax(1) == feeder.host_labels("val")).mean())
        seconds = time.perf_counter() - t0
        ctx.timing["train_images"] += used
        ctx.timing["train_s"] += train_s
        ctx.timing["epoch_s"].append(seconds)
        if val_loss < st["best_loss"]:
            st.update(best_loss=val_loss, best_epoch=epoch, since_best=0, best_state=trainable_state())
        else:
            st["since_best"] += 1
        st["epoch"] = epoch
        st["history"].append({"epoch": epoch, "stage": plan.name, "train_loss": train_loss,
                              "val_loss": val_loss, "val_acc": val_acc, "lr": lr, "seconds": seconds,
                              "feature_cache": feeder.cache})
        ctx.epochs_run += 1
        kill = bool(os.environ.get(KILL_ENV)) and ctx.epochs_run == int(os.environ[KILL_ENV])
        # A resume checkpoint by cadence (and always before the drill's kill), not every epoch:
        # only trainable stages are saved (frozen ones equal the rebuilt start weights on resume),
        # with the optimizer state a mid-stage resume needs.
        if kill or ctx.checkpoint_due():
            ctx.save({**st, "best_state": None if st["best_epoch"] == epoch else st["best_state"],
                      "model": trainable_state(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                      "rng": runtime.rng_state(ctx.gens)})
            ctx.saved()
        if ctx.progress:
            ctx.progress({"case": ctx.slug, "stage": plan.name, "epoch": epoch,
                          "max_epochs": plan.max_epochs, "val_loss": val_loss})
        if kill:
            raise SimulatedKill(f"{ctx.slug}: simulated kill after epoch {epoch} of {plan.name}")

    model.load_state_dict({**model.state_dict(), **st["best_state"]})
    now = _frozen_buffers(model, trainable)
    frozen_ok = all(torch.equal(frozen0[k], now[k]) for k in frozen0)
    evals = {s: predict(model, run_eval, feeder, s, ctx, static) for s in ("train", "val", "test")}
    n_params = sum(p.numel() for p in params)
    y_train = feeder.host_labels("train")
    train_acc = float((evals["train"][1].argmax(1) == y_train).mean())
    majority = float(np.bincount(y_train).max() / max(len(y_train), 1))
    prefix_s_per_image = feeder.cache_s / feeder.cache_images if feeder.cache_images else 0.0
    return {
        "name": plan.name, "groups": list(plan.groups), "stages": list(plan.stages),
        "epochs": st["epoch"], "best_epoch": st["best_epoch"], "best_val_loss": st["best_loss"],
        "history": st["history"], "start_digest": st["start_digest"], "state": st["best_state"],
        "best_digest": checkpoint.state_digest(model.state_dict()),
        "feature_cache": feeder.cache, "augment": feeder.augment_train, "views": feeder.views,
        "compile": {"stage": plan.name, "ran_compiled": runners.ran_compiled(cinfo), **cinfo},
        "trainable_params": n_params, "frozen_bn_unchanged": frozen_ok,
        "fit": training_fit(train_acc, majority=majority, epochs=st["epoch"], best_epoch=st["best_epoch"],
                            patience=int(t["patience"]), max_epochs=int(plan.max_epochs)),
        "evals": {s: (loss, probs) for s, (loss, probs, _) in evals.items()},
        # Whole-model inference time per test image: cached stages add the prefix time measured
        # while building the cache.
        "test_s_per_image": evals["test"][2] / max(feeder.size("test"), 1) + prefix_s_per_image,
    }
