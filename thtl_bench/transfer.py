"""Transferability scores of the step-1 networks: `thtl-bench transfer` -> <report.dir>/transfer.json.

For each THTL step-1 case of the grid (ImageNet -> intermediate domain; the step-1 cases of
grid.arms and the parents of its THTL arms, at the grid's largest intermediate share, the share
the report's gain is measured at), its trained best.pt (engine.load: checked against the current
case_id) is run, in eval mode, fp32 and without gradients, on the TARGET training split of the
case's split seed (at most transferability.max_images images, a seeded subsample that depends on
the data only, never on the model). From the outputs the pure functions of thtl_bench.transferability
give, with the larynx labels:

- features: the head's input (after global pooling; VGG/AlexNet: the hidden FC block) -> LogME,
  H-score (Ledoit-Wolf shrinkage);
- the step-1 head's softmax over the intermediate classes -> LEEP; its argmax -> NCE.

Distances (Fréchet distance, MMD with an RBF kernel and the median bandwidth) compare the features
of the ImageNet-initialised network (what step 1 starts from) on the intermediate training images
of the case's split seed and share with those on the same target images. A model without offline
ImageNet weights gets no distances and a note, never a substitute.

Nothing is trained and nothing random is drawn except the seeded subsample, so the same
checkpoints, data and parameters give the same file. Cases without a checkpoint are skipped and
listed with the command that creates them (`strict`: one error naming them all, before any work).

transfer.json (SCHEMA); the report reads `entries` and `note` (thtl_bench.analysis.studies.transfer):

    schema    "thtl-bench/transfer/v1"
    settings  {target, split, max_images, seed, intermediate_fraction, features, precision,
               scores: {name: what it reads}, distances: {name: estimator}, distance_features}
    data      {domain: {kind, fingerprint}}
    entries   [{model, arm, domain, replicate: [seed, split], intermediate_fraction, slug, case_id,
                checkpoint_sha256, source_classes, n_target, target_counts, feature_dim,
                n_intermediate | None, scores: {logme, hscore, leep, nce}, distances: {frechet,
                mmd} | {}, notes: [str]}]
    skipped   [{model, domain, replicate, slug, reason, command}]
    note      one paragraph for REPORT.md: what was scored, what was skipped and why

Score and distance names are transferability.SCORES and transferability.DISTANCES.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thtl_bench import arms, domains, transferability
from thtl_bench.engine import case as engine_case
from thtl_bench.engine import grid, record, runtime
from thtl_bench.engine.identity import case_id, parent_case
from thtl_bench.engine.inputs import tensors
from thtl_bench.engine.load import checkpoint_path, load_case_model, missing_error, run_command
from thtl_bench.errors import UserError
from thtl_bench.io import sha256_file
from thtl_bench.records import Case

SCHEMA = "thtl-bench/transfer/v1"
SPLIT = "train"  # the target split the scores read: what the THTL arms train their head on
NEEDS = "thtl-bench transfer"


def step1_cases(cfg: dict) -> list[Case]:
    """The step-1 cases behind the grid's THTL arms, in grid order, at its largest intermediate share."""
    top = max(float(x) for x in cfg["grid"]["intermediate_fractions"])
    out: dict[Case, None] = {}
    for c in grid.cases(cfg):
        s = c if arms.get(c.arm).trains_on == "intermediate" else parent_case(c)
        if s is not None and float(s.intermediate_fraction) == top:
            out.setdefault(s, None)
    return list(out)


def subsample(dt: Any, split: str, max_images: int, seed: int) -> np.ndarray:
    """Indices of at most `max_images` images of `split`, in data order: all of them, or a
    subsample seeded by (seed, domain, split seed, share), so every model sees the same images."""
    idx = np.asarray(dt.index(split))
    if len(idx) <= max_images:
        return idx
    key = f"{int(seed)}/{dt.domain}/{dt.split_seed}/{float(dt.fraction)}".encode()
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
    return np.sort(rng.choice(idx, size=int(max_images), replace=False))


