"""Standard vessel tortuosity indices of a 2-D centreline (Bullitt et al. 2003; Grisan 2008).

- distance metric (DM): arc length / chord length (1 for a straight vessel);
- inflection count metric (ICM): (inflection points + 1) x DM;
- sum of angles metric (SOAM): total absolute turning angle / arc length (rad per pixel),
  the index that best flags tight coils (corkscrews) where DM stays low.
Centrelines are resampled at a fixed step first so the indices do not depend on how densely
the generator emitted points.
"""

from __future__ import annotations

import numpy as np


def resample(points: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Points spaced `step` apart along the polyline (first and last kept)."""
    p = np.asarray(points, dtype=float)
    seg = np.hypot(*np.diff(p, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= step:
        return p[[0, -1]]
    t = np.arange(0.0, s[-1], step)
    return np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], axis=1)


def _turning(p: np.ndarray) -> np.ndarray:
    d = np.diff(p, axis=0)
    ang = np.arctan2(d[:, 1], d[:, 0])
    return (np.diff(ang) + np.pi) % (2 * np.pi) - np.pi  # signed turn at each interior point


def distance_metric(points: np.ndarray) -> float:
    p = np.asarray(points, dtype=float)
    arc = np.hypot(*np.diff(p, axis=0).T).sum()
    chord = np.hypot(*(p[-1] - p[0]))
    return float(arc / max(chord, 1e-6))


def inflection_count(points: np.ndarray, step: float = 1.0, min_turn: float = 0.02, window: int = 3) -> int:
    """Sign changes of curvature, smoothed over `window` points; tiny turns (pixel jitter) ignored."""
    turn = _turning(resample(points, step))
    if turn.size < window:
        return 0
    turn = np.convolve(turn, np.ones(window) / window, mode="valid")
    signs = np.sign(turn[np.abs(turn) > min_turn])
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


def indices(points: np.ndarray, step: float = 1.0) -> dict[str, float]:
    p = resample(points, step)
    arc = float(np.hypot(*np.diff(p, axis=0).T).sum())
    dm = distance_metric(p)
    soam = float(np.abs(_turning(p)).sum() / max(arc, 1e-6)) if len(p) > 2 else 0.0
    return {"dm": dm, "icm": (inflection_count(points, step) + 1) * dm, "soam": soam, "length": arc}


def summarise(per_vessel: list[dict[str, float]]) -> dict[str, float]:
    """Length-weighted mean of each index over the vessels of one image."""
    if not per_vessel:
        return {"dm": 1.0, "icm": 1.0, "soam": 0.0, "length": 0.0}
    w = np.array([v["length"] for v in per_vessel]) + 1e-9
    out = {k: float(np.average([v[k] for v in per_vessel], weights=w)) for k in ("dm", "icm", "soam")}
    out["length"] = float(w.sum())
    return out
