"""Replicate-level inference: per-patient sums and contributions, the t over split units with the
shared-patient term, its parts by hand, structural zeros, p-value / interval duality, the array
path the simulations use, BH and P(A > B)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from thtl_bench import metrics
from thtl_bench.analysis import inference as inf
from thtl_bench.analysis import simulate as sim


def _rep(key, groups, correct_a, correct_b, den=None, split=None, pool=None, labels=None):
    n = len(groups)
    return inf.replicate(key, groups, np.stack([correct_a, correct_b]).astype(float),
                         np.ones(n) if den is None else den, split=split, pool=pool, labels=labels)


# ----------------------------------------------------------------------------- data

def test_replicate_sums_per_patient():
    r = inf.replicate((3, 7), ["b", "a", "b", "a", "c"], np.array([[1, 0, 1, 1, 0], [0, 0, 1, 1, 1]]),
                      np.array([1, 1, 0, 1, 1]), labels=[1, 0, 1, 0, 0])
    assert r.key == (3, 7) and r.split == 7 and r.patients == ("a", "b", "c")
    assert r.num.tolist() == [[1, 2, 0], [1, 1, 1]]
    assert r.den.tolist() == [[2, 1, 1], [2, 1, 1]]
    assert r.strata.tolist() == [0, 1, 0]  # each patient's class
    assert r.value() == 0.0  # arm 0: 3/4, arm 1: 3/4
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


def test_contributions_are_the_delta_method():
    # accuracy difference on 4 patients (den = images): contributions by hand, they sum to 0, and
    # their variance / n is the patient-cluster variance of the difference
    r = inf.replicate((0, 0), ["p1", "p1", "p2", "p3", "p3", "p4"], [[1, 1, 0, 1, 0, 1], [1, 0, 0, 1, 1, 0]],
                      np.ones(6))
    m = np.array([4 / 6, 3 / 6])
    num = np.array([[2, 0, 1, 1], [1, 0, 2, 0]])
    den = np.array([2, 1, 2, 1])
    z = 100 * ((num[0] - m[0] * den) - (num[1] - m[1] * den)) / (6 / 4)
    assert r.contributions() == pytest.approx(z)
    assert r.contributions().sum() == pytest.approx(0.0, abs=1e-9)
    assert r.within_var() == pytest.approx((z**2).sum() / (4 * 3))
    assert not r.identical() and inf.replicate((0, 0), ["a", "b"], [[1, 0], [1, 0]], [1, 1]).identical()


# ----------------------------------------------------------------------------- the rule by hand

def test_diagonal_replicates_give_the_replicate_t_plus_the_shared_term():
    # three replicates on three splits whose test sets share no patient: no shared term, so the
    # interval is exactly the replicate-level t (2 df) over the per-replicate differences
    reps = [_rep((0, 0), ["a", "b", "c", "d"], [1, 1, 0, 1], [0, 1, 0, 1], pool=100),
            _rep((1, 1), ["e", "f", "g", "h"], [1, 1, 1, 1], [0, 1, 0, 1], pool=100),
            _rep((2, 2), ["i", "j", "k", "l"], [1, 1, 0, 0], [1, 1, 0, 1], pool=100)]
    d = np.array([25.0, 50.0, -25.0])
    ev = inf.paired(reps)
    assert ev.values[0] == pytest.approx(tuple(d)) and ev.estimate == pytest.approx(d.mean())
    assert ev.se_shared == 0.0 and ev.pairs == 0
    assert ev.se == pytest.approx(d.std(ddof=1) / math.sqrt(3)) and ev.df == pytest.approx(2.0)
    h = sps.t.ppf(0.975, 2) * ev.se
    assert ev.interval(0.95) == pytest.approx((d.mean() - h, d.mean() + h))
    assert ev.improve == pytest.approx(2 / 3)


def test_shared_patient_term_by_hand():
    # patient "a" is in both test sets; its (centred) contributions multiply
    contrib = np.array([3.0, -3.0, 2.0, -2.0])
    pids = np.array(["a", "b", "a", "c"])
    s2, count, shared, df = inf.shared_patient_variance(contrib, pids)
    assert (s2, count, shared) == (6.0, 1, 1) and df == 1.0
    # a negative mean product is no variance: clipped at 0
    assert inf.shared_patient_variance(np.array([3.0, -2.0]), np.array(["a", "a"]))[0] == 0.0
    assert inf.shared_patient_variance(np.array([1.0, 2.0]), np.array(["a", "b"]))[:3] == (0.0, 0, 0)


def test_the_shared_term_enters_the_variance_once():
    rng = np.random.default_rng(4)
    c = sim.Components(0.5, 1.0, 1.5, 0.3, base=(0.85, 0.6))
    d = sim.Design(pool=(30, 20), test=(9, 6), images=(2, 3), splits=6)
    st = sim.study(d, c, sim.truth(c, d, "accuracy", 0.0), "accuracy", rng, keep_sums=True)
    ev = inf.paired(st.replicates())
    assert ev.pairs > 0 and ev.se_shared > 0
    assert ev.se**2 == pytest.approx(ev.se_units**2 + ev.se_shared**2)
    assert ev.se_shared**2 == pytest.approx(ev.sigma_sys**2 / 50)
    # the array path the simulations use is the same rule
    arr = st.evidence()
    assert (arr.estimate, arr.se, arr.df) == pytest.approx((ev.estimate, ev.se, ev.df))


def test_replicates_on_one_split_form_one_unit():
    # two seeds on split 0, one on split 1: the estimate is the mean of the two unit means
    reps = [_rep((0, 0), ["a", "b"], [1, 1], [0, 1], pool=10), _rep((1, 0), ["a", "b"], [1, 0], [0, 0], pool=10),
            _rep((0, 1), ["c", "d"], [0, 1], [0, 1], pool=10)]
    ev = inf.paired(reps)
    assert ev.units == 2 and ev.n == (3,)
    assert ev.estimate == pytest.approx(np.mean([np.mean([50.0, 50.0]), 0.0]))


def test_one_split_is_not_decidable():
    reps = [_rep((s, 0), ["a", "b", "c"], [1, 1, 0], [0, 1, 0], pool=10) for s in range(3)]
    ev = inf.paired(reps)
    assert not ev.decidable and ev.interval(0.95) is None and ev.p_two_sided() == 1.0


def test_identical_replicates_are_structural_zeros():
    same = _rep((0, 0), ["a", "b", "c"], [1, 0, 1], [1, 0, 1], pool=30)
    live = [_rep((1, 1), ["d", "e", "f"], [1, 1, 1], [0, 1, 0], pool=30),
            _rep((2, 2), ["g", "h", "i"], [1, 1, 0], [1, 0, 0], pool=30)]
    ev = inf.paired([same, *live])
    d = np.array([200 / 3, 100 / 3])
    assert ev.estimate == pytest.approx(d.sum() / 3)  # the zero counts in the estimate ...
    assert ev.se == pytest.approx((2 / 3) * d.std(ddof=1) / math.sqrt(2))  # ... not in the variance
    assert ev.df == pytest.approx(1.0) and "structural zeros" in ev.note
    one_live = inf.paired([same, live[0]])
    assert not one_live.decidable  # one differing unit: no variance to judge it by
    all_same = inf.paired([same, _rep((1, 1), ["d"], [1], [1], pool=30)])
    assert all_same.decidable and all_same.se == 0.0 and all_same.interval(0.95) == (0.0, 0.0)


def test_undefined_replicates_are_dropped():
    # recall with no malignant image in one replicate's test set: undefined there
    pos = inf.replicate((0, 0), ["a", "b"], [[1, 0], [0, 0]], [[1, 1], [1, 1]], pool=10)
    none = inf.replicate((1, 1), ["c", "d"], [[0, 0], [0, 0]], [[0, 0], [0, 0]], pool=10)
    other = inf.replicate((2, 2), ["e", "f"], [[1, 1], [0, 1]], [[1, 1], [1, 1]], pool=10)
    ev = inf.paired([pos, none, other])
    assert ev.dropped == ((1, 1),) and ev.n == (2,)
    with pytest.raises(ValueError, match="no replicate"):
        inf.paired([none])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_p_values_are_dual_to_the_interval(seed):
    rng = np.random.default_rng(seed)
    c = sim.Components(0.4, 0.8, 1.2, 0.4, base=(0.8, 0.6))
    d = sim.Design(pool=(40, 20), test=(10, 5), images=(1, 3), splits=4)
    ev = sim.study(d, c, sim.truth(c, d, "accuracy", 5.0), "accuracy", rng).evidence()
    for conf in (0.9, 0.95, 0.99):
        lo, hi = ev.interval(conf)
        assert ev.p_two_sided(lo) == pytest.approx(1 - conf) and ev.p_two_sided(hi) == pytest.approx(1 - conf)
        assert ev.p_above(lo) == pytest.approx((1 - conf) / 2)
    assert ev.p_two_sided(ev.estimate) == pytest.approx(1.0)


def test_input_order_does_not_matter():
    rng = np.random.default_rng(7)
    c = sim.Components(0.4, 0.8, 1.2, 0.4, base=(0.8, 0.6))
    d = sim.Design(pool=(40, 20), test=(10, 5), images=(1, 3), splits=5)
    reps = sim.study(d, c, sim.truth(c, d, "accuracy", 0.0), "accuracy", rng, keep_sums=True).replicates()
    a, b = inf.paired(reps), inf.paired(reps[::-1])
    assert (a.estimate, a.se, a.df) == (b.estimate, b.se, b.df)


def test_paired_values_is_the_replicate_t():
    ev = inf.paired_values([80.0, 82.0, None, 90.0], [70.0, 75.0, 60.0, 71.0])
    d = np.array([10.0, 7.0, 19.0])
    assert ev.estimate == pytest.approx(d.mean()) and ev.df == 2.0
    assert ev.se == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    with pytest.raises(ValueError):
        inf.paired_values([None], [1.0])


def test_bh_by_hand_and_none_passes():
    assert inf.bh([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.04, 0.04])
    assert inf.bh([None]) == [None]


def test_aligned_replicate_from_predictions():
    a = {"ids": ["x2", "x1", "x3"], "patients": ["p2", "p1", "p1"], "labels": [1, 0, 0], "preds": [1, 1, 0]}
    b = {"ids": ["x1", "x2", "x3"], "patients": ["p1", "p2", "p1"], "labels": [0, 1, 0], "preds": [0, 0, 0]}
    r = inf.aligned_replicate((0, 0), "accuracy", [a, b], pool=12)
    assert r.patients == ("p1", "p2") and r.pool == 12
    assert r.num.tolist() == [[1, 1], [2, 0]] and r.value() == pytest.approx(100 * (2 / 3 - 2 / 3))
    with pytest.raises(ValueError, match="differ"):
        inf.aligned_replicate((0, 0), "accuracy", [a, {**b, "labels": [1, 1, 0]}])


def test_an_interaction_is_a_contrast_of_four_arms():
    # (A - B) - (C - D) on one test set: value and contributions by the weights (+1, -1, -1, +1)
    groups = ["a", "a", "b", "c"]
    arms = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], float)
    r = inf.replicate((0, 0), groups, arms, np.ones(4), pool=20)
    r4 = inf.Replicate(r.key, r.split, r.patients, r.num, r.den, r.pool, r.strata, (1.0, -1.0, -1.0, 1.0))
    m = 100 * arms.sum(1) / 4
    assert r4.value() == pytest.approx(m[0] - m[1] - m[2] + m[3])
    ab = inf.replicate((0, 0), groups, arms[:2], np.ones(4)).contributions()
    cd = inf.replicate((0, 0), groups, arms[2:], np.ones(4)).contributions()
    assert r4.contributions() == pytest.approx(ab - cd)
    assert not r4.identical()
    with pytest.raises(ValueError, match="contrasts"):
        inf.paired([r4, inf.replicate((1, 1), ["d", "e"], [[1, 0], [0, 0]], [1, 1], pool=20)])
