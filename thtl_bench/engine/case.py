"""Running one case (thtl_bench.records.Case) to its record.

Identity and paths: engine.identity. Idempotence: a record with the same case_id and status ok
is returned as is (engine.record); a not_run record is retried. Checkpoints live in
`grid.checkpoints_dir/<slug>/`: `last.pt` (resume; removed once the record is written) and
`best.pt` (chosen weights, tagged with the case_id; its sha256 is in the record). THTL arms
find their step-1 weights there by slug and check the case_id and the sha256, so any shard can
reuse them. Processes sharing those folders never run one case at the same time (engine.lock).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from thtl_bench import arms, config, records
from thtl_bench.engine import checkpoint, env, inputs, loop, record, runners, runtime
from thtl_bench.engine.identity import case_config, checkpoint_dir, domain_classes, parent_case
from thtl_bench.engine.lock import case_lock
from thtl_bench.io import sha256_file
from thtl_bench.models.staged import swft_groups
from thtl_bench.records import Case


def has_best(cfg: dict, case: Case, cid: str, sha256: str | None = None) -> bool:
    """Whether the case's best.pt is there, readable, trained as this case_id and (when the
    record names one) the very file the record describes. A damaged file counts as absent: the
    case is trained again, and the grid goes on."""
    best = checkpoint_dir(cfg, case) / "best.pt"
    blob, why = checkpoint.try_load(best)
    if why:
        print(f"warning: {why}", file=sys.stderr, flush=True)
    if blob is None or blob.get("case_id") != cid:
        return False
    return sha256 is None or sha256_file(best) == sha256


def _reusable(cfg: dict, case: Case, cid: str, ensure_checkpoint: bool) -> dict | None:
    """The finished record of this case_id (and its best.pt when required), else None."""
    old = record.existing(cfg, case)
    if old is not None and old["case_id"] == cid and old["status"] == "ok":
        if not ensure_checkpoint or has_best(cfg, case, cid, (old.get("checkpoint") or {}).get("sha256")):
            return old
    return None


def excluded(cfg: dict, case: Case) -> str | None:
    """Why the profile leaves this case out (`grid.exclude`: [model, arm] pairs; a THTL arm goes
    with its step 1), else None."""
    pairs = {(str(m), str(a)) for m, a in (cfg.get("grid") or {}).get("exclude") or []}
    parent = arms.get(case.arm).parent
    hit = [a for a in (case.arm, parent) if a and (case.model, a) in pairs]
    if not hit:
        return None
    return (f"excluded by profile {cfg.get('profile')!r} (grid.exclude: {case.model} {hit[0]}), to keep the "
            "profile within its time budget; run it with `-S 'grid.exclude=[]'`")


def run_case(cfg: dict, case: Case, *, progress=None, force: bool = False, ensure_checkpoint: bool = False) -> dict:
    """Run one case to its record (returned); a finished case with the same id is not re-run.

    `ensure_checkpoint`: also require its best.pt (LayerCAM, THTL children, DVC outputs); a record
    without its weights (from git, or another shard's folder) is then re-run, deterministically.
    A case that needs work is held by `case_lock` meanwhile and checked again once held (a THTL
    arm takes its step 1's lock inside its own; locks are only ever taken child, then parent).
    """
    conf = case_config(cfg, case)
    cid = config.digest(conf)
    why = excluded(cfg, case)
    if why:  # a profile's budget choice: recorded as not run, with the reason, never silently absent
        return record.not_run(cfg, record.base(cfg, case, conf, cid), why)
    done = None if force else _reusable(cfg, case, cid, ensure_checkpoint)
    if done is not None:
        return done
    with case_lock(cfg, case):
        done = None if force else _reusable(cfg, case, cid, ensure_checkpoint)
        if done is not None:  # finished by another process while this one waited for the lock
            return done
        rec_base = record.base(cfg, case, conf, cid)
        parent = parent_case(case)
        parent_best = None
        if parent is not None:
            prec = run_case(cfg, parent, progress=progress, ensure_checkpoint=True)
            rec_base["parent"] = {"case_id": prec["case_id"], "slug": prec["slug"]}
            if prec["status"] != "ok":
                return record.not_run(cfg, rec_base, f"parent {prec['slug']} not run: {prec.get('reason')}")
            parent_best = checkpoint_dir(cfg, parent) / "best.pt"
            rec_base["parent"]["sha256"] = (prec.get("checkpoint") or {}).get("sha256")
        return _train(cfg, case, rec_base, parent_best, progress)


def build_model(name: str, num_classes: int, init: str, cfg: dict):
    """The model registry's build (one seam, so tests can substitute a tiny StagedModel)."""
    from thtl_bench import models

    return models.build(name, num_classes, init=init, cfg=cfg)


def _build(cfg, case: Case, n_classes: int, parent_best: Path | None, parent: dict | None):
    """The start weights of the case: random, ImageNet or its parent's best.pt; then a new head
    from the one distribution every arm shares (StagedModel.init_head), seeded by the case."""
    a = arms.get(case.arm)
    if a.init != "parent":
        net = build_model(case.model, n_classes, a.init, cfg)
        info = dict(getattr(net, "weights_info", None) or {})
        weights = {"init": a.init, "source": info.get("source", a.init), "detail": info}
        if info.get("sha256"):
            weights["sha256"] = info["sha256"]
    else:
        net = build_model(case.model, n_classes, "random", cfg)
        state = checkpoint.load(parent_best)
        sha = sha256_file(parent_best)
        want = parent.get("sha256")
        # The parent's weights must be the ones its record describes (a swapped or re-trained
        # file in a shared folder would silently change every child).
        if state.get("case_id") != parent["case_id"] or (want and sha != want):
            raise checkpoint.CheckpointError(
                f"{parent_best}: not the best.pt of {parent['slug']} (case_id {state.get('case_id')} vs "
                f"{parent['case_id']}, sha256 {sha[:12]} vs {str(want)[:12]}); delete it to re-train the parent")
        replaced = net.load_strict(state["model"], except_head=True, what=str(parent_best))
        weights = {"init": "parent", "source": f"{state['slug']} best.pt",
                   "detail": {"path": str(parent_best), "parent_case_id": state["case_id"],
                              "replaced_head_keys": replaced},
                   "sha256": sha}
    gen = torch.Generator().manual_seed(runtime.subseed(case.seed, "head"))
    weights["head_init"] = net.init_head(float(cfg["train"]["head_init_std"]), gen)
    return net, weights


def execution_facts(t: dict, device: torch.device, done: list[dict]) -> dict:
    """What ran, for the record: precision and channels_last as they took effect, whether the
    trainable part ran compiled in every stage (not only whether compile was asked for) with each
    stage's graphs and any fallback, and the determinism the run can claim."""
    want, why = runtime.compile_setting(t, device)
    stages = [r.get("compile") or {} for r in done]
    return {"precision": str(t.get("precision")) if runtime.amp_dtype(t, device) else "fp32",
            "channels_last": runtime.channels_last(t, device),
            "compile": bool(stages) and all(s.get("ran_compiled") for s in stages),
            "compile_detail": {"requested": bool(t.get("compile")), "active": want, "reason": why,
                               "backend": runners.BACKEND if want else None,
                               "static_shapes": ("training batches of exactly train.batch_size (the last partial "
                                                 "batch of each epoch left out); evaluation pads its last batch")
                               if want else None, "stages": stages},
            "determinism": runtime.determinism(t, device)}


def _plans(a: arms.Arm, net, t: dict) -> list[arms.Plan]:
    if a.trainable == "swft":
        swft_groups(net)  # refuses a model whose family has no group definition
    return arms.plans(a, net.groups, list(net.stages), t)


def _train(cfg, case: Case, rec_base: dict, parent_best, progress) -> dict:
    from thtl_bench.models.weights import WeightsUnavailable

    t0 = time.perf_counter()
    t = cfg["train"]
    a = arms.get(case.arm)
    slug, cid, seed = rec_base["slug"], rec_base["case_id"], case.seed
    device = runtime.resolve_device(t)
    runtime.configure(t, device)
    dom = inputs.domain(cfg, case)
    classes, positive = domain_classes(cfg, dom.domain)
    runtime.seed_everything(runtime.subseed(seed, "init"))
    try:
        net, weights = _build(cfg, case, len(classes), parent_best, rec_base.get("parent"))
    except WeightsUnavailable as exc:
        return record.not_run(cfg, rec_base, str(exc))
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
    ckdir = checkpoint_dir(cfg, case)
    last = ckdir / "last.pt"

    # Resume state: stage index, finished stage results, best-so-far (SWFT), timings. A damaged
    # or foreign last.pt (power loss, another configuration's leftovers) means: start over.
    saved, why = checkpoint.try_load(last)
    if why:
        print(f"warning: {why}; {slug} starts from the beginning", file=sys.stderr, flush=True)
    if saved is not None and saved.get("case_id") != cid:
        saved = None
    done = saved["results"] if saved else []
    selected_state = saved["selected_state"] if saved else None
    prior_wall = saved["wall_s"] if saved else 0.0
    ctx = loop.Ctx(slug=slug, train=t, device=device, amp=runtime.amp_dtype(t, device),
                   gens=gens, seed=seed, save=None, progress=progress, last_path=str(last))
    if saved:
        ctx.timing = saved["timing"]
        net.load_strict({**initial, **saved["model"]}, what=str(last))
        if saved["stage"] is None:
            runtime.set_rng_state(saved["rng"], gens)

    def snapshot(k: int, stage_state: dict | None, model_state: dict, rng: dict) -> dict:
        return {"case_id": cid, "slug": slug, "results": done, "selected_state": selected_state,
                "stage": stage_state, "model": model_state, "rng": rng, "timing": ctx.timing,
                "wall_s": prior_wall + time.perf_counter() - t0, "stage_index": k}

    for k in range(len(done), len(plans)):
        # Called during stage k, so `selected_state` is the best of stages < k (late binding wanted).
        ctx.save = lambda st, k=k: checkpoint.save(snapshot(k, st, st["model"], st["rng"]), last)
        resume = saved["stage"] if saved and saved["stage"] is not None and saved["stage_index"] == k else None
        res = loop.fit(ctx, net, plans[k], splits, resume)
        state = res.pop("state")  # kept only while it is the selected one
        done.append(res)
        if selected_state is None or res["best_val_loss"] < min(r["best_val_loss"] for r in done[:-1]):
            selected_state = state
        if k + 1 < len(plans):  # between SWFT steps (a stage end): the next step starts from this step's best
            checkpoint.save(snapshot(k + 1, None, state, runtime.rng_state(gens)), last)
            ctx.saved()

    # Model selection on validation loss only (SWFT: the step with the lowest best val loss).
    sel = min(range(len(done)), key=lambda i: (done[i]["best_val_loss"], i))
    ckdir.mkdir(parents=True, exist_ok=True)
    checkpoint.save({"case_id": cid, "slug": slug, "model_name": case.model, "arm": a.name, "classes": classes,
                     "model": {**initial, **selected_state}}, ckdir / "best.pt")
    best_sha = sha256_file(ckdir / "best.pt")
    rec = record.ok(
        rec_base, dom=dom, classes=classes, positive=positive,
        labels={s: splits[s][1].cpu().numpy() for s in inputs.SPLITS}, done=done, selected=sel,
        weights=weights, total_params=sum(p.numel() for p in net.parameters()), timing=ctx.timing,
        wall_s=prior_wall + time.perf_counter() - t0,
        env=env.collect(device, bool(t.get("deterministic"))) | execution_facts(t, device, done),
        data_kind=getattr(dom, "kind", cfg["data"].get("kind")), image_size=int(cfg["data"]["image_size"]),
        swft=a.trainable == "swft")
    rec["checkpoint"] = {"file": f"{slug}/best.pt", "sha256": best_sha}
    records.write(cfg["grid"]["records_dir"], rec)
    last.unlink(missing_ok=True)
    return rec
