"""Small interval statistics over seeds/replicates (numpy + scipy, no torch).

A statistic that cannot be computed (one value, undefined metric) is None, never NaN, so the
JSON stays valid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps


def _clean(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _none_if_nan(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample std (ddof=1) and the two-sided Student-t interval of the mean.

    With one value the std and interval are None; with zero spread the interval is the point.
    """
    x = np.asarray(_clean(values), np.float64)
    n = len(x)
    out = {"n": n, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    if n == 0:
        return out
    out["mean"] = float(x.mean())
    if n < 2:
        return out
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    out.update(std=sd, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def paired(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Paired difference a - b: t-interval of the mean difference and ttest_rel's p-value."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError("paired samples need equal lengths")
    out = t_interval(a - b, confidence)
    out["p"] = None
    if len(a) >= 2:
        d = a - b
        if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
            # Constant differences: ttest_rel is undefined (0/0); zero difference is p = 1.
            out["p"] = 1.0 if abs(d[0]) <= 1e-12 else 0.0
        else:
            out["p"] = _none_if_nan(float(sps.ttest_rel(a, b).pvalue))
    return out


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch t-test p-value; None with fewer than two values on a side."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return None
    if np.std(a) == 0 and np.std(b) == 0:
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    return _none_if_nan(float(sps.ttest_ind(a, b, equal_var=False).pvalue))


def bootstrap_paired(num_a: np.ndarray, num_b: np.ndarray, den: np.ndarray, *, n_boot: int,
                     seed: int, confidence: float = 0.95) -> dict:
    """Paired bootstrap over test images of a seed-averaged metric difference.

    A metric of one (arm, seed) is sum(num[i]) / sum(den[i]) over images i: accuracy takes
    num = correct, den = 1; malignant recall num = correct & malignant, den = malignant.
    `num_a`, `num_b` are (seeds, images) for the two arms on the same images in the same order;
    `den` (images,) is shared (same labels). Each resample draws image indices once, jointly for
    both arms and all seeds (multinomial counts = resampling with replacement), and the statistic
    is mean over seeds of metric_a - metric_b, in pp; also the relative change (%) of the
    seed-averaged metrics. Percentile intervals; resamples with an empty denominator are dropped.
    """
    num_a = np.atleast_2d(np.asarray(num_a, np.float64))
    num_b = np.atleast_2d(np.asarray(num_b, np.float64))
    den = np.asarray(den, np.float64)
    n = den.shape[0]
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    ma, mb = num_a.mean(0), num_b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = w @ den
        diff = 100.0 * (w @ (ma - mb)) / d
        rel = 100.0 * ((w @ ma) / (w @ mb) - 1.0)
    q = [50 * (1 - confidence), 50 * (1 + confidence)]
    diff = diff[np.isfinite(diff)]
    rel = rel[np.isfinite(rel)]
    point_d = float(den.sum())
    return {
        "n_boot": int(n_boot),
        "n_valid": int(len(diff)),
        "diff_pp": 100.0 * float((ma - mb).sum()) / point_d if point_d else None,
        "ci_pp": [float(v) for v in np.percentile(diff, q)] if len(diff) else None,
        "rel_ci_pct": [float(v) for v in np.percentile(rel, q)] if len(rel) else None,
    }
