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


def test_paired_t_hand_computed():
    a, b = [0.80, 0.75, 0.90], [0.70, 0.72, 0.80]
    out = intervals.paired(a, b)
    d = np.array([0.10, 0.03, 0.10])
    sd = math.sqrt(((d - d.mean()) ** 2).sum() / 2)
    t = d.mean() / (sd / math.sqrt(3))
    # Student t with 2 degrees of freedom has CDF 1/2 + t / (2 sqrt(2 + t^2)).
    assert out["p"] == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)
    assert out["mean"] == pytest.approx(d.mean())
    half = 4.302652730 * sd / math.sqrt(3)  # t(0.975, 2)
    assert out["ci_low"] == pytest.approx(d.mean() - half, abs=1e-8)
    assert out["ci_high"] == pytest.approx(d.mean() + half, abs=1e-8)


def test_paired_constant_differences_and_single_pair():
    assert intervals.paired([0.8, 0.9], [0.7, 0.8])["p"] == 0.0
    assert intervals.paired([0.8, 0.9], [0.8, 0.9])["p"] == 1.0
    assert intervals.paired([0.8], [0.7])["p"] is None


def test_welch_hand_computed():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    assert intervals.welch_p(a, b) == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)
    assert intervals.welch_p([1.0], b) is None


def test_bootstrap_deterministic_and_exact_cases():
    rng = np.random.default_rng(1)
    ca = rng.random((3, 50)) < 0.8
    cb = rng.random((3, 50)) < 0.6
    den = np.ones(50)
    one = intervals.bootstrap_paired(ca, cb, den, n_boot=300, seed=5)
    two = intervals.bootstrap_paired(ca, cb, den, n_boot=300, seed=5)
    other = intervals.bootstrap_paired(ca, cb, den, n_boot=300, seed=6)
    assert one == two and one["ci_pp"] != other["ci_pp"]
    # Point estimate = mean over seeds of the accuracy difference.
    assert one["diff_pp"] == pytest.approx(100 * (ca.mean(1) - cb.mean(1)).mean())
    assert one["ci_pp"][0] < one["diff_pp"] < one["ci_pp"][1]
    same = intervals.bootstrap_paired(ca, ca, den, n_boot=100, seed=0)
    assert same["ci_pp"] == [0.0, 0.0]
    perfect = intervals.bootstrap_paired(np.ones((2, 10)), np.zeros((2, 10)), np.ones(10), n_boot=100, seed=0)
    assert perfect["ci_pp"] == [100.0, 100.0]


def test_bootstrap_recall_uses_positives_only():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    pos = labels == 1
    a = np.array([[1, 1, 1, 0, 0, 0, 0, 0]], bool)  # recall 3/4, all negatives wrong
    b = np.array([[1, 0, 0, 0, 1, 1, 1, 1]], bool)  # recall 1/4, all negatives right
    out = intervals.bootstrap_paired(a & pos, b & pos, pos.astype(float), n_boot=200, seed=0)
    assert out["diff_pp"] == pytest.approx(50.0)


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
    assert un["se_replicates_pp"] == pytest.approx(d.std(ddof=1) / math.sqrt(3)) and un["t_df"] == 2.0
    # the t part uses the larger of the replicate and bootstrap SEs; the interval is the hull
    se = max(un["se_replicates_pp"], un["se_bootstrap_pp"])
    half = sps.t.ppf(0.975, 2) * se
    assert un["t_ci_pp"] == [pytest.approx(d.mean() - half), pytest.approx(d.mean() + half)]
    t_ci, b_ci = un["t_ci_pp"], un["boot_ci_pp"]
    assert row["ci_pp"] == [min(t_ci[0], b_ci[0]), max(t_ci[1], b_ci[1])]
    # m = 1: the deciding interval is the unadjusted one
    assert row["level"] == pytest.approx(0.05) and row["adj_ci_pp"] == pytest.approx(row["ci_pp"])
    assert row["adj_ci_pp"][1] < 0 and row["verdict"] == "reproduced"
    assert row["paper_value_pp"] == -14.7
    assert row["paper_in_ci"] == (row["adj_ci_pp"][0] <= -14.7 <= row["adj_ci_pp"][1])
    assert row["mean_a"] == pytest.approx(a.mean()) and row["rel_pct"] == pytest.approx(100 * (a.mean() / b.mean() - 1))


