"""LayerCAM figures and vessel-mass numbers: `thtl-bench cam`.

For chosen larynx test images, one LayerCAM map per layer group (StagedModel.cam_layers; ResNet:
layer1_stem, layer2, layer3, layer4) per arm, side by side, so the reader sees where attention goes after THTL vs SWFT.
Each map is backed by numbers: the share of CAM mass on vessel pixels, which the phantoms know
exactly, beside the vessel-pixel fraction of the image (the share a map blind to vessels gets),
and the mediator: the mass on tortuous vs straight vessel segments (and end-on dots), from labels
the generator recomputes for each explained larynx phantom (thtl_bench.data.segments), beside
each category's pixel share.
Each row also shows the true class and the model's prediction with its softmax probability;
SWFT rows whose record says validation kept step 1 (head only) are framed and say so.

grad-cam pitfalls handled here (see ../shared/STYLE.md):
- one `ClassifierOutputTarget(label)` per image: grad-cam zips targets with outputs, so a short
  target list silently explains only the first images;
- one layer per LayerCAM pass: given several layers grad-cam averages their maps;
- autograd switched on for the explained layer even when frozen (last-layer arms) and off for
  the other weights during the pass; flags and .grad restored afterwards;
- grad-cam calls `model.eval()`: every module's training flag is restored afterwards;
- its `__exit__` swallows IndexError (e.g. a label outside the head): re-raised as CamError;
- every map is checked for shape, finiteness and non-constancy (a 1x1 activation or dead layer
  gives a flat map that min-max scaling turns into zeros).

Modules: `layercam` (the helper), `mass` (vessel and segment mass), `figure` (the grid figure);
this one chooses the images and cases and writes cam.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from thtl_bench import arms, records
from thtl_bench.cam.figure import CAM_CMAP, SCALE_NOTE, _figure, _rel, _safe, build_figure
from thtl_bench.cam.layercam import MIN_MAP_RANGE, CamError, cam_pass, layercam_maps
from thtl_bench.cam.mass import category_coverage, segment_mass, vessel_fraction, vessel_mass
from thtl_bench.engine.checkpoint import state_digest
from thtl_bench.engine.identity import case_id
from thtl_bench.engine.load import checkpoint_path, load_case_model, missing_error
from thtl_bench.errors import UserError
from thtl_bench.records import Case

FIGURE_PREFIX = "cam__"  # figures this module owns in cam.out_dir (stale ones are removed)
__all__ = ["CAM_CMAP", "FIGURE_PREFIX", "MIN_MAP_RANGE", "SCALE_NOTE", "CamError", "build_figure", "cam_cases",
           "cam_pass", "layercam_maps", "render", "segment_mass", "select_images", "vessel_fraction", "vessel_mass"]


# --------------------------------------------------------------------------------------------
# Cases: checkpoints, image choice, inputs
# --------------------------------------------------------------------------------------------


def select_images(dt: Any, per_class: int, split: str = "test", classes: Sequence[int] | None = None) -> np.ndarray:
    """Indices of `per_class` images of each class from `split`, chosen deterministically: ordered
    by (patient, id), one image per patient first (different patients show different vessels),
    then further images of the same patients if a class has fewer patients than `per_class`.
    The choice depends on the data only, never on model, arm or seed."""
    split_arr = np.asarray(dt.split)
    labels = np.asarray(dt.labels)
    chosen: list[int] = []
    for c in (range(len(dt.classes)) if classes is None else classes):
        idx = np.flatnonzero((split_arr == split) & (labels == c))
        if len(idx) == 0:
            continue
        order = sorted(idx.tolist(), key=lambda i: (str(dt.groups[i]), str(dt.ids[i])))
        firsts, rest, seen = [], [], set()
        for i in order:
            (rest if dt.groups[i] in seen else firsts).append(i)
            seen.add(dt.groups[i])
        chosen += (firsts + rest)[:per_class]
    return np.asarray(chosen, dtype=np.int64)


def _inputs(images_u8_nhwc: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 NHWC -> the normalised float NCHW the engine trains on."""
    from thtl_bench.engine.augment import normalise, to_float

    # a copy: the cache is a read-only memory map, which torch.from_numpy warns about
    return normalise(to_float(torch.from_numpy(np.array(images_u8_nhwc, dtype=np.uint8)).to(device)))


