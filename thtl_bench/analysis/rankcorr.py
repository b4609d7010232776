"""Does a transferability score rank the measured THTL gains? Kendall's tau-b between a score and
the gain over (model, domain) pairs, with a permutation p and, over enough resampling units, a
bootstrap interval (numpy, scipy; no torch).

Pairs of different models are not comparable: each model's scores and distances live on its own
scale (the Fréchet distance between ImageNet features of efficientnet_lite2 is ~4x lite0's) and its
gain on its own baseline, so a tau over all pairs mostly ranks the models. With `strata` (the
model of each pair) only pairs within one stratum are compared: the *stratified* tau-b is
sum_s (C_s - D_s) / sum_s sqrt((P_s - Tx_s)(P_s - Ty_s)) (C, D the concordant and discordant
pairs of stratum s, P its pairs, T those tied in x or y), which is tau-b itself for one stratum,
and the permutation p permutes the gains within each stratum only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from thtl_bench.errors import UserError

MIN_BOOT_UNITS = 5  # no bootstrap interval over fewer resampling units: it would rest on a handful of draws
EXACT_MAX = math.factorial(9)  # an exact permutation p up to this many orderings; seeded Monte Carlo above


def _parts(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C - D, sqrt((P - T_x)(P - T_y))) of each row pair of (B, n) arrays."""
    iu = np.triu_indices(x.shape[1], k=1)
    sx = np.sign(x[:, :, None] - x[:, None, :])[:, iu[0], iu[1]]
    sy = np.sign(y[:, :, None] - y[:, None, :])[:, iu[0], iu[1]]
    return (sx * sy).sum(axis=1), np.sqrt((sx != 0).sum(axis=1) * (sy != 0).sum(axis=1).astype(np.float64))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _tau_b_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair of (B, n) arrays; NaN where x or y is constant.

    tau_b = (concordant - discordant) / sqrt((P - T_x)(P - T_y)) over the P = n(n-1)/2 pairs,
    T = pairs tied in that variable (a repeated bootstrap draw is tied in both), as scipy.
    """
    return _ratio(*_parts(x, y))


def _strat_rows(x: np.ndarray, y: np.ndarray, members: Sequence[np.ndarray]) -> np.ndarray:
    """The stratified tau-b (module docstring) of each row of y (B, n) against x (n,)."""
    num = np.zeros(len(y))
    den = np.zeros(len(y))
    for idx in members:
        if len(idx) < 2:
            continue
        n_s, d_s = _parts(np.broadcast_to(x[idx], (len(y), len(idx))), y[:, idx])
        num, den = num + n_s, den + d_s
    return _ratio(num, den)


def _members(strata: Sequence[Any] | None, n: int) -> list[np.ndarray]:
    if strata is None:
        return [np.arange(n)]
    s = np.asarray(strata, dtype=object)
    return [np.flatnonzero(s == key) for key in dict.fromkeys(s.tolist())]


def permutation_p(x: np.ndarray, y: np.ndarray, *, seed: int, strata: Sequence[Any] | None = None,
                  n_resamples: int = 100_000, chunk: int = 4096) -> tuple[float, str]:
    """Two-sided permutation p of the (stratified) tau-b: the share of orderings of y (within each
    stratum) whose |tau| is at least the observed one. Exact over every ordering when there are at
    most EXACT_MAX of them, else a seeded Monte Carlo with the observed ordering counted
    (p = (k + 1) / (B + 1)). Returns (p, method)."""
    members = _members(strata, len(x))
    obs = abs(float(_strat_rows(x, y[None], members)[0])) - 1e-12
    within = "" if strata is None else f" within {len(members)} strata"
    total = math.prod(math.factorial(len(m)) for m in members)
    if total <= EXACT_MAX:
        blocks = itertools.product(*(itertools.permutations(m.tolist()) for m in members))
        hits = seen = 0
        while True:
            got = list(itertools.islice(blocks, chunk))
            if not got:
                break
            idx = np.empty((len(got), len(x)), dtype=np.int64)
            for j, combo in enumerate(got):
                for m, perm in zip(members, combo, strict=True):
                    idx[j, m] = perm
            hits += int((np.abs(_strat_rows(x, y[idx], members)) >= obs).sum())
            seen += len(got)
        assert seen == total
        return hits / total, f"exact over all {total} orderings{within}"
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - start)
        idx = np.broadcast_to(np.arange(len(x)), (k, len(x))).copy()
        for m in members:
            idx[:, m] = m[np.argsort(rng.random((k, len(m))), axis=1)]
        hits += int((np.abs(_strat_rows(x, y[idx], members)) >= obs).sum())
    return (hits + 1) / (n_resamples + 1), f"Monte Carlo over {n_resamples} orderings{within} (seed {seed})"


def kendall_tau(x: Sequence[float], y: Sequence[float], *, n_boot: int, seed: int,
                confidence: float = 0.95, groups: Sequence[Any] | None = None,
                strata: Sequence[Any] | None = None, chunk: int = 256) -> dict:
    """Kendall's tau-b of (score, measured gain) pairs, its permutation p and, with at least
    MIN_BOOT_UNITS resampling units, a bootstrap percentile interval.

    Without `strata` tau is scipy.stats.kendalltau's tau-b over all pairs; with `strata` (e.g. the
    model of each pair) the stratified tau-b over pairs within a stratum (module docstring). p is a
    two-sided permutation p (`permutation_p`: exact where the orderings are few, so it is right
    for 3 pairs too, where the smallest possible p is 1/3). The interval resamples the pairs with
    replacement ``n_boot`` times (seeded), or, if ``groups`` is given (e.g. the domain of each
    pair), whole groups: pairs of one domain share its images and are not independent. With fewer
    than MIN_BOOT_UNITS units (pairs, or groups) there is no interval (``reason`` says so): a
    bootstrap over 3 pairs gives degenerate intervals such as [-1, -1]. Pairs with a missing
    (None/NaN) value are dropped and counted. With fewer than 3 distinct (x, y) pairs, x or y
    constant, or no stratum with two pairs that differ, tau/p/ci are None and ``reason`` says why.

    Returns dict(tau, p, p_method, ci=[low, high] | None, n, n_dropped, n_boot, n_boot_valid,
    confidence, resample="pairs" | "groups", units, strata=None | count, compared (pairs
    compared), reason=None | str).
    """
    xa = np.array([np.nan if v is None else v for v in x], dtype=np.float64)
    ya = np.array([np.nan if v is None else v for v in y], dtype=np.float64)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise UserError(f"kendall_tau: x and y must be 1-D of one length, got {xa.shape} and {ya.shape}")
    for name, extra in (("groups", groups), ("strata", strata)):
        if extra is not None and len(extra) != len(xa):
            raise UserError(f"kendall_tau: {name} has {len(extra)} entries for {len(xa)} pairs")
    if not (0 < confidence < 1) or n_boot < 0:
        raise UserError(f"kendall_tau: need 0 < confidence < 1 and n_boot >= 0, got {confidence}, {n_boot}")
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    st = None if strata is None else np.asarray(strata, dtype=object)[ok]
    members = _members(st, len(xa))
    out: dict[str, Any] = {"tau": None, "p": None, "p_method": None, "ci": None, "n": int(len(xa)),
                           "n_dropped": int((~ok).sum()), "n_boot": int(n_boot), "n_boot_valid": 0,
                           "confidence": float(confidence),
                           "resample": "pairs" if groups is None else "groups", "units": None,
                           "strata": None if st is None else len(members),
                           "compared": sum(len(m) * (len(m) - 1) // 2 for m in members), "reason": None}
    if len(set(zip(xa.tolist(), ya.tolist(), strict=True))) < 3:
        out["reason"] = "fewer than 3 distinct (score, gain) pairs"
        return out
    if np.unique(xa).size < 2 or np.unique(ya).size < 2:
        out["reason"] = f"all {'scores' if np.unique(xa).size < 2 else 'gains'} tied"
        return out
    tau = (float(sps.kendalltau(xa, ya).statistic) if st is None
           else float(_strat_rows(xa, ya[None], members)[0]))
    if not np.isfinite(tau):
        out["reason"] = "no stratum has two pairs that differ in both score and gain"
        return out
    out["tau"] = tau
    out["p"], out["p_method"] = permutation_p(xa, ya, seed=seed, strata=st)
    if groups is None:
        units = [np.array([i]) for i in range(len(xa))]
    else:
        g = np.asarray(groups, dtype=object)[ok]
        units = [np.flatnonzero(g == key) for key in dict.fromkeys(g.tolist())]
    out["units"] = len(units)
    if len(units) < MIN_BOOT_UNITS:
        out["reason"] = (f"no interval: {len(units)} {out['resample']} to resample (a bootstrap needs at least "
                         f"{MIN_BOOT_UNITS}); the permutation p stands alone")
        return out
    rng = np.random.default_rng(seed)
    equal = st is None and len({len(m) for m in units}) == 1  # resamples of one length: vectorised in chunks
    taus: list[float] = []
    for start in range(0, n_boot, chunk):
        draws = rng.integers(0, len(units), size=(min(chunk, n_boot - start), len(units)))
        rows = [np.concatenate([units[j] for j in row]) for row in draws]
        if equal:
            idx = np.stack(rows)
            taus.extend(_tau_b_rows(xa[idx], ya[idx]).tolist())
        else:  # one resample at a time; without strata _strat_rows is tau-b itself
            taus.extend(float(_strat_rows(xa[i], ya[i][None], _members(None if st is None else st[i], len(i)))[0])
                        for i in rows)
    valid = np.asarray(taus, dtype=np.float64)
    valid = valid[np.isfinite(valid)]
    out["n_boot_valid"] = int(len(valid))
    if len(valid):
        q = 50 * (1 - confidence)
        out["ci"] = [float(v) for v in np.percentile(valid, [q, 100 - q])]
    elif n_boot:
        out["reason"] = "no bootstrap resample had a defined tau (too few distinct values)"
    return out
