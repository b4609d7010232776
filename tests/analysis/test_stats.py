"""Statistics, claim verdicts and the per-cell summary against hand-computed values, on tiny
hand-made records (tests/support/records.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from support.records import not_run, pair, record

from thtl_bench.analysis import claims, intervals, rules
from thtl_bench.analysis import summary as summ
from thtl_bench.records import Case

# One primary claim on one model (m = 1): C1/resnet18 is judged at alpha itself.
PARAMS = {"confidence": 0.95, "bootstrap": 300, "bootstrap_seed": 0, "equivalence_margin_pp": 5.0,
          "tolerance_pp": 1e-9, "min_replicates": 2, "primary_claims": ["C1"], "primary_models": ["resnet18"],
          "primary_domain": "fundus", "alpha": 0.05}
CFG = {"stats": PARAMS}


def test_t_interval_hand_computed():
    st = intervals.t_interval([1, 2, 3, 4])
    # mean 2.5, s = sqrt(5/3), t(0.975, 3) = 3.182446305 (table value); half = t s / sqrt(4)
    half = 3.182446305 * math.sqrt(5 / 3) / 2
    assert st["n"] == 4 and st["mean"] == pytest.approx(2.5)
    assert st["std"] == pytest.approx(math.sqrt(5 / 3))
    assert st["ci_low"] == pytest.approx(2.5 - half, abs=1e-8)
    assert st["ci_high"] == pytest.approx(2.5 + half, abs=1e-8)


def test_t_interval_edge_cases():
    one = intervals.t_interval([0.7])
    assert one["mean"] == 0.7 and one["std"] is None and one["ci_low"] is None
    assert intervals.t_interval([])["mean"] is None
    assert intervals.t_interval([None, 0.5, 0.7])["n"] == 2  # undefined metric values are skipped
    flat = intervals.t_interval([0.5, 0.5, 0.5])
    assert flat["ci_low"] == flat["ci_high"] == 0.5


@pytest.mark.parametrize("direction,ci,expected", [
    (+1, (1.0, 5.0), "reproduced"), (+1, (-5.0, -1.0), "contradicted"), (+1, (-1.0, 5.0), "inconclusive"),
    (-1, (-5.0, -1.0), "reproduced"), (-1, (1.0, 5.0), "contradicted"), (-1, (-5.0, 0.5), "inconclusive"),
])
def test_directional_verdicts(direction, ci, expected):
    assert rules.interval_verdict("directional", direction, ci, 5.0, 1e-9) == expected


@pytest.mark.parametrize("ci,expected", [
    ((-2.0, 3.0), "reproduced"),       # inside +-5
    ((0.5, 3.5), "reproduced"),        # significant but small: still equivalent (TOST)
    ((-2.0, 7.0), "inconclusive"),     # reaches beyond the margin, no wider than 2 m
    ((5.5, 14.0), "contradicted"),     # entirely beyond +5
    ((-14.0, -5.5), "contradicted"),
    ((2.0, 14.0), "underpowered"),     # wider than 2 m: no outcome could reproduce it
])
def test_equivalence_verdicts(ci, expected):
    c5 = claims.BY_ID["C5"]
    assert c5.kind == "equivalence"
    assert rules.interval_verdict(c5.kind, c5.direction, ci, 5.0, 1e-9) == expected


def _claim(rows: list[dict], cid: str = "C1", model: str = "resnet18") -> dict:
    (row,) = [r for r in rows if (r["id"], r["model"]) == (cid, model)]
    return row


def _acc(recs: list[dict], arm: str) -> np.ndarray:
    """Recorded test accuracies of an arm, in replicate order."""
    by = sorted((Case.of(r).replicate, r["metrics"]["test"]["accuracy"]) for r in recs if r["case"]["arm"] == arm)
    return np.array([v for _, v in by])


def test_claim_statistic_interval_and_paper_number():
    recs = pair(3, 0.5, 0.95, n=80)
    row = _claim(claims.evaluate(recs, CFG))
    a, b = _acc(recs, "thtl_last"), _acc(recs, "onestep_last")
    d = 100 * (a - b)
    assert row["n_pairs"] == 3 and row["domain"] == "fundus" and row["family"] == "primary"
    # the statistic: mean over replicates of the paired difference (predictions agree with metrics)
    assert row["diff_pp"] == pytest.approx(d.mean()) and row["estimate_pp"] == row["diff_pp"]
    un = row["unadjusted"]
    assert un["values_pp"] == [pytest.approx(list(d))]
    # each replicate on its own split with its own patients: no shared patient, so the interval
    # is the replicate-level t (2 df)
    assert un["se_units_pp"] == pytest.approx(d.std(ddof=1) / math.sqrt(3)) and un["df"] == pytest.approx(2.0)
    assert un["se_shared_pp"] == 0.0 and un["units"] == 3
    half = sps.t.ppf(0.975, 2) * un["se_pp"]
    assert row["ci_pp"] == [pytest.approx(d.mean() - half), pytest.approx(d.mean() + half)]
    # m = 1: the deciding interval is the unadjusted one
    assert row["level"] == pytest.approx(0.05) and row["adj_ci_pp"] == pytest.approx(row["ci_pp"])
    assert row["adj_ci_pp"][1] < 0 and row["verdict"] == "reproduced"
    assert row["paper_value_pp"] == -14.7
    assert row["paper_in_ci"] == (row["adj_ci_pp"][0] <= -14.7 <= row["adj_ci_pp"][1])
    assert row["mean_a"] == pytest.approx(a.mean()) and row["rel_pct"] == pytest.approx(100 * (a.mean() / b.mean() - 1))


def test_claim_needs_replicates_not_seeds_alone():
    # One replicate holds the trained models fixed: reported, never decided, whatever its size.
    one = _claim(claims.evaluate(pair(1, 0.3, 0.95, n=200), CFG))
    assert one["verdict"] == "inconclusive" and "1 split(s)" in one["note"] and one["basis"] == "none"
    assert one["diff_pp"] is not None and one["ci_pp"] is None  # no interval from one split
    # stats.min_replicates raises the floor
    recs = pair(3, 0.5, 0.95, n=80)
    few = _claim(claims.evaluate(recs, {"stats": {**PARAMS, "min_replicates": 4}}))
    assert few["verdict"] == "inconclusive" and "at least 4" in few["note"]
    many = _claim(claims.evaluate(pair(5, 0.5, 0.95, n=80), CFG))
    assert many["verdict"] == "reproduced" and many["n_pairs"] == 5 and many["unadjusted"]["df"] == pytest.approx(4.0)


def test_claim_under_trained_arm_is_not_decided():
    recs = pair(3, 0.5, 0.95, n=80)
    recs[0]["stages"][0]["fit"]["train_accuracy"] = 0.55  # thtl_last, replicate (0, 0): kappa 0.1
    row = _claim(claims.evaluate(recs, CFG))
    assert row["verdict"] == rules.UNDERTRAINED and "thtl_last" in row["note"]
    assert row["adj_ci_pp"] is not None  # still reported
    assert row["verdict_ungated"] == "reproduced"  # and decided without the gate


def test_gate_passing_units_reading_drops_exactly_the_failing_units():
    """Beside the withheld verdict: the same rule on the split units where every arm passes. It
    is the verdict of the records without the failing unit, never the plan's verdict; a claim
    with no failing arm has no such reading; with one unit left it decides nothing."""
    recs = pair(5, 0.5, 0.95, n=80)
    fail = next(r for r in recs if (r["case"]["arm"], r["case"]["seed"]) == ("thtl_last", 2))
    fail["stages"][0]["fit"]["train_accuracy"] = 0.55
    row = _claim(claims.evaluate(recs, CFG))
    assert row["verdict"] == rules.UNDERTRAINED and row["n_passing"] == 4 and row["n_pairs"] == 5
    kept = [r for r in recs if r["case"]["seed"] != 2]
    ref = _claim(claims.evaluate(kept, CFG))
    assert "n_passing" not in ref and ref["n_pairs"] == 4
    assert row["verdict_passing"] == ref["verdict"] == "reproduced"
    assert row["interval_passing_pp"] == pytest.approx(ref["adj_ci_pp"])
    assert row["estimate_passing_pp"] == pytest.approx(ref["diff_pp"])
    for r in recs:
        if r["case"]["arm"] == "thtl_last" and r["case"]["seed"] > 0:
            r["stages"][0]["fit"]["train_accuracy"] = 0.55
    few = _claim(claims.evaluate(recs, CFG))
    assert few["n_passing"] == 1 and few["verdict_passing"] == "inconclusive" and few["interval_passing_pp"] is None


def test_claim_on_the_child_of_an_under_trained_step_1_is_not_decided():
    # THTL via a domain step 1 never learned: the child trained fine, but transfers nothing of
    # that domain, so the claim rests on an under-trained stage (the parent's)
    recs = pair(3, 0.5, 0.95, n=80)
    step1 = record(Case("resnet18", "thtl_step1", 1, 1, "fundus"), [True] * 10, fit_ok=False)
    child = next(r for r in recs if (r["case"]["arm"], r["case"]["seed"]) == ("thtl_last", 1))
    child["parent"] = {"slug": step1["slug"], "case_id": step1["case_id"]}
    row = _claim(claims.evaluate(recs + [step1], CFG))
    assert row["verdict"] == rules.UNDERTRAINED and "thtl_last's step 1" in row["note"]
    assert "gate" not in child  # the record itself is not changed
    cell = next(c for c in summ.summarise(recs + [step1], CFG)["cells"] if c["arm"] == "thtl_last")
    assert cell["fit"]["undertrained"] == [child["slug"] + " (step 1)"]
    step1["stages"][0]["fit"]["train_accuracy"] = 0.99  # a learned step 1: the claim is decided again
    assert _claim(claims.evaluate(recs + [step1], CFG))["verdict"] == "reproduced"


def test_an_under_trained_replicate_outside_the_pairs_does_not_block_the_claim():
    recs = pair(3, 0.5, 0.95, n=80)
    extra = record(Case("resnet18", "thtl_last", 7, 7, "fundus"), [True] * 80, fit_ok=False)  # no onestep pair
    assert _claim(claims.evaluate(recs + [extra], CFG))["verdict"] == "reproduced"


def test_the_gate_links_children_by_case_id_and_survives_odd_records():
    from thtl_bench.analysis import fit

    step1 = record(Case("resnet18", "thtl_step1", 0, 0, "fundus"), [True] * 10, fit_ok=False)
    child = record(Case("resnet18", "thtl_last", 0, 0, "fundus"), [True] * 10)
    child["parent"] = {"slug": step1["slug"], "case_id": "an-older-step-1"}  # same slug, other settings
    bare = {"status": "ok"}  # no slug, no case_id, no stages, no parent
    odd = {**record(Case("resnet18", "thtl_all", 0, 0, "fundus"), [True] * 10), "parent": "not-a-dict"}
    out = fit.gated([step1, child, bare, odd], fit.Gate())
    assert [r["gate"]["ok"] for r in out] == [False, True, False, True]  # the stale link is no link
    child["parent"]["case_id"] = step1["case_id"]
    linked = fit.gated([step1, child], fit.Gate())[1]["gate"]
    assert not linked["ok"] and linked["own_ok"] and linked["parent"] == step1["slug"]


def test_claim_missing_arm_and_model_without_paper_number():
    recs = [x for x in pair(3, 0.6, 0.8) if x["case"]["arm"] == "thtl_last"]
    row = _claim(claims.evaluate(recs, CFG))
    assert row["verdict"] == "inconclusive" and "onestep_last" in row["note"] and row["diff_pp"] is None
    assert row["n_pairs"] == 0 and row["paper_in_ci"] is None
    other = pair(3, 0.5, 0.95, n=80, model="tv:densenet121")
    row = _claim(claims.evaluate(other, CFG), model="tv:densenet121")
    assert row["paper_value_pp"] is None and row["paper_in_ci"] is None
    assert row["family"] == "exploratory" and "exploratory" in row["note"]
    # the primary family member without records keeps its row
    assert _claim(claims.evaluate(other, CFG))["note"] == "not evaluated: no records"
    # a registry prefix does not change which paper number applies
    assert _claim(claims.evaluate(pair(3, 0.5, 0.95, model="tv:resnet18"), CFG),
                  model="tv:resnet18")["paper_value_pp"] == -14.7


def test_claim_refuses_different_test_sets():
    recs = pair(2, 0.6, 0.8)
    recs[1]["predictions"]["test"]["ids"][0] = "other"  # onestep_last, replicate (0, 0)
    row = _claim(claims.evaluate(recs, CFG))
    assert row["verdict"] == "inconclusive" and "differ" in row["note"] and row["diff_pp"] is None


def test_claims_through_each_intermediate_domain():
    # C1 per intermediate domain; the primary domain keeps the claim's id, the others are
    # exploratory; the one-step arm (no domain) is shared by both.
    recs = pair(3, 0.5, 0.95, n=80)
    recs += [r for r in pair(3, 0.5, 0.95, n=80, domain="angio", seed=1) if r["case"]["arm"] == "thtl_last"]
    rows = [r for r in claims.evaluate(recs, CFG) if r["claim"] == "C1"]
    assert [(r["id"], r["domain"], r["domain_a"], r["domain_b"]) for r in rows] == [
        ("C1", "fundus", "fundus", None), ("C1@angio", "angio", "angio", None)]
    assert [r["family"] for r in rows] == ["primary", "exploratory"]
    assert rows[0]["diff_pp"] != rows[1]["diff_pp"]


def test_canonical_order():
    order = {"models": ["a", "b", "c"]}
    assert summ.canonical_order("models", ["zz", "c", "a", "yy"], order) == ["a", "c", "zz", "yy"]
    # The arms registry gives the canonical order; unknown names follow, first seen first.
    assert summ.canonical_order("arms", ["my_arm", "swft", "scratch"]) == ["scratch", "swft", "my_arm"]


def test_summarise_cells_and_not_run():
    recs = pair(2, 0.6, 0.8)
    recs.append(not_run(Case("resnet18", "swft", 0, 0, "fundus"), "no weights"))
    s = summ.summarise(recs, CFG, {"models": ["resnet18"], "arms": ["onestep_last", "thtl_last", "swft"],
                                   "domains": ["fundus"]})
    assert [(c["model"], c["arm"], c["domain"], c["n"]) for c in s["cells"]] == [
        ("resnet18", "onestep_last", None, 2), ("resnet18", "thtl_last", "fundus", 2)]
    assert s["not_run"] == [{"model": "resnet18", "arm": "swft", "seed": 0, "split": 0, "domain": "fundus",
                             "target_fraction": 1.0, "intermediate_fraction": 1.0, "reason": "no weights"}]
    cell = s["cells"][0]
    assert cell["replicates"] == [[0, 0], [1, 1]] and cell["trains_on"] == "larynx"
    acc = cell["metrics"]["accuracy"]
    assert acc["values"] == list(_acc(recs, "onestep_last")) and acc["n"] == 2
    assert acc["mean"] == pytest.approx(np.mean(acc["values"]))
    # ratio metrics: the claims' rule (within [0, 1]: a proportion's interval is clipped to its range)
    assert acc["interval"].startswith("the claims' rule")
    assert 0.0 <= acc["ci_low"] < acc["mean"] < acc["ci_high"] <= 1.0
    auc = cell["metrics"]["auc"]  # not a ratio of sums: t over replicates only
    assert auc["interval"] == "t over replicates" and auc["ci_low"] == pytest.approx(
        intervals.t_interval(auc["values"])["ci_low"])


def test_summarise_flags_under_trained_replicates():
    recs = pair(2, 0.6, 0.8)
    recs[2]["stages"][0]["fit"]["train_accuracy"] = 0.55  # thtl_last, replicate (1, 1)
    cells = {c["arm"]: c for c in summ.summarise(recs, CFG)["cells"]}
    assert cells["thtl_last"]["fit"]["undertrained"] == [recs[2]["slug"]]
    assert cells["thtl_last"]["fit"]["ok"] == [True, False] and cells["onestep_last"]["fit"]["undertrained"] == []


def test_every_intermediate_domain_is_summarised_with_qwk():
    # the step-1 tasks are grades: QWK beside accuracy for each intermediate domain, not just fundus
    recs = []
    for dom in ("fundus", "angio"):
        for r in pair(2, 0.5, 0.9, n=40, domain=dom):
            if r["case"]["arm"] == "thtl_last":
                r["case"]["arm"] = "thtl_step1"
                r["data"]["domain"] = dom
                r["metrics"]["test"]["qwk"] = 0.5
                recs.append(r)
    cells = {c["domain"]: c for c in summ.summarise(recs, CFG)["cells"]}
    assert set(cells) == {"fundus", "angio"}
    assert all(c["metrics"]["qwk"]["mean"] == pytest.approx(0.5) for c in cells.values())
    assert "recall" not in cells["angio"]["metrics"]
