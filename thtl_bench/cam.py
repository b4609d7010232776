"""LayerCAM figures and vessel-mass numbers: `thtl-bench cam`.

For chosen larynx test images, one LayerCAM map per layer group (StagedModel.cam_layers; ResNet:
layer1_stem, layer2, layer3, layer4) per arm, side by side, so the reader sees where attention goes after THTL vs SWFT.
Each map is backed by a number: the share of CAM mass on vessel pixels, which the phantoms know
exactly, beside the vessel-pixel fraction of the image (the share a map blind to vessels gets).
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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from thtl_bench import arms, records
from thtl_bench.engine.checkpoint import state_digest
from thtl_bench.engine.identity import case_id
from thtl_bench.engine.load import checkpoint_path, load_case_model, missing_error
from thtl_bench.errors import UserError
from thtl_bench.records import Case

# A min-max scaled map spans [0, 1]; one whose range is below this was flat before scaling
# (grad-cam divides by max + 1e-7, so a near-zero map scales to a small range, never to 1).
MIN_MAP_RANGE = 0.5
FIGURE_PREFIX = "cam__"  # figures this module owns in cam.out_dir (stale ones are removed)


class CamError(UserError, RuntimeError):
    """A LayerCAM map that cannot be trusted; the message names model, layer and image."""


# --------------------------------------------------------------------------------------------
# LayerCAM helper
# --------------------------------------------------------------------------------------------


def _tokens_to_grid(x: torch.Tensor) -> torch.Tensor:
    """(N, T, C) tokens, a few class/register tokens first, -> (N, C, s, s) on the patch grid."""
    n, t, c = x.shape
    side = int(np.sqrt(t))
    prefix = t - side * side
    if side < 1 or prefix > 16:  # not a square patch grid plus a few prefix tokens
        raise CamError(f"cannot map a (N, {t}, {c}) token activation to a square grid")
    return x[:, prefix:, :].reshape(n, side, side, c).permute(0, 3, 1, 2)


def _spatial(tokens_to_grid: Callable[[torch.Tensor], torch.Tensor] | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """grad-cam's reshape_transform: activations/gradients as (N, C, h, w) copies.

    The copy matters: on CPU grad-cam stores `activation.cpu().detach()`, which aliases the
    layer's output, so an in-place op after the layer (`out += identity`, `relu_`) would
    silently change the stored activation. Token layouts (ViT) go through the model's own
    `cam_reshape` when it has one.
    """
    def transform(x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = (tokens_to_grid or _tokens_to_grid)(x)
        if x.ndim != 4:
            raise CamError(f"a CAM layer must output (N, C, h, w) or (N, tokens, C); got shape {tuple(x.shape)}")
        return x.clone(memory_format=torch.contiguous_format)

    return transform


@contextlib.contextmanager
def cam_pass(model: nn.Module, layer: nn.Module) -> Iterator[None]:
    """Autograd on the explained layer for one CAM pass, frozen or not (last-layer arms freeze
    it), and off for every other parameter: the map needs only gradients of activations, and
    skipping weight gradients (e.g. VGG's 100M-weight classifier) makes a pass several times
    cheaper. Afterwards the requires_grad flags, the .grad tensors and every module's training
    flag are as before (grad-cam calls eval() and zero_grad()), so the model comes back unchanged."""
    params = list(model.parameters())
    flags = [(p, p.requires_grad, p.grad) for p in params]
    modes = [(m, m.training) for m in model.modules()]
    own = {id(p) for p in layer.parameters()}
    try:
        for p in params:
            p.requires_grad_(id(p) in own)
        with torch.enable_grad():
            yield
    finally:
        for p, requires_grad, grad in flags:
            p.requires_grad_(requires_grad)
            p.grad = grad
        for m, training in modes:
            m.training = training


def _one_layer(model: nn.Module, x: torch.Tensor, labels: list[int], ids: list[str], layer: nn.Module,
               where: str, reshape: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    from pytorch_grad_cam import LayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(int(lab)) for lab in labels]  # one target per image
    maps = None
    shapes: list[tuple[int, ...]] = []
    n_grads = 0
    # A layer without weights (pooling, identity) still needs a graph above it: the input carries it.
    x = x.detach().requires_grad_(not any(True for _ in layer.parameters()))
    with cam_pass(model, layer), LayerCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        try:
            maps = cam(input_tensor=x, targets=targets)
        except IndexError as exc:  # __exit__ would swallow it and leave `maps` unset
            outputs = getattr(cam, "outputs", None)
            n_out = outputs.shape[-1] if isinstance(outputs, torch.Tensor) else None
            bad = [(ids[i], lab) for i, lab in enumerate(labels) if n_out is not None and not 0 <= lab < n_out]
            detail = f"labels (image, label) {bad} outside the model's {n_out} outputs" if bad else str(exc)
            raise CamError(f"{where}: LayerCAM failed: {detail}") from exc
        except CamError as exc:  # from our reshape hook: says what is wrong, not where
            raise CamError(f"{where}: {exc}") from exc
        except (TypeError, ValueError, RuntimeError) as exc:  # backward without a graph / grads None
            if not cam.activations_and_grads.gradients:
                raise CamError(f"{where}: no gradient reached the layer (is its output detached?)") from exc
            raise
        finally:
            shapes = [tuple(a.shape) for a in cam.activations_and_grads.activations]
            n_grads = len(cam.activations_and_grads.gradients)
    if maps is None:  # defensive: grad-cam swallowed an exception we did not see
        raise CamError(f"{where}: LayerCAM returned no map")
    if len(shapes) != 1 or n_grads != 1:
        # A module called twice per forward (a shared ReLU) pairs the wrong activation/gradient.
        raise CamError(f"{where}: the layer ran {len(shapes)} times per forward ({n_grads} gradients); "
                       "choose a module that runs once")
    if int(np.prod(shapes[0][2:])) < 2:
        raise CamError(f"{where}: the layer's activation is {shapes[0][2:]} at input "
                       f"{tuple(x.shape[2:])}; a 1x1 map is constant: use larger images")
    return maps


def layercam_maps(
    model: nn.Module,
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor | np.ndarray,
    layers: Mapping[str, nn.Module],
    *,
    name: str | None = None,
    image_ids: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """One LayerCAM map per layer group per image: {group: float32 (N, H, W) in [0, 1]}.

    `images` is the model's input (N, C, H, W), already normalised; image i is explained for its
    own `labels[i]`. Each group is its own pass (grad-cam would average several layers) and each
    map is min-max scaled on its own by grad-cam. `name` and `image_ids` only label errors.
    """
    name = name or type(model).__name__
    labels = [int(v) for v in (labels.tolist() if hasattr(labels, "tolist") else labels)]
    if images.ndim != 4:
        raise CamError(f"{name}: need images (N, C, H, W); got shape {tuple(images.shape)}")
    n, h, w = images.shape[0], images.shape[-2], images.shape[-1]
    ids = list(image_ids) if image_ids is not None else [f"#{i}" for i in range(n)]
    if len(labels) != n or len(ids) != n:
        raise CamError(f"{name}: need images (N, C, H, W) with one label and id each; got "
                       f"{tuple(images.shape)}, {len(labels)} labels, {len(ids)} ids")
    if not layers:
        raise CamError(f"{name}: no CAM layers given")
    reshape = _spatial(getattr(model, "cam_reshape", None))  # StagedModel: ViT tokens -> grid
    device = next(model.parameters()).device
    x = images.detach().to(device=device, dtype=torch.float32)

    out: dict[str, np.ndarray] = {}
    for group, layer in layers.items():
        where = f"model {name}, layer {group}"
        maps = _one_layer(model, x, labels, ids, layer, where, reshape)
        if maps.shape != (n, h, w):
            raise CamError(f"{where}: map shape {maps.shape}, expected {(n, h, w)}")
        for i in range(n):
            m = maps[i]
            if not np.isfinite(m).all():
                raise CamError(f"{where}, image {ids[i]}: map has non-finite values")
            if float(m.max() - m.min()) < MIN_MAP_RANGE:
                raise CamError(f"{where}, image {ids[i]} (label {labels[i]}): map is constant "
                               "(no positive gradient-weighted activation for this label)")
        out[group] = maps.astype(np.float32, copy=False)
    return out


# --------------------------------------------------------------------------------------------
# Vessel mass
# --------------------------------------------------------------------------------------------


def _mask_on(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Vessel mask (any non-zero = vessel) as float coverage on a grid of `shape`: area-averaged
    when shrinking (a cell's value is its vessel fraction), nearest when growing."""
    m = torch.as_tensor(np.asarray(mask) > 0, dtype=torch.float32)
    if m.ndim != 2:
        raise ValueError(f"vessel mask must be 2-D, got shape {tuple(m.shape)}")
    if tuple(m.shape) == tuple(shape):
        return m.numpy()
    shrink = shape[0] <= m.shape[0] and shape[1] <= m.shape[1]
    mode = "area" if shrink else "nearest"
    return torch.nn.functional.interpolate(m[None, None], size=tuple(shape), mode=mode)[0, 0].numpy()


def vessel_mass(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's mass on vessel pixels: sum(cam * vessel) / sum(cam), mask resized to the
    map. Compare with `vessel_fraction` (what a map blind to vessels gets); their ratio is the lift."""
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2 or (cam < 0).any() or not np.isfinite(cam).all():
        raise ValueError("cam must be a finite, non-negative 2-D map")
    total = cam.sum()
    if total <= 0:
        raise ValueError("cam has no mass")
    return float((cam * _mask_on(mask, cam.shape)).sum() / total)


def vessel_fraction(mask: np.ndarray, shape: tuple[int, int] | None = None) -> float:
    """Vessel-pixel fraction of the image (on the map's grid when `shape` is given)."""
    m = np.asarray(mask)
    return float(_mask_on(m, tuple(shape) if shape else m.shape).mean())


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


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _rel(path: Path) -> str:
    """Path as written into cam.json: relative to the repository root (the working directory the
    CLI runs in) when inside it, so REPORT.md at the root can link it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


CAM_CMAP = "jet"  # LayerCAM's usual map colours; the colour bar states the scale
SCALE_NOTE = "each map min-max scaled to [0, 1]"


def build_figure(title: str, rows: list[dict], groups: list[str]):
    """The LayerCAM grid as a Figure: one row per entry of `rows`, columns the input, then one jet
    overlay per layer group; a colour bar (0-1) saying each map is min-max scaled on its own.

    A row is {label: arm, image: uint8 HWC, mask: vessel mask or None, maps: {group: map in
    [0, 1]}, shares: {group: vessel-mass share or None}, true: class name, pred: predicted class
    name or None, prob: its softmax probability or None, note: text or None, same_as: arm or
    None}. A row with a note (SWFT that kept its step-1 weights) is framed and has the note under
    its input; the frame takes the colour of the arm `same_as` whose weights the row's equal.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from thtl_bench.report import style

    ncol = 1 + len(groups)
    panel = (style.FULL_WIDTH_IN - 1.2) / ncol  # inches per image; the rest: colour bar, row labels
    with style.styled():
        fig = style.new_figure(0.45 + len(rows) * (panel + 0.55))
        axes = fig.subplots(len(rows), ncol, squeeze=False)
        for r, row in enumerate(rows):
            ax = axes[r, 0]
            ax.imshow(row["image"])
            if row["mask"] is not None:  # vessel outline, so the mass share can be read off the picture
                ax.contour(np.asarray(row["mask"]) > 0, levels=[0.5], colors="white", linewidths=0.4)
            pred = "pred n/a" if row.get("pred") is None else (
                f"pred {row['pred']}" + ("" if row.get("prob") is None else f" ({row['prob']:.2f})"))
            ax.set_title(f"true {row.get('true', '?')}\n{pred}", fontsize=7)
            ax.set_ylabel(row["label"], fontsize=8, fontweight="bold", color=style.arm_colour(row["label"].split(" [")[0]))
            mark = style.arm_colour(row["same_as"].split(" [")[0]) if row.get("same_as") else style.NEUTRAL
            if row.get("note"):
                ax.set_xlabel(row["note"], fontsize=6.5, fontweight="bold")
            for c, group in enumerate(groups, start=1):
                ax = axes[r, c]
                ax.imshow(row["image"])
                ax.imshow(row["maps"][group], cmap=CAM_CMAP, alpha=0.5, vmin=0.0, vmax=1.0)
                share = row["shares"][group]
                txt = "n/a" if share is None else f"{share:.0%}"
                ax.set_title(f"{group}\nvessel mass {txt}", fontsize=7)
            for ax in axes[r]:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    if row.get("note"):
                        spine.set_color(mark)
                        spine.set_linewidth(2.2)
        bar = fig.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap=CAM_CMAP), ax=axes[:, 1:],
                           shrink=0.9, aspect=12 * len(rows) ** 0.5, pad=0.02)
        # three short lines: the label must fit beside the bar of a one-row figure
        bar.set_label("LayerCAM,\n" + SCALE_NOTE.replace(" scaled", "\nscaled"), fontsize=7)
        bar.ax.tick_params(labelsize=7)
        fig.suptitle(title, fontsize=8)
    return fig


def _figure(path: Path, title: str, rows: list[dict], groups: list[str]) -> None:
    """build_figure(title, rows, groups) saved as a PNG (same bytes for the same rows)."""
    from thtl_bench.report import style

    style.save(build_figure(title, rows, groups), path)


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


def render(cfg: dict, checkpoints: str | os.PathLike | None = None) -> list[dict]:
    """Figures for the cases of `cam_cases` on the chosen larynx test images (plus, per
    intermediate domain, its step-1 model on that domain's own images when its checkpoint
    exists); writes `<report.dir>/cam.json` and returns its entries:
    {model, arm, via, domain, image_id, label, figure, vessel_mass: {group: share},
    vessel_fraction, pred, prob}: `via` the intermediate domain of a THTL arm (None for the
    others), `domain` the images' domain, `pred` the class the model predicts for the image,
    `prob` its softmax probability. Shares are None for real data (no vessel masks). SWFT rows
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
             notes: dict[str, tuple[str, str | None]] | None = None) -> None:
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
                c = cases.get(row_label)
                entries.append({"model": model, "arm": c.arm if c else row_label, "via": c.domain if c else (domain if row_label == "thtl_step1" else None),
                                "domain": domain, "image_id": image_id, "label": label, "figure": _rel(fig),
                                "vessel_mass": row["shares"], "vessel_fraction": frac, "pred": row["pred"],
                                "prob": row["prob"]})

    target = tensors(cfg, domain_registry.TARGET, split)
    idx = select_images(target, int(ccfg["images_per_class"]))
    if len(idx) == 0:
        raise UserError("no target test images to explain: check the split (`thtl-bench data split`)")
    per_arm, digests = {}, {}
    for label, case in cases.items():
        net = load_case_model(cfg, case, checkpoints_dir=ckdir, device=device)
        digests[label] = state_digest(net.state_dict())
        per_arm[label] = _explain(net, target, idx, device, case.slug)
    emit(domain_registry.TARGET, target, idx, per_arm, _swft_notes(cfg, cases, digests))

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
