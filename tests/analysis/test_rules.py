"""Verdict rules: the interval rule with its tolerance, TOST, Holm step-down levels on a hand
example, missing / under-trained inputs (with and without the fit gate), judge and the plan hash."""

from __future__ import annotations

import pytest
from scipy import stats as sps

from thtl_bench.analysis import rules
from thtl_bench.analysis.inference import Evidence

TOL, MARGIN = 1e-9, 5.0


def _ev(mean: float, se: float, df: float = 9.0, n: int = 10) -> Evidence:
    """Evidence with p-values and intervals known in closed form."""
    return Evidence(estimate=mean, n=(n,), units=n, se=se, df=df, decidable=True)


def _p(mean, se, df=9.0):
    return 2 * sps.t.sf(abs(mean / se), df)


# ----------------------------------------------------------------------------- the interval rule

def test_directional_rule_and_tolerance():
    v = rules.interval_verdict
    assert v("directional", -1, (-20.0, -4.4e-16), MARGIN, TOL) == rules.INCONCLUSIVE  # the measured defect
    assert v("directional", -1, (-20.0, -1e-6), MARGIN, TOL) == rules.REPRODUCED
    assert v("directional", -1, (2.0, 9.0), MARGIN, TOL) == rules.CONTRADICTED
    assert v("directional", +1, (4.4e-16, 9.0), MARGIN, TOL) == rules.INCONCLUSIVE
    assert v("directional", +1, (0.5, 9.0), MARGIN, TOL) == rules.REPRODUCED
    assert v("directional", +1, (-3.0, 4.0), MARGIN, TOL) == rules.INCONCLUSIVE
    with pytest.raises(ValueError, match="direction"):
        v("directional", 0, (1.0, 2.0), MARGIN, TOL)
    with pytest.raises(ValueError, match="unknown claim kind"):
        v("bigger", 1, (1.0, 2.0), MARGIN, TOL)


def test_equivalence_rule():
    v = rules.interval_verdict
    assert v("equivalence", 0, (-4.0, 4.9), MARGIN, TOL) == rules.REPRODUCED
    assert v("equivalence", 0, (1.0, 3.0), MARGIN, TOL) == rules.REPRODUCED  # significant but small
    assert v("equivalence", 0, (-4.0, 5.0), MARGIN, TOL) == rules.INCONCLUSIVE  # touches the margin
    assert v("equivalence", 0, (5.5, 9.0), MARGIN, TOL) == rules.CONTRADICTED
    assert v("equivalence", 0, (-19.0, -5.1), MARGIN, TOL) == rules.CONTRADICTED
    assert v("equivalence", 0, (-6.0, 4.5), MARGIN, TOL) == rules.UNDERPOWERED  # 10.5 > 2 x 5
    assert v("equivalence", 0, (-6.0, 3.0), MARGIN, TOL) == rules.INCONCLUSIVE


def test_tost_decides_on_the_one_minus_two_alpha_interval():
    ev = _ev(1.0, 1.5)
    (row,) = rules.decide([rules.Hypothesis("C5", "m", "equivalence", 0, ev)], family=[("C5", "m")],
                          alpha=0.05, margin=MARGIN, tol=TOL)
    assert row["confidence"] == pytest.approx(0.90)
    q = sps.t.ppf(0.95, 9)
    assert row["interval_pp"] == [pytest.approx(1.0 - q * 1.5), pytest.approx(1.0 + q * 1.5)]
    assert row["verdict"] == rules.REPRODUCED
    # the TOST p: the larger one-sided p for -5 and +5
    tost = max(sps.t.sf(6.0 / 1.5, 9), sps.t.cdf(-4.0 / 1.5, 9))
    assert row["p"] == pytest.approx(tost)


# ----------------------------------------------------------------------------- Holm

def test_holm_adjusted_by_hand():
    # sorted 0.005 (x4 = .02), 0.01 (x3 = .03), 0.03 (x2 = .06), 0.04 (x1 = .04 -> running max .06)
    assert rules.holm_adjusted([0.01, 0.04, 0.03, 0.005]) == [pytest.approx(v) for v in (0.03, 0.06, 0.06, 0.02)]