# --------------------------------------------------------------------------------------------
# Figures and cam.json
# --------------------------------------------------------------------------------------------


def _layers(net: nn.Module, name: str) -> dict[str, nn.Module]:
    layers = dict(getattr(net, "cam_layers", None) or {})
    if not layers:
        raise CamError(f"{name}: the model exposes no cam_layers")
    # Figure columns front to back (StagedModel lists groups back to front).
    order = [g for g in reversed(getattr(net, "group_names", list(layers)[::-1])) if g in layers]
    return {g: layers[g] for g in order + [g for g in layers if g not in order]}


def _probabilities(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Softmax of the model on the explained inputs (N, classes), in eval mode, no autograd;
    every module's training flag is restored afterwards."""
    modes = {m: m.training for m in net.modules()}
    try:
        net.eval()
        with torch.no_grad():
            return torch.softmax(net(x).float(), dim=1).cpu().numpy()
    finally:
        for m, flag in modes.items():
            m.training = flag


def _explain(net: nn.Module, dt: Any, idx: np.ndarray, device: torch.device, name: str) -> dict[str, Any]:
    """{maps: {group: (N, H, W)}, probs: (N, classes)} for the images `idx`, from one input tensor."""
    x = _inputs(np.asarray(dt.images[idx]), device)
    probs = _probabilities(net, x)  # before the CAM passes, which leave the weights untouched
    maps = layercam_maps(net, x, np.asarray(dt.labels)[idx], _layers(net, name), name=name,
                         image_ids=[dt.ids[i] for i in idx])
    return {"maps": maps, "probs": probs}


def _swft_notes(cfg: dict, cases: dict[str, Case], digests: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """{row label: (note, same_as)} for SWFT rows whose record says validation selected step 1
    (head only): their best weights are then the THTL last-layer recipe's. Said as "= THTL
    last-layer weights" (same_as that row) only when its loaded weights are byte-identical here.
    No record, or one of other parameters (case_id), gives no note: the figure claims nothing it
    cannot back."""
    notes = {}
    for label, case in cases.items():
        a = arms.get(case.arm)
        if a.trainable != "swft":
            continue
        path = records.record_path(cfg["grid"]["records_dir"], case)
        if not path.is_file():
            continue
        rec = records.read(path)
        if rec["status"] != "ok" or rec["case_id"] != case_id(cfg, case):
            continue
        chosen = [int(s["step"]) for s in rec.get("swft_steps") or [] if s.get("selected")]
        if chosen != [1]:
            continue
        last = next((lab for lab, c in cases.items() if arms.get(c.arm).parent == a.parent
                     and arms.get(c.arm).trainable == "head" and c.domain == case.domain), None)
        same = last is not None and last in digests and digests[last] == digests[label]
        notes[label] = (("SWFT chose step 1\n= THTL last-layer weights", last) if same
                        else ("SWFT chose step 1\n(head only)", None))
    return notes


def cam_cases(cfg: dict) -> dict[str, Case]:
    """{row label: case} of the LayerCAM figures: cam.model at cam.replicate, every arm of
    cam.arms; arms through an intermediate domain once per domain of cam.domains."""
    ccfg = cfg["cam"]
    model = str(ccfg["model"])
    seed, split = (int(x) for x in ccfg["replicate"])
    doms = [str(d) for d in ccfg["domains"]]
    out: dict[str, Case] = {}
    for arm in (str(a) for a in ccfg["arms"]):
        if arms.get(arm).via_intermediate:
            for d in doms:
                out[arm if len(doms) == 1 else f"{arm} [{d}]"] = Case(model, arm, seed, split, d)
        else:
            out[arm] = Case(model, arm, seed, split)
    return out


def _shares(maps: dict[str, np.ndarray], k: int, mask: np.ndarray | None) -> dict[str, float | None]:
    return {g: (None if mask is None else round(vessel_mass(m[k], mask), 6)) for g, m in maps.items()}


def _segment_labels(dt: Any, idx: np.ndarray) -> dict[str, np.ndarray] | None:
    """Segment labels (thtl_bench.data.segments) of the explained images of a phantom larynx
    folder, None for real data; a phantom folder the generator does not reproduce is an error."""
    from thtl_bench.data import segments

    if dt.kind != "phantom":
        return None
    return segments.regenerate(dt.root, [str(dt.ids[i]) for i in idx])


def _segment_numbers(maps: dict[str, np.ndarray], k: int, labels: np.ndarray | None, map_shape) -> tuple:
    """({group: {category: mass share}}, {category: pixel share}) of image k, or (None, None)."""
    from thtl_bench.data.segments import CATEGORIES

    if labels is None:
        return None, None
    cov = category_coverage(labels, CATEGORIES, tuple(map_shape))
    mass = {g: {c: round(v, 6) for c, v in segment_mass(m[k], cov).items()} for g, m in maps.items()}
    return mass, {c: round(float(v.mean()), 6) for c, v in cov.items()}


def render(cfg: dict, checkpoints: str | os.PathLike | None = None) -> list[dict]:
    """Figures for the cases of `cam_cases` on the chosen larynx test images (plus, per
    intermediate domain, its step-1 model on that domain's own images when its checkpoint
    exists); writes `<report.dir>/cam.json` and returns its entries:
    {model, arm, via, domain, image_id, group, label, figure, vessel_mass: {group: share},
    vessel_fraction, segment_mass: {layer group: {straight, tortuous, dots}}, segment_fraction:
    {straight, tortuous, dots}, pred, prob}: `via` the intermediate domain of a THTL arm (None for
    the others), `domain` the images' domain, `group` the image's patient, `pred` the class the
    model predicts for the image, `prob` its softmax probability. Vessel shares are None for real
    data (no vessel masks); segment numbers are None except on phantom larynx images. SWFT rows
    whose record says validation selected step 1 are marked in the figure (`_swft_notes`)."""
    from thtl_bench import domains as domain_registry
    from thtl_bench.engine.inputs import tensors  # memoised: case_id reads it too
    from thtl_bench.engine.runtime import resolve_device
    from thtl_bench.io import atomic_write_text

    ccfg = cfg["cam"]
    cases = cam_cases(cfg)
    model, (seed, split) = str(ccfg["model"]), (int(x) for x in ccfg["replicate"])
    ckdir = Path(checkpoints or cfg["grid"]["checkpoints_dir"])
    out_dir = Path(ccfg["out_dir"])
    device = resolve_device(cfg.get("train", {}))
    missing = [c for c in cases.values() if not checkpoint_path(ckdir, c).is_file()]
    if missing:  # all at once, before any work
        raise missing_error(cfg, missing, ckdir)

    entries: list[dict] = []
    written: set[Path] = set()

    def emit(domain: str, dt: Any, idx: np.ndarray, per_arm: dict[str, dict[str, Any]],
             notes: dict[str, tuple[str, str | None]] | None = None,
             labels: dict[str, np.ndarray] | None = None) -> None:
        first = next(iter(per_arm.values()))["maps"]
        groups, map_shape = list(first), first[next(iter(first))].shape[1:]
        for k, i in enumerate(idx):
            mask = None if dt.masks is None else np.asarray(dt.masks[i])
            image_id, label = str(dt.ids[i]), str(dt.classes[int(dt.labels[i])])
            frac = None if mask is None else round(vessel_fraction(mask, map_shape), 6)
            rows = []
            for arm, ex in per_arm.items():
                p = ex["probs"][k]
                top = int(np.argmax(p))
                rows.append({"label": arm, "image": np.asarray(dt.images[i]), "mask": mask,
                             "maps": {g: m[k] for g, m in ex["maps"].items()},
                             "shares": _shares(ex["maps"], k, mask), "true": label,
                             "pred": str(dt.classes[top]) if top < len(dt.classes) else str(top),
                             "prob": round(float(p[top]), 6)})
                note, same_as = (notes or {}).get(arm, (None, None))
                rows[-1].update(note=note, same_as=same_as)
            fig = out_dir / (f"{FIGURE_PREFIX}{_safe(model)}__s{seed}k{split}__{domain}__{_safe(label)}__"
                             f"{_safe(str(Path(image_id).with_suffix('')))}.png")
            chance = "" if frac is None else f" · vessel pixels {frac:.0%}"
            _figure(fig, f"LayerCAM · {model} replicate s{seed}/k{split} · {domain} {label} · {image_id}{chance}",
                    rows, groups)
            written.add(fig.resolve())
            for row_label, row in zip(per_arm, rows, strict=True):
                seg_mass, seg_frac = _segment_numbers(per_arm[row_label]["maps"], k,
                                                      None if labels is None else labels[image_id], map_shape)
                c = cases.get(row_label)
                entries.append({"model": model, "arm": c.arm if c else row_label, "via": c.domain if c else (domain if row_label == "thtl_step1" else None),
                                "domain": domain, "image_id": image_id, "group": str(dt.groups[i]), "label": label,
                                "figure": _rel(fig), "vessel_mass": row["shares"], "vessel_fraction": frac,
                                "segment_mass": seg_mass, "segment_fraction": seg_frac,
                                "pred": row["pred"], "prob": row["prob"]})

    target = tensors(cfg, domain_registry.TARGET, split)
    idx = select_images(target, int(ccfg["images_per_class"]))
    if len(idx) == 0:
        raise UserError("no target test images to explain: check the split (`thtl-bench data split`)")
    per_arm, digests = {}, {}
    for label, case in cases.items():
        net = load_case_model(cfg, case, checkpoints_dir=ckdir, device=device)
        digests[label] = state_digest(net.state_dict())
        per_arm[label] = _explain(net, target, idx, device, case.slug)
    emit(domain_registry.TARGET, target, idx, per_arm, _swft_notes(cfg, cases, digests), _segment_labels(target, idx))

    # Intermediate rows: where each step-1 model looks on its own domain's vessels (radial
    # fundus trees, tortuous twins, coronary trees), the study's explanation of what its
    # features carry to the larynx. Optional: only where step 1 was run.
    if ccfg.get("fundus_example", True):
        for d in (str(x) for x in ccfg["domains"]):
            step1 = Case(model, "thtl_step1", seed, split, d)
            if not checkpoint_path(ckdir, step1).is_file():
                continue
            dt = tensors(cfg, d, split)
            # The extreme classes present in the test split, one image each.
            present = sorted(set(np.asarray(dt.labels)[np.asarray(dt.split) == "test"].tolist()))
            if present:
                fidx = select_images(dt, 1, classes=sorted({present[0], present[-1]}))
                net = load_case_model(cfg, step1, checkpoints_dir=ckdir, device=device)
                emit(d, dt, fidx, {"thtl_step1": _explain(net, dt, fidx, device, step1.slug)})

    # Figures of an earlier render that this one did not redraw would be linked by nothing.
    for old in out_dir.glob(f"{FIGURE_PREFIX}*.png"):
        if old.resolve() not in written:
            old.unlink()
    # Not sorted: vessel_mass keeps the layer groups front to back, the report's column order.
    atomic_write_text(Path(cfg["report"]["dir"]) / "cam.json", json.dumps(entries, indent=1) + "\n")
    return entries