def test_claim_needs_replicates_not_seeds_alone():
    # One replicate holds the trained models fixed: reported, never decided, whatever its size.
    one = _claim(claims.evaluate(pair(1, 0.3, 0.95, n=200), CFG))
    assert one["verdict"] == "inconclusive" and "1 replicate(s)" in one["note"] and one["basis"] == "none"
    assert one["diff_pp"] is not None and one["ci_pp"] is not None
    # stats.min_replicates raises the floor
    recs = pair(3, 0.5, 0.95, n=80)
    few = _claim(claims.evaluate(recs, {"stats": {**PARAMS, "min_replicates": 4}}))
    assert few["verdict"] == "inconclusive" and "at least 4" in few["note"]
    many = _claim(claims.evaluate(pair(5, 0.5, 0.95, n=80), CFG))
    assert many["verdict"] == "reproduced" and many["n_pairs"] == 5 and many["unadjusted"]["t_df"] == 4.0


def test_claim_under_trained_arm_is_not_decided():
    recs = pair(3, 0.5, 0.95, n=80)
    recs[0]["fit"]["ok"] = False  # thtl_last, replicate (0, 0)
    row = _claim(claims.evaluate(recs, CFG))
    assert row["verdict"] == rules.UNDERTRAINED and "thtl_last" in row["note"]
    assert row["adj_ci_pp"] is not None  # still reported


def test_claim_on_the_child_of_an_under_trained_step_1_is_not_decided():
    # THTL via a domain step 1 never learned: the child trained fine, but transfers nothing of
    # that domain, so the claim rests on an under-trained stage (the parent's)
    recs = pair(3, 0.5, 0.95, n=80)
    step1 = record(Case("resnet18", "thtl_step1", 1, 1, "fundus"), [True] * 10, fit_ok=False)
    child = next(r for r in recs if (r["case"]["arm"], r["case"]["seed"]) == ("thtl_last", 1))
    child["parent"] = {"slug": step1["slug"], "case_id": step1["case_id"]}
    row = _claim(claims.evaluate(recs + [step1], CFG))
    assert row["verdict"] == rules.UNDERTRAINED and "thtl_last's step 1" in row["note"]
    assert child["fit"]["ok"] is True  # the record itself is not changed
    cell = next(c for c in summ.summarise(recs + [step1], CFG)["cells"] if c["arm"] == "thtl_last")
    assert cell["fit"]["undertrained"] == [child["slug"] + " (step 1)"]
    step1["fit"]["ok"] = True  # a learned step 1: the claim is decided again
    assert _claim(claims.evaluate(recs + [step1], CFG))["verdict"] == "reproduced"


def test_an_under_trained_replicate_outside_the_pairs_does_not_block_the_claim():
    recs = pair(3, 0.5, 0.95, n=80)
    extra = record(Case("resnet18", "thtl_last", 7, 7, "fundus"), [True] * 80, fit_ok=False)  # no onestep pair
    assert _claim(claims.evaluate(recs + [extra], CFG))["verdict"] == "reproduced"


def test_inherit_fit_links_by_case_id_and_survives_odd_records():
    from thtl_bench.analysis import replicates as reps

    step1 = record(Case("resnet18", "thtl_step1", 0, 0, "fundus"), [True] * 10, fit_ok=False)
    child = record(Case("resnet18", "thtl_last", 0, 0, "fundus"), [True] * 10)
    child["parent"] = {"slug": step1["slug"], "case_id": "an-older-step-1"}  # same slug, other settings
    bare = {"status": "ok", "fit": {"ok": False}}  # no slug, no case_id, no parent
    odd = {**record(Case("resnet18", "thtl_all", 0, 0, "fundus"), [True] * 10), "parent": "not-a-dict"}
    out = reps.inherit_fit([step1, child, bare, odd])
    assert [r.get("fit", {}).get("ok") for r in out] == [False, True, False, True]  # the stale link is no link
    child["parent"]["case_id"] = step1["case_id"]
    assert reps.inherit_fit([step1, child])[1]["fit"] == {**child["fit"], "ok": False, "own_ok": True,
                                                            "parent_undertrained": step1["slug"]}


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
    # ratio metrics: the two-level hull, never narrower than the t-interval over the replicates
    # (both within [0, 1]: a proportion's interval is clipped to its range)
    t = intervals.t_interval(acc["values"])
    assert acc["interval"].startswith("two-level bootstrap")
    assert 0.0 <= acc["ci_low"] <= max(0.0, t["ci_low"]) < acc["mean"] < min(1.0, t["ci_high"]) <= acc["ci_high"] <= 1.0
    auc = cell["metrics"]["auc"]  # not a ratio of sums: t over replicates only
    assert auc["interval"] == "t over replicates" and auc["ci_low"] == pytest.approx(
        intervals.t_interval(auc["values"])["ci_low"])


def test_summarise_flags_under_trained_replicates():
    recs = pair(2, 0.6, 0.8)
    recs[2]["fit"]["ok"] = False  # thtl_last, replicate (1, 1)
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