@torch.no_grad()
def outputs(net: Any, images_u8: np.ndarray, device: torch.device, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), softmax (N, Z)) of a StagedModel on uint8 NHWC images, float64: the head's
    input and its probabilities, in eval mode and fp32, the engine's normalisation. The model's
    training flags are restored afterwards."""
    from thtl_bench.engine.augment import normalise, to_float

    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    head = net.stages[net.head_stage]
    feats, probs = [], []
    try:
        for start in range(0, len(images_u8), int(batch_size)):
            # a copy: the tensor cache is a read-only memory map
            x = torch.from_numpy(np.array(images_u8[start:start + int(batch_size)], dtype=np.uint8)).to(device)
            f = net.forward_range(normalise(to_float(x)), 0, net.head_stage).flatten(1)
            feats.append(f.double().cpu())
            probs.append(torch.softmax(head(f).double(), dim=1).cpu())
    finally:
        for m, training in modes:
            m.training = training
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def scores(features: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> tuple[dict[str, float], list[str]]:
    """Every transferability.SCORES entry on one network's outputs; a score its inputs cannot
    give (e.g. constant features) is left out and named in the notes."""
    inputs = {"features": features, "source_probs": probs, "source_pred": probs.argmax(axis=1)}
    out, notes = {}, []
    for name, s in transferability.SCORES.items():
        try:
            out[name] = float(s["fn"](inputs[s["input"]], labels))
        except UserError as exc:
            notes.append(f"{name} not computed: {exc}")
    return out, notes


def distances(a: np.ndarray, b: np.ndarray) -> tuple[dict[str, float], list[str]]:
    """Every transferability.DISTANCES entry between two feature sets (defaults: RBF, median)."""
    out, notes = {}, []
    for name, d in transferability.DISTANCES.items():
        try:
            out[name] = float(d["fn"](a, b))
        except UserError as exc:
            notes.append(f"{name} not computed: {exc}")
    return out, notes


def _where(c: Case) -> dict:
    return {"model": c.model, "domain": c.domain, "replicate": [int(c.seed), int(c.split)], "slug": c.slug}


class _ImageNetFeatures:
    """ImageNet-initialised features per (model, domain, split seed, share, images), built once;
    the net of one model at a time (cases come model by model)."""

    def __init__(self, cfg: dict, device: torch.device, batch_size: int):
        self.cfg, self.device, self.batch_size = cfg, device, batch_size
        self.model: str | None = None
        self.net: Any = None
        self.reason: str | None = None
        self.cache: dict[tuple, np.ndarray] = {}

    def _load(self, model: str, n_classes: int) -> None:
        from thtl_bench.models.weights import WeightsUnavailable

        if model == self.model:
            return
        self.model, self.net, self.reason, self.cache = model, None, None, {}
        try:
            self.net = engine_case.build_model(model, n_classes, "imagenet", self.cfg).to(self.device).eval()
        except WeightsUnavailable as exc:
            self.reason = f"distances not computed for {model}: no ImageNet weights on this machine ({exc})"

    def get(self, model: str, n_classes: int, dt: Any, idx: np.ndarray) -> np.ndarray | None:
        self._load(model, n_classes)
        if self.net is None:
            return None
        key = (dt.domain, dt.split_seed, float(dt.fraction), idx.tobytes())
        if key not in self.cache:
            self.cache[key] = outputs(self.net, dt.images[idx], self.device, self.batch_size)[0]
        return self.cache[key]


def _missing_reason(cfg: dict, c: Case, ckdir: Path) -> str:
    """Why a step-1 case has no best.pt: its not_run record's reason (e.g. no ImageNet weights), or not trained."""
    rec = record.existing(cfg, c)
    if rec is not None and rec.get("status") == "not_run":
        return f"no best.pt: step 1 was not run ({rec.get('reason')})"
    return f"no best.pt in {ckdir / c.slug}"


def _note(entries: list[dict], skipped: list[dict], settings: dict, no_weights: list[str]) -> str:
    parts = [f"Scores of {len(entries)} THTL step-1 network(s) on the {settings['target']} {settings['split']} "
             f"split (at most {settings['max_images']} images per domain and split seed, eval mode, fp32); "
             "LogME and H-score (Ledoit-Wolf) on the head's input, LEEP and NCE on the step-1 softmax; "
             "Fréchet distance and MMD (RBF, median bandwidth) between ImageNet features of the intermediate "
             "and the target training images."]
    if skipped:
        cmds = sorted({s["command"] for s in skipped if s.get("command")})
        hint = f" (e.g. `{cmds[0]}`)" if cmds else ""
        parts.append(f"Skipped {len(skipped)} step-1 case(s) without a usable checkpoint{hint}.")
    if no_weights:
        parts.append(f"No distances for {', '.join(no_weights)}: no offline ImageNet weights.")
    return " ".join(parts)


