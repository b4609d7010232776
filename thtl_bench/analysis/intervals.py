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