def test_holm_step_down_levels_on_a_hand_example():
    # Four primary hypotheses, alpha = .05, m = 4, p = 1e-6 (H1), .01 (H2), .03 (H3), .004 (H4).
    # Ranks H1, H4, H2, H3 at levels .05/4, .05/3, .05/2, .05/1: each p is below its level,
    # so Holm rejects all four.
    se = 1.0
    t = {p: sps.t.isf(p / 2, 9) for p in (1e-6, 0.01, 0.03, 0.004)}
    hyps = [rules.Hypothesis(f"H{i}", "m", "directional", -1, _ev(-t[p] * se, se))
            for i, p in enumerate((1e-6, 0.01, 0.03, 0.004), 1)]
    fam = [(h.id, "m") for h in hyps]
    rows = {r["id"]: r for r in rules.decide(hyps, family=fam, alpha=0.05, margin=MARGIN, tol=TOL)}
    assert [rows[h]["rank"] for h in ("H1", "H2", "H3", "H4")] == [1, 3, 4, 2]
    assert [rows[h]["level"] for h in ("H1", "H4", "H2", "H3")] == [pytest.approx(v) for v in
                                                                   (0.0125, 0.05 / 3, 0.025, 0.05)]
    assert all(r["verdict"] == rules.REPRODUCED for r in rows.values())
    # The interval of each is at 1 - its level: H3 (p .03) at 95 % just excludes 0.
    assert rows["H3"]["confidence"] == pytest.approx(0.95) and rows["H3"]["interval_pp"][1] < 0
    # Raise H2's p to .04: rank 3 has level .025 -> not rejected: Holm stops; H2 and H3 (the
    # later one) are judged at .025 and both are inconclusive; H3's 97.5 % interval contains 0.
    t[0.04] = sps.t.isf(0.02, 9)
    hyps[1] = rules.Hypothesis("H2", "m", "directional", -1, _ev(-t[0.04], se))
    rows = {r["id"]: r for r in rules.decide(hyps, family=fam, alpha=0.05, margin=MARGIN, tol=TOL)}
    assert [rows[h]["level"] for h in ("H1", "H4", "H3", "H2")] == [pytest.approx(v) for v in
                                                                   (0.0125, 0.05 / 3, 0.025, 0.025)]
    assert [rows[h]["verdict"] for h in ("H1", "H4", "H3", "H2")] == [rules.REPRODUCED] * 2 + [rules.INCONCLUSIVE] * 2
    lo, hi = rows["H2"]["interval_pp"]
    assert lo < 0 < hi
    # Decisions agree with the Holm adjusted p-values.
    assert all((r["p_adjusted"] < 0.05) == (r["verdict"] in rules.DECISIVE) for r in rows.values())


def test_family_members_without_data_count_and_others_are_exploratory():
    strong = _ev(-10.0, 1.0)
    hyps = [rules.Hypothesis("C1", "resnet18", "directional", -1, strong),
            rules.Hypothesis("C1", "vgg16", "directional", -1, strong)]
    fam = [("C1", "resnet18"), ("C1", "resnet50")]
    rows = rules.decide(hyps, family=fam, alpha=0.05, margin=MARGIN, tol=TOL)
    by = {(r["id"], r["model"]): r for r in rows}
    assert len(rows) == 3 and by[("C1", "resnet50")]["note"] == "not evaluated: no records"
    assert by[("C1", "resnet18")]["m"] == 2 and by[("C1", "resnet18")]["level"] == pytest.approx(0.025)
    assert by[("C1", "resnet50")]["p"] == 1.0 and by[("C1", "resnet50")]["verdict"] == rules.INCONCLUSIVE
    ex = by[("C1", "vgg16")]
    assert ex["family"] == "exploratory" and ex["level"] == 0.05 and "exploratory" in ex["note"]
    with pytest.raises(ValueError, match="twice"):
        rules.decide(hyps, family=fam + fam[:1], alpha=0.05, margin=MARGIN, tol=TOL)


