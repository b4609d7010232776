"""The fit gate (analysis.fit): judged on the selected stage, relative to the task's majority rate,
no convergence at the epoch cap, SWFT's head-only selection named, a THTL child failing with its
step 1; and it is part of the hashed plan."""

from __future__ import annotations

import pytest

from thtl_bench.analysis import claims, fit, rules

GATE = fit.Gate(min_train_accuracy=0.95, min_kappa=0.25, require_convergence=True)


def _stage(acc, maj, epochs=12, best=8, name="main"):
    return {"name": name, "epochs": epochs, "best_epoch": best, "fit": {"train_accuracy": acc, "majority": maj}}


def _rec(stages, steps=None, slug="m__a__s0__k0", case_id="c", parent=None, patience=4, max_epochs=20):
    r = {"status": "ok", "slug": slug, "case_id": case_id, "stages": stages,
         "config": {"train": {"patience": patience, "max_epochs": max_epochs}}}
    if steps is not None:
        r["swft_steps"] = steps
    if parent:
        r["parent"] = {"case_id": parent}
    return r


def test_accurate_or_learned_and_converged():
    assert fit.stage_fit(_stage(0.96, 0.7), 4, 20, GATE)["ok"]  # accurate, whatever else
    assert fit.stage_fit(_stage(0.80, 0.7), 4, 20, GATE)["ok"]  # kappa 0.33, converged (12 - 8 >= 4)
    low = fit.stage_fit(_stage(0.74, 0.7), 4, 20, GATE)  # kappa 0.13
    assert not low["ok"] and "learned too little" in low["why"]


def test_the_threshold_is_relative_to_the_task():
    # 52 % on a 5-grade task with a 34 % majority passes an absolute +10 pp rule; relative: kappa 0.27
    assert fit.stage_fit(_stage(0.52, 0.34), 4, 20, GATE)["kappa"] == pytest.approx(0.18 / 0.66)
    assert fit.stage_fit(_stage(0.49, 0.34), 4, 20, GATE)["ok"] is False  # kappa 0.23
    assert fit.stage_fit(_stage(0.78, 0.71), 4, 20, GATE)["ok"] is False  # kappa 0.24 on a binary task


def test_a_stop_at_the_epoch_cap_is_not_convergence():
    capped = fit.stage_fit(_stage(0.85, 0.7, epochs=20, best=19), 4, 20, GATE)
    assert capped["at_cap"] and not capped["converged"] and not capped["ok"]
    assert "epoch cap" in capped["why"]
    # the same stage without the convergence requirement passes
    assert fit.stage_fit(_stage(0.85, 0.7, epochs=20, best=19), 4, 20,
                         fit.Gate(0.95, 0.25, require_convergence=False))["ok"]
    # stopping by the rule exactly at the cap is convergence
    assert fit.stage_fit(_stage(0.85, 0.7, epochs=20, best=16), 4, 20, GATE)["converged"]


def test_swft_is_judged_on_the_selected_step():
    steps = [{"step": 1, "groups": ["head"], "selected": False}, {"step": 2, "groups": ["head", "layer4"],
                                                                  "selected": True}]
    rec = _rec([_stage(0.99, 0.7, name="step1"), _stage(0.72, 0.7, name="step2")], steps)
    g = fit.record_fit(rec, GATE)
    assert g["stage"] == "step2" and not g["ok"] and not g["head_only"]
    steps = [{**steps[0], "selected": True}, {**steps[1], "selected": False}]
    g = fit.record_fit(_rec([_stage(0.99, 0.7, name="step1"), _stage(0.72, 0.7, name="step2")], steps), GATE)
    assert g["stage"] == "step1" and g["ok"] and g["head_only"]


def test_a_child_fails_with_its_step1():
    parent = _rec([_stage(0.40, 0.34)], slug="m__thtl_step1__fundus__s0__k0", case_id="p")
    child = _rec([_stage(0.99, 0.7)], slug="m__thtl_last__fundus__s0__k0", case_id="c", parent="p")
    out = {r["slug"]: r for r in fit.gated([parent, child], GATE)}
    assert not out["m__thtl_step1__fundus__s0__k0"]["gate"]["ok"]
    c = out["m__thtl_last__fundus__s0__k0"]["gate"]
    assert not c["ok"] and c["own_ok"] and c["parent"] == "m__thtl_step1__fundus__s0__k0"
    # another step 1 (other case id, same slug) is not this child's parent
    other = {**parent, "case_id": "p2"}
    assert {r["slug"]: r for r in fit.gated([other, child], GATE)}["m__thtl_last__fundus__s0__k0"]["gate"]["ok"]


def test_the_gate_is_in_the_plan_hash():
    base = {"confidence": 0.95, "equivalence_margin_pp": 5.0, "tolerance_pp": 1e-9, "min_replicates": 2,
            "primary_claims": ["C1"], "primary_models": ["m"], "primary_domain": "fundus",
            "fit": {"min_train_accuracy": 0.95, "min_kappa": 0.25, "require_convergence": True}}
    h = rules.plan_hash(claims.plan(base))
    for change in ({"min_kappa": 0.3}, {"require_convergence": False}, {"min_train_accuracy": 0.9}):
        assert rules.plan_hash(claims.plan({**base, "fit": {**base["fit"], **change}})) != h, change
    assert "min_kappa" in str(claims.plan(base)["fit_gate"]) and "0.25" in claims.rule_text(base)
