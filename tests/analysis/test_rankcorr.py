"""Kendall's tau between a transferability score and the measured gain (analysis.rankcorr): hand
arithmetic, scipy as the reference for tau-b and its exact p, and the stratified (within-model)
tau with its permutation p within strata."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from thtl_bench.analysis import rankcorr as R
from thtl_bench.errors import UserError


def test_kendall_tau_monotone_and_hand_computed():
    x = [0.1, 0.4, 0.5, 0.9, 1.3, 2.0]
    up = R.kendall_tau(x, [1, 2, 3, 5, 8, 13], n_boot=200, seed=0)
    assert up["tau"] == pytest.approx(1.0) and up["ci"] == pytest.approx([1.0, 1.0]) and up["reason"] is None
    assert up["p"] == pytest.approx(2 / math.factorial(6))  # exact: 1 of 720 orders, two-sided
    down = R.kendall_tau(x, [9, 7, 6, 2, 1, 0], n_boot=200, seed=0)
    assert down["tau"] == pytest.approx(-1.0) and down["ci"] == pytest.approx([-1.0, -1.0])
    # (1,2,3,4) vs (1,3,2,4): 5 concordant, 1 discordant pair: tau = 4/6; exact p = 8/24.
    r = R.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4], n_boot=0, seed=0)
    assert r["tau"] == pytest.approx(2 / 3) and r["p"] == pytest.approx(1 / 3) and r["ci"] is None


def test_bootstrap_tau_b_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, (50, 9)).astype(float), rng.integers(0, 3, (50, 9)).astype(float)
    ours = R._tau_b_rows(x, y)
    for row, value in zip(range(50), ours, strict=True):
        ref = sps.kendalltau(x[row], y[row]).statistic
        assert (np.isnan(ref) and np.isnan(value)) or value == pytest.approx(ref, abs=1e-14)


def test_kendall_tau_interval_is_deterministic_and_seeded():
    x = [0.3, 0.1, 0.9, 0.5, 0.7, 0.2, 0.8, 0.4, 0.6]
    y = [1.0, 0.0, 2.5, 1.5, 1.2, 0.4, 2.0, 0.5, 2.2]
    a = R.kendall_tau(x, y, n_boot=500, seed=7)
    assert a == R.kendall_tau(x, y, n_boot=500, seed=7)
    assert a["ci"] != R.kendall_tau(x, y, n_boot=500, seed=8)["ci"]
    assert a["ci"][0] - 1e-12 <= a["tau"] <= a["ci"][1] + 1e-12 and a["n_boot_valid"] <= 500
    assert a["tau"] == pytest.approx(sps.kendalltau(x, y).statistic)


def test_kendall_tau_group_bootstrap():
    # A domain distance is one number per domain, shared by its models: pairs of one domain are
    # resampled together. A resample drawing one domain every time has constant x: its tau is
    # undefined, left out and counted.
    x = [0.3] * 3 + [1.2] * 3 + [2.0] * 3 + [2.5] * 3 + [3.1] * 3
    y = [0.0, 0.5, 0.2, 1.0, 1.4, 1.1, 2.0, 2.6, 2.2, 2.4, 3.0, 2.9, 3.3, 3.0, 3.6]
    domains = [d for d in ("fundus", "tortuous", "angio", "vessel", "tvessel") for _ in range(3)]
    r = R.kendall_tau(x, y, n_boot=300, seed=1, groups=domains)
    assert r["resample"] == "groups" and r["units"] == 5
    assert r["ci"][0] - 1e-12 <= r["tau"] <= r["ci"][1] + 1e-12 and 0.9 * 300 < r["n_boot_valid"] <= 300
    pairs = R.kendall_tau(x, y, n_boot=300, seed=1)
    assert pairs["resample"] == "pairs" and pairs["ci"] != r["ci"]
    # three domains: no interval (a bootstrap over three units is degenerate), the permutation p stays
    three = R.kendall_tau(x[:9], y[:9], n_boot=300, seed=1, groups=domains[:9])
    assert three["ci"] is None and "3 groups" in three["reason"] and three["p"] is not None


def test_kendall_tau_exact_permutation_p():
    # three pairs in reverse order: tau = -1, and exactly 2 of the 6 orderings reach |tau| = 1
    r = R.kendall_tau([1, 2, 3], [3, 2, 1], n_boot=100, seed=0)
    assert r["tau"] == -1.0 and r["p"] == pytest.approx(1 / 3) and r["ci"] is None
    assert r["p_method"] == "exact over all 6 orderings" and "3 pairs" in r["reason"]
    # eight pairs, exact over 8! orderings, agrees with scipy's exact Kendall test without ties
    x, y = list(range(8)), [0, 2, 1, 3, 5, 4, 7, 6]
    r = R.kendall_tau(x, y, n_boot=100, seed=0)
    assert r["p"] == pytest.approx(sps.kendalltau(x, y, method="exact").pvalue, rel=1e-9)
    # above EXACT_MAX: seeded Monte Carlo, deterministic
    x, y = list(range(11)), [1, 0, 2, 4, 3, 5, 7, 6, 8, 10, 9]
    a = R.kendall_tau(x, y, n_boot=10, seed=3)
    assert a["p"] == R.kendall_tau(x, y, n_boot=10, seed=3)["p"] and "Monte Carlo" in a["p_method"]
    assert a["p"] == pytest.approx(sps.kendalltau(x, y, method="exact").pvalue, abs=0.01)


def test_kendall_tau_undefined_cases_say_why():
    r = R.kendall_tau([1, 2], [3, 4], n_boot=10, seed=0)
    assert r["tau"] is None and "fewer than 3" in r["reason"]
    r = R.kendall_tau([1, 1, 2, 2], [3, 3, 4, 4], n_boot=10, seed=0)
    assert r["tau"] is None and "fewer than 3" in r["reason"]
    r = R.kendall_tau([1, 2, 3], [5, 5, 5], n_boot=10, seed=0)
    assert r["tau"] is None and "gains tied" in r["reason"]
    r = R.kendall_tau([1, None, 2, 3, float("nan")], [1, 2, 3, 4, 5], n_boot=10, seed=0)
    assert r["n"] == 3 and r["n_dropped"] == 2 and r["tau"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="one length"):
        R.kendall_tau([1, 2, 3], [1, 2], n_boot=10, seed=0)


def test_stratified_tau_compares_pairs_within_a_model_only():
    # Within each model the score ranks the gains the wrong way round, but the model with the
    # larger scores also has the larger gains: over all pairs tau is positive (it ranks the models),
    # within models it is -1.
    x = [1.0, 2.0, 3.0, 11.0, 12.0, 13.0, 21.0, 22.0, 23.0]
    y = [3.0, 2.0, 1.0, 13.0, 12.0, 11.0, 23.0, 22.0, 21.0]
    models = ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    pooled = R.kendall_tau(x, y, n_boot=0, seed=0)
    within = R.kendall_tau(x, y, n_boot=0, seed=0, strata=models)
    assert pooled["tau"] == pytest.approx(sps.kendalltau(x, y).statistic) == pytest.approx(0.5)
    assert within["tau"] == pytest.approx(-1.0) and within["strata"] == 3 and within["compared"] == 9
    # exact over (3!)^3 = 216 orderings within models: |tau| = 1 needs every model perfectly
    # ordered one way, all the same way: 2 of 216
    assert within["p"] == pytest.approx(2 / 216) and within["p_method"] == "exact over all 216 orderings within 3 strata"
    # one stratum is tau-b itself, and its p the unstratified one
    one = R.kendall_tau(x[:6], y[:6], n_boot=0, seed=0, strata=["a"] * 6)
    ref = R.kendall_tau(x[:6], y[:6], n_boot=0, seed=0)
    assert one["tau"] == pytest.approx(ref["tau"]) and one["p"] == pytest.approx(ref["p"])


def _by_hand(x, y, members) -> float:
    """sum over strata of tau-b times its denominator, over the sum of denominators (pure Python)."""
    num = den = 0.0
    for m in members:
        c = d = tx = ty = 0
        for i in range(len(m)):
            for j in range(i + 1, len(m)):
                sx, sy = np.sign(x[m[i]] - x[m[j]]), np.sign(y[m[i]] - y[m[j]])
                c, d = c + (sx * sy > 0), d + (sx * sy < 0)
                tx, ty = tx + (sx != 0), ty + (sy != 0)
        num, den = num + c - d, den + math.sqrt(tx * ty)
    return num / den


def test_stratified_tau_hand_computed_with_ties_and_monte_carlo():
    # stratum a: (1,1) (2,3) (3,2): C - D = 1, 3 pairs untied -> contributes 1 / 3; stratum b: (5,1)
    # (6,1) (7,2): pair (5,6) tied in y; C - D = 2, sqrt(3 * 2); tau = (1 + 2) / (3 + sqrt(6))
    x = [1.0, 2.0, 3.0, 5.0, 6.0, 7.0]
    y = [1.0, 3.0, 2.0, 1.0, 1.0, 2.0]
    r = R.kendall_tau(x, y, n_boot=0, seed=0, strata=["a", "a", "a", "b", "b", "b"])
    assert r["tau"] == pytest.approx(3 / (3 + math.sqrt(6)))
    # beyond EXACT_MAX orderings: seeded Monte Carlo within strata, close to the exact share
    rng = np.random.default_rng(5)
    x = rng.normal(size=24)
    y = x + rng.normal(scale=2.0, size=24) + np.repeat([0.0, 5.0, 10.0], 8)
    strata = np.repeat(["a", "b", "c"], 8).tolist()
    a = R.kendall_tau(x, y, n_boot=0, seed=3, strata=strata)
    assert a == R.kendall_tau(x, y, n_boot=0, seed=3, strata=strata) and "Monte Carlo" in a["p_method"]
    # the statistic on 2000 within-stratum shuffles drawn here independently, each one computed by
    # scipy as sum_s (C_s - D_s) / sum_s sqrt(...) from per-stratum tau-b and its denominators
    members = [np.arange(8 * s, 8 * s + 8) for s in range(3)]
    shuffled = np.stack([np.concatenate([rng.permutation(y[m]) for m in members]) for _ in range(2000)])
    stat = R._strat_rows(x, shuffled, members)
    assert stat[0] == pytest.approx(_by_hand(x, shuffled[0], members))
    assert a["p"] == pytest.approx(np.mean(np.abs(stat) >= abs(a["tau"]) - 1e-12), abs=0.03)


def test_stratified_tau_bootstrap_over_domain_groups():
    doms = ["d1", "d2", "d3", "d4", "d5"]
    x = [0.1, 0.5, 0.2, 0.9, 0.7, 1.1, 1.6, 1.2, 1.9, 1.4]
    y = [0.0, 0.4, 0.3, 0.8, 0.9, 5.1, 5.5, 5.2, 5.8, 5.6]
    models = ["a"] * 5 + ["b"] * 5
    r = R.kendall_tau(x, y, n_boot=400, seed=2, groups=doms * 2, strata=models)
    assert r["units"] == 5 and r["ci"][0] - 1e-12 <= r["tau"] <= r["ci"][1] + 1e-12
    assert r == R.kendall_tau(x, y, n_boot=400, seed=2, groups=doms * 2, strata=models)
    with pytest.raises(UserError, match="strata has 2 entries"):
        R.kendall_tau(x, y, n_boot=0, seed=0, strata=["a", "b"])
