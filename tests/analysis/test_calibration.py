"""Calibration of the claim rule by simulation, small and seeded (the full measurement, >= 2000
studies per design from a run's own records, is benchmarks/test_calibration.py).

Two-sided, each check able to fail: the rule errs at about its nominal rate (not far below it),
decides when an effect is there, and covers the truth; negative controls show the checks catch a
rule that leaves out the shared-patient term and one that counts structural zeros as draws.
Monte-Carlo error is handled with exact Clopper-Pearson intervals."""

from __future__ import annotations

import numpy as np
import pytest

from thtl_bench.analysis import calibration, components, inference, rules
from thtl_bench.analysis import simulate as sim

# A data set like the smoke profile's: 100 patients (71 benign), 2 images each, 25 test patients.
POOL, TEST, IMAGES = (71, 29), (18, 7), (2, 2)
# Strongly systematic per-image errors (every run of an arm errs on much the same images), as the
# smoke records show (components.fit of their C1 moments).
SYSTEMATIC = sim.Components(patient=0.3, patient_arm=1.2, image_arm=4.0, train=0.4, base=(0.93, 0.7))


def _design(units: int) -> sim.Design:
    return sim.Design(pool=POOL, test=TEST, images=IMAGES, splits=units)



def _contains(r: dict, n: int, p: float, conf: float = 0.99) -> bool:
    lo, hi = sim.clopper_pearson(r["count"], n, conf)
    return lo <= p <= hi


@pytest.mark.parametrize("units", [3, 12])
def test_false_decisions_near_nominal_at_small_and_large_designs(units):
    r = sim.rates(_design(units), SYSTEMATIC, n_sim=400, seed=units)
    assert _contains(r["decisions"], 400, 0.05), r["decisions"]  # neither far above nor far below
    assert r["coverage"]["rate"] >= 0.90


def test_the_check_catches_a_rule_without_the_shared_patient_term():
    # Negative control: many splits of one data set, a plain replicate t (no shared term) errs
    # far above 5 %: the bound the rule passes above fails for it.
    r = sim.rates(_design(12), SYSTEMATIC, n_sim=400, seed=12)
    lo, _ = sim.clopper_pearson(r["plain_t_decisions"]["count"], 400, 0.99)
    assert lo > 0.08, r["plain_t_decisions"]


def test_power_and_coverage_when_the_effect_is_there():
    r = sim.rates(_design(8), SYSTEMATIC, effect_pp=-14.7, direction=-1, level=0.05 / 3, n_sim=200, seed=3)
    lo, _ = sim.clopper_pearson(r["reproduced"]["count"], 200, 0.99)
    assert lo > 0.6, r["reproduced"]
    assert _contains(r["coverage"], r["with_interval"], 0.95), r["coverage"]
    assert r["effect_pp"] == pytest.approx(-14.7, abs=1e-6)


def test_structural_zeros_keep_the_rule_calibrated():
    # 40 % of replicates predict alike (SWFT selecting its head-only step): conditioning on them
    # keeps the false-decision rate near 5 %; counting them as draws makes the test conservative.
    c = sim.Components(0.3, 1.0, 2.0, 0.4, identical=0.4, base=(0.9, 0.6))
    r = sim.rates(_design(8), c, n_sim=400, seed=21)
    assert _contains(r["decisions"], 400, 0.05), r["decisions"]
    rng = np.random.default_rng(21)
    tr = sim.truth(c, _design(8), "accuracy", 0.0)
    naive = 0
    for _ in range(400):
        st = sim.study(_design(8), c, tr, "accuracy", rng)
        ev = inference.from_arrays(st.values, st.splits, st.contrib, st.patients, st.pool)  # zeros as draws
        naive += rules.judge(rules.Hypothesis("s", "m", "directional", 1, ev), 0.05, margin=5.0, tol=1e-9) \
            in rules.DECISIVE
    assert sim.clopper_pearson(naive, 400, 0.99)[1] < 0.05


def test_simulation_truth_and_determinism():
    c = SYSTEMATIC
    tr = sim.truth(c, _design(3), "recall", 20.0)
    sd = c.total()
    assert sim.marginal(tr.mu[0][1], sd) - sim.marginal(tr.mu[1][1], sd) == pytest.approx(0.20, abs=1e-9)
    a = sim.rates(_design(3), c, n_sim=20, seed=5)
    assert a == sim.rates(_design(3), c, n_sim=20, seed=5)
    with pytest.raises(ValueError, match="leaves"):
        sim.truth(c, _design(3), "accuracy", 40.0)  # base 0.93 accuracy + 40 pp > 100 %


