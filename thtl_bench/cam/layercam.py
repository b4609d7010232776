"""The LayerCAM helper: one map per layer group per image, every grad-cam pitfall handled
(thtl_bench.cam's docstring lists them)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from thtl_bench.errors import UserError

# A min-max scaled map spans [0, 1]; one whose range is below this was flat before scaling
# (grad-cam divides by max + 1e-7, so a near-zero map scales to a small range, never to 1).
MIN_MAP_RANGE = 0.5


class CamError(UserError, RuntimeError):
    """A LayerCAM map that cannot be trusted; the message names model, layer and image."""


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