def test_under_trained_and_single_replicate_are_not_decided():
    strong = _ev(-10.0, 1.0)
    one = Evidence(estimate=-10.0, n=(1,), units=1, se=None, df=None, decidable=False)
    hyps = [rules.Hypothesis("C1", "a", "directional", -1, strong, undertrained=("thtl_last",)),
            rules.Hypothesis("C2", "a", "directional", +1, one),
            rules.Hypothesis("C3", "a", "directional", -1, None, note="no ok records for swft"),
            rules.Hypothesis("C4", "a", "directional", -1, strong)]
    rows = rules.decide(hyps, family=[(h.id, "a") for h in hyps], alpha=0.05, margin=MARGIN, tol=TOL)
    v = {r["id"]: r for r in rows}
    assert v["C1"]["verdict"] == rules.UNDERTRAINED and "thtl_last" in v["C1"]["note"]
    assert v["C1"]["interval_pp"] is not None  # still reported
    assert v["C2"]["verdict"] == rules.INCONCLUSIVE and "1 split(s)" in v["C2"]["note"]
    assert v["C3"]["verdict"] == rules.INCONCLUSIVE and v["C3"]["note"] == "no ok records for swft"
    # C4 ranks first (the others have p = 1) and is judged at .05 / 4.
    assert v["C4"]["rank"] == 1 and v["C4"]["level"] == pytest.approx(0.0125) and v["C4"]["verdict"] == rules.REPRODUCED
    assert all(v[c]["basis"] == "none" for c in ("C1", "C2", "C3")) and v["C4"]["basis"] == "interval"
    (few,) = rules.decide([hyps[3]], family=[], alpha=0.05, margin=MARGIN, tol=TOL, min_replicates=20)
    assert few["verdict"] == rules.INCONCLUSIVE and "at least 20" in few["note"]
    # without the gate, the under-trained claim is decided on its interval (the report shows both)
    free = {r["id"]: r for r in rules.decide(hyps, family=[(h.id, "a") for h in hyps], alpha=0.05,
                                              margin=MARGIN, tol=TOL, gate=False)}
    assert free["C1"]["verdict"] == rules.REPRODUCED and free["C2"]["verdict"] == rules.INCONCLUSIVE


def test_judge_is_decide_for_a_family_of_one():
    for ev, kind, direction in ((_ev(-3.0, 1.0), "directional", -1), (_ev(-2.0, 1.0), "directional", -1),
                                (_ev(1.0, 1.5), "equivalence", 0), (_ev(9.0, 1.0), "directional", -1)):
        h = rules.Hypothesis("x", "m", kind, direction, ev)
        (row,) = rules.decide([h], family=[("x", "m")], alpha=0.05, margin=MARGIN, tol=TOL)
        assert rules.judge(h, 0.05, margin=MARGIN, tol=TOL) == row["verdict"]


# ----------------------------------------------------------------------------- plan

def _plan(**kw):
    base = dict(alpha=0.05, margin_pp=5.0, tolerance_pp=1e-9, family=[("C1", "resnet18"), ("C5", "resnet18")],
                min_replicates=2, fit_gate={"min_train_accuracy": 0.95, "min_kappa": 0.25, "require_convergence": True},
                claims=[{"id": "C1", "metric": "accuracy", "direction": -1}])
    base.update(kw)
    return rules.plan(**base)


def test_plan_hash_sees_every_number_and_is_stable():
    h = rules.plan_hash(_plan())
    assert h == rules.plan_hash(_plan()) and len(h) == 12
    assert h == rules.plan_hash(_plan(claims=[{"direction": -1, "metric": "accuracy", "id": "C1"}]))
    for change in (dict(margin_pp=4.0), dict(alpha=0.1), dict(family=[("C1", "resnet18")]), dict(min_replicates=3),
                   dict(tolerance_pp=0.0), dict(claims=[{"id": "C1", "metric": "recall", "direction": -1}]),
                   dict(fit_gate={"min_train_accuracy": 0.95, "min_kappa": 0.3, "require_convergence": True})):
        assert rules.plan_hash(_plan(**change)) != h, change