def test_components_fit_recovers_the_moments():
    # moments of a known world, measured with the records' estimators, then fitted back
    rng = np.random.default_rng(2)
    truth_c = sim.Components(0.5, 0.8, 2.5, 0.5, base=(0.9, 0.7))
    d = _design(30)
    tr = sim.truth(truth_c, d, "accuracy", 0.0)
    reps = sim.study(d, truth_c, tr, "accuracy", rng, keep_sums=True).replicates()
    m = components.moments(reps, [truth_c.base, truth_c.base])
    fitted, report = components.fit(m, _design(8), "accuracy", fit_splits=15, pools=3, maxiter=80)
    for key in ("within", "systematic"):
        t, f = report["match"][key]["target"], report["match"][key]["fitted"]
        assert abs(f - t) <= 0.25 * t, (key, t, f)
    assert fitted.label == "estimated" and fitted.base == truth_c.base


def test_calibration_verdict_is_two_sided():
    def cal(fd, cov, pw):
        row = {"decisions": {"rate": fd}, "coverage": {"rate": cov}}
        return {"settings": {"min_power": 0.8},
                "claims": [{"calibration": [row], "power": [{"setting": "estimated", "reproduced": {"rate": pw},
                                                             "coverage": {"rate": cov}}]}]}

    assert calibration.verdict(cal(0.05, 0.95, 0.9)) == {**calibration.verdict(cal(0.05, 0.95, 0.9)),
                                                         "calibrated": True, "powered": True}
    assert calibration.verdict(cal(0.01, 0.99, 0.9))["calibrated"] is False  # never errs: not calibrated
    assert calibration.verdict(cal(0.12, 0.88, 0.9))["calibrated"] is False
    assert calibration.verdict(cal(0.05, 0.95, 0.5))["powered"] is False
    assert calibration.verdict(cal(0.05, 0.95, 0.9))["coverage_at_effect"] == [0.95, 0.95]


def test_an_interaction_contrast_is_calibrated_too():
    w = (1.0, -1.0, -1.0, 1.0)  # C6: (tortuous - radial | vessel) - (tortuous - radial | lesion)
    c = sim.Components(0.3, 0.8, 2.0, 0.4, base=(0.9, 0.6))
    r = sim.rates(_design(6), c, n_sim=300, seed=31, weights=w)
    assert _contains(r["decisions"], 300, 0.05), r["decisions"]
    alt = sim.rates(_design(6), c, effect_pp=15.0, direction=1, n_sim=100, seed=32, weights=w)
    assert alt["effect_pp"] == pytest.approx(15.0) and alt["reproduced"]["rate"] > 0.3


def test_the_batched_studies_go_through_the_one_rule():
    # rule_batch on a batch of simulated studies equals from_arrays on each of them, and
    # judge_batch equals judge: the calibration's fast path is the production rule
    c = sim.Components(0.4, 0.9, 2.0, 0.5, identical=0.3, base=(0.9, 0.6))
    for metric, w in (("accuracy", (1.0, -1.0)), ("recall", (1.0, -1.0)), ("accuracy", (1.0, -1.0, -1.0, 1.0))):
        d = _design(5)
        tr = sim.truth(c, d, metric, 0.0, w)
        b = sim.study_batch(d, c, tr, metric, np.random.default_rng(4), 40)
        r = b.rule()
        rep, con = rules.judge_batch(1, r["estimate"], r["se"], r["df"], r["decidable"], 0.05, 1e-9)
        for i in range(40):
            ev = inference.from_arrays(b.values[i], b.unit_of, b.contrib[i], b.pid[i], b.pool,
                                       identical=b.identical[i], owner=b.owner)
            assert ev.estimate == pytest.approx(r["estimate"][i], abs=1e-9) and ev.decidable == bool(r["decidable"][i])
            if ev.decidable:
                assert (ev.se, ev.df) == pytest.approx((r["se"][i], r["df"][i]), rel=1e-9)
            v = rules.judge(rules.Hypothesis("s", "m", "directional", 1, ev), 0.05, margin=5.0, tol=1e-9)
            assert (v == rules.REPRODUCED, v == rules.CONTRADICTED) == (bool(rep[i]), bool(con[i]))
    with pytest.raises(ValueError, match="constant"):
        sim.study_batch(sim.Design(POOL, TEST, (1, 3), 3), c, sim.truth(c, _design(3), "accuracy", 0.0), "accuracy",
                        np.random.default_rng(0), 2)
