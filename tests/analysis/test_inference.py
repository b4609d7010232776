"""Replicate-level inference: per-patient sums, the two-level bootstrap, the t part, p-value
duality, the unpaired (compare) version, BH and P(A > B), on hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from thtl_bench import metrics
from thtl_bench.analysis import inference as inf


def _rep(key, groups, correct_a, correct_b, den=None, split=None):
    n = len(groups)
    return inf.replicate(key, groups, np.stack([correct_a, correct_b]).astype(float),
                         np.ones(n) if den is None else den, split=split)


def _random_reps(rng, n_reps=4, splits=1, patients=12, p=(0.7, 0.8)):
    reps = []
    for k in range(splits):
        counts = rng.integers(1, 5, patients)
        groups = np.repeat([f"k{k}p{j}" for j in range(patients)], counts)
        for s in range(n_reps):
            n = len(groups)
            reps.append(_rep((s, k), groups, rng.random(n) < p[0], rng.random(n) < p[1]))
    return reps


# ----------------------------------------------------------------------------- data

def test_replicate_sums_per_patient():
    r = inf.replicate((3, 7), ["b", "a", "b", "a", "c"], np.array([[1, 0, 1, 1, 0], [0, 0, 1, 1, 1]]),
                      np.array([1, 1, 0, 1, 1]))
    assert r.key == (3, 7) and r.split == 7 and r.patients == ("a", "b", "c")
    assert r.num.tolist() == [[1, 2, 0], [1, 1, 1]]
    assert r.den.tolist() == [[2, 1, 1], [2, 1, 1]]
    # arm 0: 3/4, arm 1: 3/4 -> difference 0 pp
    assert r.value() == 0.0
    assert inf.replicate((0, 0), [1, 1, 2], [1, 0, 1], [1, 1, 1]).value() == pytest.approx(100 * 2 / 3)
    with pytest.raises(ValueError, match="patient ids"):
        inf.replicate((0, 0), ["a", "b"], [1, 0, 1], [1, 1, 1])


def test_metric_parts_are_the_metrics():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    probs = rng.random((40, 2))
    preds = probs.argmax(1)
    m = metrics.binary(labels, probs, positive=1)
    for name in inf.RATIO_METRICS:
        num, den = inf.metric_parts(name, labels, preds, positive=1)
        assert num.sum() / den.sum() == pytest.approx(m[name]), name
    with pytest.raises(ValueError, match="not a ratio"):
        inf.metric_parts("auc", labels, preds)


# ----------------------------------------------------------------------------- paired

def test_paired_estimate_t_part_and_improvement_by_hand():
    g = ["p1", "p1", "p2", "p3"]
    reps = [_rep((0, 0), g, [1, 1, 1, 0], [1, 0, 1, 0]),   # 75 - 50 = +25
            _rep((1, 0), g, [1, 1, 0, 0], [1, 1, 0, 0]),   # 0 (a tie)
            _rep((2, 0), g, [0, 1, 0, 0], [1, 1, 1, 0])]   # 25 - 75 = -50
    ev = inf.paired(reps, n_boot=400, seed=1)
    d = np.array([25.0, 0.0, -50.0])
    assert ev.estimate == pytest.approx(d.mean())
    assert ev.values == ((25.0, 0.0, -50.0),)
    assert ev.se_replicates == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    assert ev.t == (pytest.approx(d.mean()), max(ev.se_replicates, ev.se_bootstrap), 2.0)
    assert ev.improve == pytest.approx((1 + 0.5 + 0) / 3)
    assert ev.decidable and ev.n == (3,)
    assert inf.prob_improvement([0.8, 0.5, 0.2], [0.7, 0.5, 0.3]) == pytest.approx(0.5)


def test_paired_is_deterministic_and_order_free():
    reps = _random_reps(np.random.default_rng(2))
    a = inf.paired(reps, n_boot=300, seed=5)
    b = inf.paired(reps[::-1], n_boot=300, seed=5)
    assert a.boot.tobytes() == b.boot.tobytes() and a.t == b.t
    c = inf.paired(reps, n_boot=300, seed=6)
    assert c.boot.tobytes() != a.boot.tobytes()


def test_one_replicate_is_not_decidable():
    (rep,) = _random_reps(np.random.default_rng(3), n_reps=1)
    ev = inf.paired([rep], n_boot=200, seed=0)
    assert not ev.decidable and ev.t is None and ev.se_replicates is None
    assert ev.interval(0.95) is not None  # patient-only bootstrap: reported, never decides


def test_patients_are_the_clusters():
    # Doubling every image of every patient changes no patient's ratio: same draws, same bytes.
    rng = np.random.default_rng(4)
    reps = _random_reps(rng, n_reps=3)
    doubled = [inf.Replicate(r.key, r.split, r.patients, 2 * r.num, 2 * r.den) for r in reps]
    assert inf.paired(reps, n_boot=300, seed=0).boot.tobytes() == inf.paired(doubled, n_boot=300, seed=0).boot.tobytes()


def test_replicates_on_one_split_share_the_patient_draw():
    # Two identical replicates on ONE split carry no more information than one: the bootstrap
    # spread must not shrink. Declared on two splits (independent test sets) it shrinks: of the
    # two drawn replicates, n come from split x, with n ~ Bin(2, 1/2), and the variance is
    # V * E[(n/2)^2 + (1 - n/2)^2] = 0.75 V (a replicate drawn twice reuses its split's patients).
    rng = np.random.default_rng(5)
    counts = rng.integers(1, 4, 30)
    g = np.repeat([f"p{j}" for j in range(30)], counts)
    n = len(g)
    ca, cb = rng.random(n) < 0.6, rng.random(n) < 0.8
    one = [_rep((0, 0), g, ca, cb)]
    same = [_rep((0, 0), g, ca, cb), _rep((1, 0), g, ca, cb)]
    apart = [_rep((0, 0), g, ca, cb, split="x"), _rep((1, 0), g, ca, cb, split="y")]
    sd = {k: inf.paired(v, n_boot=4000, seed=0).se_bootstrap for k, v in
          {"one": one, "same": same, "apart": apart}.items()}
    assert sd["same"] == pytest.approx(sd["one"], rel=0.06)
    assert sd["apart"] == pytest.approx(sd["one"] * math.sqrt(0.75), rel=0.06)


def test_undefined_replicates_are_dropped():
    g = ["p1", "p2"]
    ok = inf.replicate((0, 0), g, [[1, 0], [0, 0]], [1, 1])
    empty = inf.replicate((1, 0), g, [[0, 0], [0, 0]], [0, 0])  # recall with no positive: 0/0
    ev = inf.paired([ok, empty, ok], n_boot=100, seed=0)
    assert ev.dropped == ((1, 0),) and ev.n == (2,)


# ----------------------------------------------------------------------------- duality

@pytest.mark.parametrize("seed", [0, 1])
def test_p_values_are_dual_to_the_hull(seed):
    ev = inf.paired(_random_reps(np.random.default_rng(seed), n_reps=4, splits=2), n_boot=500, seed=seed)
    for theta in (ev.estimate - 15, ev.estimate - 5, ev.estimate + 3, 0.0):
        p = ev.p_two_sided(theta)
        if 1e-9 < p < 1:
            lo, hi = ev.interval(1 - p)
            assert min(abs(lo - theta), abs(hi - theta)) < 1e-7
        for c in (0.5, 0.8, 0.9, 0.95, 0.99):
            lo, hi = ev.interval(c)
            assert (lo > theta or hi < theta) == (p < 1 - c)
    # one-sided: the lower end of the (1 - 2a) interval is above theta iff p_above(theta) < a
    theta = ev.estimate - 4
    a = ev.p_above(theta)
    if 0 < a < 0.5:
        assert ev.interval(1 - 2 * a)[0] == pytest.approx(theta, abs=1e-7)


def test_inverse_percentile_matches_numpy():
    x = np.sort(np.random.default_rng(0).normal(size=101))
    for q in (0.013, 0.25, 0.5, 0.9):
        theta = float(np.percentile(x, 100 * q))
        lo, hi = inf._inv_percentile(x, theta)
        assert lo == pytest.approx(q) and hi == pytest.approx(q)
    assert inf._inv_percentile(x, -99) == (0.0, 0.0) and inf._inv_percentile(x, 99) == (1.0, 1.0)
    ties = np.array([-1.0, 0.0, 0.0, 0.0, 2.0])
    assert inf._inv_percentile(ties, 0.0) == (0.25, 0.75)


# ----------------------------------------------------------------------------- unpaired

def test_welch_matches_scipy():
    a, b = np.array([0.1, 0.4, 0.35, 0.2]), np.array([0.5, 0.45, 0.8])
    m, se, df = inf.welch(a, b)
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert m == pytest.approx(b.mean() - a.mean())
    assert 2 * sps.t.sf(abs(m / se), df) == pytest.approx(ref.pvalue)
    ev = inf.unpaired_values(list(a), list(b))
    assert ev.p_two_sided() == pytest.approx(ref.pvalue) and ev.boot is None


def test_unpaired_stratifies_by_split_when_the_designs_match():
    rng = np.random.default_rng(7)
    a = _random_reps(rng, n_reps=3, splits=2)
    b = _random_reps(rng, n_reps=3, splits=2)
    ev = inf.unpaired(a, b, n_boot=300, seed=0)
    va, vb = np.array(ev.values[0]), np.array(ev.values[1])
    assert ev.stratified and ev.estimate == pytest.approx(vb.mean() - va.mean())
    # by hand: per split k, w = 1/2, var = sum w^2 (s2_A/3 + s2_B/3)
    sa = [np.array([r.value() for r in inf._order(a) if r.split == k]) for k in (0, 1)]
    sb = [np.array([r.value() for r in inf._order(b) if r.split == k]) for k in (0, 1)]
    var = sum(0.25 * (x.var(ddof=1) / 3 + y.var(ddof=1) / 3) for x, y in zip(sa, sb, strict=True))
    assert ev.se_replicates == pytest.approx(math.sqrt(var))
    assert not inf.unpaired(a, b[:-1], n_boot=100, seed=0).stratified  # designs differ: one stratum


def test_unpaired_shares_the_patient_draw():
    # The same single replicate on both sides: every resample differs by exactly 0.
    (r,) = _random_reps(np.random.default_rng(8), n_reps=1)
    ev = inf.unpaired([r], [r], n_boot=200, seed=0)
    assert np.all(ev.boot == 0) and not ev.decidable
    with pytest.raises(ValueError, match="same number of arms"):
        inf.unpaired([r], [inf.Replicate(r.key, r.split, r.patients, r.num[:1], r.den[:1])], n_boot=10, seed=0)


def test_bh_by_hand_and_none_passes():
    # sorted 0.01, 0.02, 0.03, 0.5 (m = 4): 0.04, 0.04, 0.04, 0.5
    assert inf.bh([0.03, None, 0.01, 0.5, 0.02]) == [pytest.approx(0.04), None, pytest.approx(0.04),
                                                      pytest.approx(0.5), pytest.approx(0.04)]
    assert inf.bh([None]) == [None]


def test_aligned_replicate_from_predictions():
    a = {"ids": ["x2", "x1", "x3"], "patients": ["p2", "p1", "p1"], "labels": [1, 0, 1], "preds": [1, 0, 0]}
    b = {"ids": ["x1", "x3", "x2"], "patients": ["p1", "p1", "p2"], "labels": [0, 1, 1], "preds": [1, 1, 1]}
    r = inf.aligned_replicate((0, 4), "recall", [a, b])
    # recall A: x2 hit, x3 missed -> 50 %; B: both hit -> 100 %; per patient: p1 {x1, x3}, p2 {x2}
    assert r.split == 4 and r.patients == ("p1", "p2") and r.value() == pytest.approx(-50.0)
    assert r.num.tolist() == [[0, 1], [1, 1]] and r.den.tolist() == [[1, 1], [1, 1]]
    p = inf.aligned_replicate((0, 4), "precision", [a, b])  # prediction-dependent denominators
    assert p.den.tolist() == [[0, 1], [2, 1]] and p.value() == pytest.approx(100 - 100 * 2 / 3)
    with pytest.raises(ValueError, match="differ"):
        inf.aligned_replicate((0, 4), "accuracy", [a, {**b, "labels": [1, 1, 1]}])
    with pytest.raises(ValueError, match="twice"):
        inf.aligned_replicate((0, 4), "accuracy", [{**a, "ids": ["x1", "x1", "x3"]}])
