"""Statistics and claim verdicts against hand-computed values."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy import stats as sps

from thtl_bench.analysis import claims, intervals
from thtl_bench.analysis import summary as summ

PARAMS = {"confidence": 0.95, "bootstrap": 500, "bootstrap_seed": 0, "bootstrap_below_seeds": 5,
          "equivalence_margin_pp": 5.0, "alpha": 0.05}


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
    c = claims.Claim("X", "x", "a", "b", "accuracy", "directional", direction)
    assert claims.verdict(c, sum(ci) / 2, ci, 5.0) == expected


@pytest.mark.parametrize("diff,ci,expected", [
    (1.0, (-2.0, 3.0), "reproduced"),       # not significant, inside +-5
    (1.0, (-2.0, 7.0), "inconclusive"),     # not significant but too wide
    (8.0, (2.0, 14.0), "contradicted"),     # significant and beyond the margin
    (2.0, (0.5, 3.5), "inconclusive"),      # significant but small
    (-8.0, (-14.0, -2.0), "contradicted"),
])
def test_equivalence_verdicts(diff, ci, expected):
    c5 = next(c for c in claims.CLAIMS if c.id == "C5")
    assert claims.verdict(c5, diff, ci, 5.0) == expected


def test_no_interval_is_inconclusive():
    assert claims.verdict(claims.CLAIMS[0], None, None, 5.0) == "inconclusive"


def _rec(model, arm, seed, correct, labels):
    """A minimal ok record whose test predictions give the `correct` pattern."""
    labels = np.asarray(labels)
    pred = np.where(correct, labels, 1 - labels)
    probs = np.stack([1 - pred * 0.8 - 0.1, pred * 0.8 + 0.1], 1)
    pos = labels == 1
    return {
        "status": "ok", "case_id": f"{model}{arm}{seed}", "slug": f"{model}__{arm}__s{seed}",
        "case": {"model": model, "arm": arm, "seed": seed, "profile": "t"},
        "data": {"domain": "larynx", "classes": ["benign", "malignant"], "positive": "malignant"},
        "metrics": {"test": {"accuracy": float(np.mean(correct)),
                             "recall": float(np.mean(np.asarray(correct)[pos]))}},
        "predictions": {"test": {"ids": [f"i{k}" for k in range(len(labels))], "labels": labels.tolist(),
                                 "probs": probs.tolist()}},
    }


def _pair(n_seeds, acc_a, acc_b, n=40):
    labels = np.array([0, 1] * (n // 2))
    rng = np.random.default_rng(0)
    recs = []
    for s in range(n_seeds):
        recs.append(_rec("resnet18", "thtl_last", s, rng.random(n) < acc_a, labels))
        recs.append(_rec("resnet18", "onestep_last", s, rng.random(n) < acc_b, labels))
    return recs


def test_claim_few_seeds_uses_bootstrap_and_paper_number():
    recs = _pair(3, 0.55, 0.9)
    r = claims.evaluate_one(claims.CLAIMS[0], "resnet18", recs, PARAMS)
    a = [x["metrics"]["test"]["accuracy"] for x in recs if x["case"]["arm"] == "thtl_last"]
    b = [x["metrics"]["test"]["accuracy"] for x in recs if x["case"]["arm"] == "onestep_last"]
    assert r["n_pairs"] == 3 and r["ci_used"] == "bootstrap" and r["ci_pp"] == r["boot_ci_pp"]
    assert r["diff_pp"] == pytest.approx(100 * (np.mean(a) - np.mean(b)))
    assert r["boot_diff_pp"] == pytest.approx(r["diff_pp"])  # metrics and predictions agree
    assert r["p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert r["paper_value_pp"] == -14.7 and r["verdict"] == "reproduced"


def test_claim_many_seeds_uses_t_interval():
    r = claims.evaluate_one(claims.CLAIMS[0], "resnet18", _pair(5, 0.55, 0.9), PARAMS)
    assert r["ci_used"] == "t" and r["ci_pp"] == r["t_ci_pp"]
    assert r["verdict"] == "reproduced"


def test_claim_missing_arm_and_model_without_paper_number():
    recs = [x for x in _pair(3, 0.6, 0.8) if x["case"]["arm"] == "thtl_last"]
    r = claims.evaluate_one(claims.CLAIMS[0], "resnet18", recs, PARAMS)
    assert r["verdict"] == "inconclusive" and "onestep_last" in r["note"] and r["diff_pp"] is None
    other = copy.deepcopy(_pair(3, 0.55, 0.9))
    for x in other:
        x["case"]["model"] = "tv:densenet121"
    r = claims.evaluate_one(claims.CLAIMS[0], "tv:densenet121", other, PARAMS)
    assert r["paper_value_pp"] is None and r["paper_in_ci"] == {"pp": None, "rel": None}


def test_claim_bootstrap_refuses_different_test_sets():
    recs = _pair(2, 0.6, 0.8)
    recs[1]["predictions"]["test"]["ids"][0] = "other"
    r = claims.evaluate_one(claims.CLAIMS[0], "resnet18", recs, PARAMS)
    assert r["boot_ci_pp"] is None and "ids differ" in r["note"] and r["ci_used"] == "t"


def test_canonical_order():
    order = {"models": ["a", "b", "c"]}
    assert summ.canonical_order("models", ["zz", "c", "a", "yy"], order) == ["a", "c", "zz", "yy"]
    # The arms registry gives the canonical order; unknown names follow, first seen first.
    assert summ.canonical_order("arms", ["my_arm", "swft", "scratch"]) == ["scratch", "swft", "my_arm"]


def test_summarise_cells_and_not_run():
    recs = _pair(2, 0.6, 0.8)
    recs.append({"status": "not_run", "case_id": "x", "slug": "resnet18__swft__s0", "reason": "no weights",
                 "case": {"model": "resnet18", "arm": "swft", "seed": 0, "profile": "t"}})
    s = summ.summarise(recs, {"stats": PARAMS}, {"models": ["resnet18"], "arms": ["onestep_last", "thtl_last", "swft"]})
    assert [(c["model"], c["arm"], c["n"]) for c in s["cells"]] == [("resnet18", "onestep_last", 2),
                                                                   ("resnet18", "thtl_last", 2)]
    assert s["not_run"] == [{"model": "resnet18", "arm": "swft", "seed": 0, "reason": "no weights"}]
    acc = s["cells"][0]["metrics"]["accuracy"]
    assert acc["mean"] == pytest.approx(np.mean(acc["values"])) and acc["n"] == 2
