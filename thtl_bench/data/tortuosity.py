"""Standard vessel tortuosity indices of a 2-D centreline (Bullitt et al. 2003; Grisan et al. 2008).

- distance metric (DM): arc length / chord length (1 for a straight vessel);
- inflection count metric (ICM): (inflection points + 1) x DM;
- sum of angles metric (SOAM): total absolute turning angle / arc length (rad per pixel),
  the index that best flags tight coils (corkscrews) where DM stays low.
Centrelines are resampled at a fixed step first so the indices do not depend on how densely
the generator emitted points. Also the box-counting (fractal) dimension of a binary vessel map.

All arithmetic goes through `detmath` (no numpy transcendental ufunc, no np.interp or
np.convolve), so the indices written next to the phantoms are the same bits on every CPU.
"""

from __future__ import annotations

import numpy as np

from thtl_bench.data import detmath as dm


def arc_lengths(p: np.ndarray) -> np.ndarray:
    d = np.diff(p, axis=0)
    return dm.hypot(d[:, 0], d[:, 1])


def resample(points: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Points spaced `step` apart along the polyline (linear interpolation; first point kept)."""
    return resample_many([points], step)[0]


def turning(p: np.ndarray) -> np.ndarray:
    """Signed turn (rad, in [-pi, pi)) at each interior point."""
    d = np.diff(p, axis=0)
    ang = dm.atan2(d[:, 1], d[:, 0])
    return dm.wrap_angle(np.diff(ang))


def distance_metric(points: np.ndarray) -> float:
    p = np.asarray(points, dtype=np.float64)
    arc = float(arc_lengths(p).sum())
    chord = float(dm.hypot(p[-1, 0] - p[0, 0], p[-1, 1] - p[0, 1]))
    return arc / max(chord, 1e-6)


def _moving_mean(x: np.ndarray, window: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x)])
    return np.divide(np.subtract(c[window:], c[:-window]), float(window))


def _inflections(turn: np.ndarray, min_turn: float, window: int) -> int:
    if turn.size < window:
        return 0
    turn = _moving_mean(turn, window)
    signs = np.sign(turn[np.abs(turn) > min_turn])
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


def inflection_count(points: np.ndarray, step: float = 1.0, min_turn: float = 0.02, window: int = 3) -> int:
    """Sign changes of curvature, smoothed over `window` points; tiny turns (pixel jitter) ignored."""
    return _inflections(turning(resample(points, step)), min_turn, window)


def indices(points: np.ndarray, step: float = 1.0) -> dict[str, float]:
    return indices_many([points], step)[0]


def resample_many(centrelines: list[np.ndarray], step: float = 1.0) -> list[np.ndarray]:
    """resample() of several polylines (the same bits; segment lengths in one call)."""
    sizes = np.array([len(p) for p in centrelines])
    p = np.concatenate([np.asarray(c, dtype=np.float64) for c in centrelines])
    first = np.cumsum(sizes) - sizes
    d = np.diff(p, axis=0)
    seg = dm.hypot(d[:, 0], d[:, 1])
    out = []
    for a, m in zip(first, sizes, strict=True):
        pj = p[a: a + m]
        sj = np.concatenate([[0.0], np.cumsum(seg[a: a + m - 1])])
        if sj[-1] <= step:
            out.append(pj[[0, -1]])
            continue
        t = np.multiply(np.arange(int(np.floor(sj[-1] / step)) + 1, dtype=np.float64), step)
        i = np.clip(np.searchsorted(sj, t, side="right") - 1, 0, m - 2)
        gap = np.subtract(sj[i + 1], sj[i])
        f = np.divide(np.subtract(t, sj[i]), np.where(gap > 0, gap, 1.0))
        out.append(np.add(pj[i], np.multiply(f[:, None], np.subtract(pj[i + 1], pj[i]))))
    return out


def indices_many(centrelines: list[np.ndarray], step: float = 1.0, min_turn: float = 0.02,
                 window: int = 3) -> list[dict[str, float]]:
    """indices() of several centrelines with one atan2 call over all of them."""
    res = resample_many(centrelines, step)
    diffs = [np.diff(p, axis=0) for p in res]
    d = np.concatenate(diffs)
    ang = dm.atan2(d[:, 1], d[:, 0])
    seg = dm.hypot(d[:, 0], d[:, 1])
    out, at = [], 0
    for p, df in zip(res, diffs, strict=True):
        a, L = ang[at: at + len(df)], seg[at: at + len(df)]
        at += len(df)
        arc = float(L.sum())
        chord = float(dm.hypot(p[-1, 0] - p[0, 0], p[-1, 1] - p[0, 1]))
        dmetric = arc / max(chord, 1e-6)
        turn = dm.wrap_angle(np.diff(a))
        soam = float(np.abs(turn).sum()) / max(arc, 1e-6) if len(p) > 2 else 0.0
        icm = (_inflections(turn, min_turn, window) + 1) * dmetric
        out.append({"dm": dmetric, "icm": icm, "soam": soam, "length": arc})
    return out


def summarise(per_vessel: list[dict[str, float]]) -> dict[str, float]:
    """Length-weighted mean of each index over the vessels of one image."""
    if not per_vessel:
        return {"dm": 1.0, "icm": 1.0, "soam": 0.0, "length": 0.0}
    w = np.add(np.array([v["length"] for v in per_vessel]), 1e-9)
    tot = float(w.sum())
    out = {k: float(np.multiply(np.array([v[k] for v in per_vessel]), w).sum()) / tot for k in ("dm", "icm", "soam")}
    out["length"] = tot
    return out


def fractal_dimension(mask: np.ndarray, sizes: tuple[int, ...] = (1, 2, 4, 8, 16)) -> float:
    """Box-counting dimension of a binary map: slope of log N(s) against log(1/s), least squares."""
    m = np.asarray(mask) > 0
    counts = []
    for s in sizes:
        h, w = (m.shape[0] // s) * s, (m.shape[1] // s) * s
        boxes = m[:h, :w].reshape(h // s, s, w // s, s).any(axis=(1, 3))
        counts.append(max(int(boxes.sum()), 1))
    x = dm.log(np.array(sizes, dtype=np.float64))
    y = dm.log(np.array(counts, dtype=np.float64))
    xc, yc = np.subtract(x, x.mean()), np.subtract(y, y.mean())
    return -float(np.multiply(xc, yc).sum()) / float(np.multiply(xc, xc).sum())
