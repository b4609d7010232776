"""Where a LayerCAM map's mass lies: on vessel pixels, and on tortuous vs straight vessel
segments (the mediator), beside the pixel shares a map blind to them gets (chance)."""

from __future__ import annotations

import numpy as np
import torch


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


def _checked(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2 or (cam < 0).any() or not np.isfinite(cam).all():
        raise ValueError("cam must be a finite, non-negative 2-D map")
    if cam.sum() <= 0:
        raise ValueError("cam has no mass")
    return cam


def vessel_mass(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's mass on vessel pixels: sum(cam * vessel) / sum(cam), mask resized to the
    map. Compare with `vessel_fraction` (what a map blind to vessels gets); their ratio is the lift."""
    cam = _checked(cam)
    return float((cam * _mask_on(mask, cam.shape)).sum() / cam.sum())


def vessel_fraction(mask: np.ndarray, shape: tuple[int, int] | None = None) -> float:
    """Vessel-pixel fraction of the image (on the map's grid when `shape` is given)."""
    m = np.asarray(mask)
    return float(_mask_on(m, tuple(shape) if shape else m.shape).mean())


def category_coverage(labels: np.ndarray, categories: tuple[str, ...] | list[str],
                      shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """{category: its pixels as coverage on a grid of `shape`} of a label map whose codes are 1, 2,
    ... for `categories` in order (0: none), e.g. thtl_bench.data.segments' straight / tortuous /
    dots vessel segments."""
    lab = np.asarray(labels)
    return {c: _mask_on(lab == k, shape) for k, c in enumerate(categories, start=1)}


def segment_mass(cam: np.ndarray, coverage: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of the map's mass on each category's pixels (coverage from `category_coverage` on
    the map's grid); beside each category's pixel share (chance for a map blind to it)."""
    cam = _checked(cam)
    total = cam.sum()
    return {c: float((cam * cov).sum() / total) for c, cov in coverage.items()}