def test_rules_markdown_states_the_numbers():
    text = rules.rules_markdown(_plan(margin_pp=4.0))
    assert "margin 4 pp" in text and "C1/resnet18, C5/resnet18" in text and "m = 2" in text
    assert rules.plan_hash(_plan(margin_pp=4.0)) in text and "sigma_sys^2 / N" in text and "0.25" in text


# ----------------------------------------------------------------------------- few failing replicates

def _gated(all_mean: float, kept_mean: float, of: int, kept: int, share: float | None, family=True):
    """One directional claim (direction -1) with `of` replicates of which `of - kept` fail the gate:
    all replicates give `all_mean` (se 1), the passing ones `kept_mean` (se 1)."""
    h = rules.Hypothesis("C1", "a", "directional", -1, _ev(all_mean, 1.0, of - 1.0, of), undertrained=("thtl_last",))
    p = rules.Hypothesis("C1", "a", "directional", -1, _ev(kept_mean, 1.0, kept - 1.0, kept))
    (row,), (free,) = rules.decide_gated([h], [p], max_excluded_share=share, family=[("C1", "a")] if family else [],
                                         alpha=0.05, margin=MARGIN, tol=TOL)
    return row, free


def test_few_failing_replicates_decide_on_the_others_when_the_ungated_verdict_agrees():
    row, free = _gated(-10.0, -9.0, of=20, kept=19, share=0.1)
    assert row["verdict"] == free["verdict"] == rules.REPRODUCED
    assert row["per_protocol"] == {"kept": 19, "of": 20, "stands": True}
    assert row["estimate_pp"] == -9.0 and "19 of 20 replicates" in row["note"]  # the passing replicates' interval
    row, free = _gated(-1.0, -0.5, of=20, kept=18, share=0.1)  # two of twenty: still at most 10 %
    assert row["verdict"] == free["verdict"] == rules.INCONCLUSIVE and row["basis"] == "interval"
    assert row["per_protocol"]["stands"]


def test_a_verdict_that_hangs_on_the_failing_replicates_is_not_decided():
    # the passing replicates reproduce, all replicates do not: the failing one would decide it
    row, free = _gated(-1.0, -10.0, of=20, kept=19, share=0.1)
    assert free["verdict"] == rules.INCONCLUSIVE and row["verdict"] == rules.UNDERTRAINED
    assert row["per_protocol"] == {"kept": 19, "of": 20, "stands": False}
    assert "hangs on the failing replicates" in row["note"] and row["estimate_pp"] == -1.0
    # and the other way round: all replicates reproduce, the passing ones do not
    row, free = _gated(-10.0, -1.0, of=20, kept=19, share=0.1, family=False)
    assert free["verdict"] == rules.REPRODUCED and row["verdict"] == rules.UNDERTRAINED


def test_too_many_failing_replicates_or_no_share_withhold_as_before():
    for of, kept, share in ((20, 17, 0.1), (8, 7, 0.1), (20, 19, None), (20, 19, 0.0)):
        row, free = _gated(-10.0, -10.0, of=of, kept=kept, share=share)
        assert row["verdict"] == rules.UNDERTRAINED and "per_protocol" not in row, (of, kept, share)
        assert free["verdict"] == rules.REPRODUCED
    row, _ = _gated(-10.0, -10.0, of=30, kept=27, share=0.1)  # 3 of 30: exactly 10 %
    assert row["verdict"] == rules.REPRODUCED


def test_decide_gated_without_failures_is_decide():
    hyps = [rules.Hypothesis("C1", "a", "directional", -1, _ev(-10.0, 1.0)),
            rules.Hypothesis("C2", "a", "directional", +1, _ev(3.0, 1.0)),
            rules.Hypothesis("C3", "a", "directional", -1, _ev(-1.0, 1.0), undertrained=("swft",))]
    kw = dict(family=[("C1", "a"), ("C2", "a"), ("C3", "a")], alpha=0.05, margin=MARGIN, tol=TOL)
    rows, free = rules.decide_gated(hyps, [None, None, None], max_excluded_share=0.1, **kw)
    assert rows == rules.decide(hyps, **kw) and free == rules.decide(hyps, **kw, gate=False)