def compute(cfg: dict, checkpoints: str | os.PathLike | None = None, *, strict: bool = False,
            progress: Callable[[str], None] | None = None) -> dict:
    """The transfer.json document (module docstring) for the profile's grid."""
    t, tc = cfg["train"], cfg["transferability"]
    device = runtime.resolve_device(t)
    runtime.configure(t, device)  # train.num_threads and deterministic mode, as the engine
    max_images, seed = int(tc["max_images"]), int(tc["seed"])
    batch_size = 2 * int(t["batch_size"])  # the engine's evaluation batch
    ckdir = Path(checkpoints or cfg["grid"]["checkpoints_dir"])
    cases = step1_cases(cfg)
    missing = [c for c in cases if not checkpoint_path(ckdir, c).is_file()]
    if strict and missing:  # all at once, before any work
        raise missing_error(cfg, missing, ckdir, needs=NEEDS)
    say = progress or (lambda _line: None)
    target_name = domains.TARGET
    settings = {"target": target_name, "split": SPLIT, "max_images": max_images, "seed": seed,
                "intermediate_fraction": max(float(x) for x in cfg["grid"]["intermediate_fractions"]),
                "features": "input of the step-1 head (after global pooling)", "precision": "fp32",
                "scores": {n: s["input"] for n, s in transferability.SCORES.items()},
                "distances": {"frechet": "Gaussian fit, sample covariances", "mmd": "unbiased MMD^2, RBF, median bandwidth"},
                "distance_features": "ImageNet initialisation (what step 1 starts from)"}
    entries: list[dict] = []
    skipped: list[dict] = []
    data: dict[str, dict] = {}
    imagenet = _ImageNetFeatures(cfg, device, batch_size)
    no_weights: list[str] = []
    for c in cases:
        if c in missing:
            reason = _missing_reason(cfg, c, ckdir)
            skipped.append({**_where(c), "reason": reason, "command": run_command(cfg, c)})
            say(f"skip {c.slug}: {reason} (create it with `{run_command(cfg, c)}`)")
            continue
        cid = case_id(cfg, c)  # outside the try: a data problem (e.g. a stale split file) is no skip
        try:
            net = load_case_model(cfg, c, checkpoints_dir=ckdir, device=device)
        except UserError as exc:  # trained under other parameters, or a file that does not fit
            if strict:
                raise
            skipped.append({**_where(c), "reason": str(exc), "command": run_command(cfg, c)})
            say(f"skip {c.slug}: {exc}")
            continue
        target = tensors(cfg, target_name, c.split, 1.0)
        inter = tensors(cfg, c.domain, c.split, c.intermediate_fraction)
        for dt in (target, inter):
            data.setdefault(dt.domain, {"kind": dt.kind, "fingerprint": dt.fingerprint})
        tidx = subsample(target, SPLIT, max_images, seed)
        labels = np.asarray(target.labels)[tidx]
        feats, probs = outputs(net, target.images[tidx], device, batch_size)
        sc, notes = scores(feats, probs, labels)
        source_classes = list(cfg["data"][c.domain]["classes"])
        entry = {**_where(c), "arm": c.arm, "intermediate_fraction": float(c.intermediate_fraction),
                 "case_id": cid, "checkpoint_sha256": sha256_file(checkpoint_path(ckdir, c)),
                 "source_classes": source_classes, "n_target": int(len(tidx)),
                 "target_counts": {target.classes[k]: int((labels == k).sum()) for k in range(len(target.classes))},
                 "feature_dim": int(feats.shape[1]), "n_intermediate": None, "scores": sc, "distances": {},
                 "notes": notes}
        iidx = subsample(inter, SPLIT, max_images, seed)
        a = imagenet.get(c.model, len(source_classes), inter, iidx)
        if a is None:
            entry["notes"].append(imagenet.reason)
            if c.model not in no_weights:
                no_weights.append(c.model)
        else:
            b = imagenet.get(c.model, len(source_classes), target, tidx)
            entry["distances"], more = distances(a, b)
            entry["n_intermediate"] = int(len(iidx))
            entry["notes"] += more
        entries.append(entry)
        say(f"{c.slug}: " + " ".join(f"{k} {v:.4g}" for k, v in {**entry["scores"], **entry["distances"]}.items()))
    return {"schema": SCHEMA, "settings": settings, "data": data, "entries": entries, "skipped": skipped,
            "note": _note(entries, skipped, settings, no_weights)}


def write(cfg: dict, doc: dict) -> Path:
    from thtl_bench.io import atomic_write_json

    return atomic_write_json(Path(cfg["report"]["dir"]) / "transfer.json", doc)
