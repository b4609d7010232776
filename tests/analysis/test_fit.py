"""The fit gate (analysis.fit): judged on the selected stage, relative to the task's majority rate,
no convergence at the epoch cap, SWFT's head-only selection named, a THTL child failing with its
step 1; and it is part of the hashed plan."""

from __future__ import annotations

import math

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


AMENDED = fit.Gate(min_train_accuracy=0.95, min_kappa=0.25, require_convergence=True, min_fit_gain=0.25)


def _fitted(losses, counts=(78, 32), acc=0.71, maj=0.71, epochs=20, best=1):
    """A record whose selected weights sit at the majority rate (validation chose epoch `best`)
    and whose epoch-mean training losses are `losses`."""
    rec = _rec([_stage(acc, maj, epochs=epochs, best=best)], max_epochs=100)
    rec["history"] = [{"stage": "main", "epoch": 0, "train_loss": None}] + [
        {"stage": "main", "epoch": i + 1, "train_loss": x} for i, x in enumerate(losses)]
    rec["history"] += [{"stage": "other", "epoch": 1, "train_loss": 0.0}]  # another stage's losses do not count
    rec["metrics"] = {"train": {"confusion": [[counts[0], 0], [counts[1], 0]]}}
    return rec


def test_the_null_loss_and_the_fit_gain():
    assert fit.null_loss([50, 50]) == pytest.approx(math.log(2))
    assert fit.null_loss([44] * 5) == pytest.approx(math.log(5))
    assert fit.null_loss([10, 0]) == 0.0 and fit.null_loss([]) is None
    assert fit.fit_gain([0.6, None, 0.3, 0.4], 0.6) == pytest.approx(0.5)  # the lowest epoch counts
    assert fit.fit_gain([None], 0.6) is None and fit.fit_gain([0.3], 0.0) is None


def test_a_head_that_fitted_while_validation_chose_an_early_epoch_passes_the_amended_gate():
    # the domains pilot's case: training loss 0.67 -> 0.23 (null 0.60), validation best at epoch 1
    null = fit.null_loss([78, 32])
    losses = [0.668, 0.556, 0.507, 0.45, 0.40, 0.35, 0.30, 0.27, 0.25, 0.233]
    rec = _fitted(losses)
    old = fit.record_fit(rec, GATE)
    assert not old["ok"] and old["why"] == "learned too little"  # the kappa reading alone withholds it
    new = fit.record_fit(rec, AMENDED)
    assert new["ok"] and new["learned_by"] == "fit gain"
    assert new["fit_gain"] == pytest.approx(1 - 0.233 / null) and new["kappa"] == pytest.approx(0.0)


def test_a_stage_that_did_not_train_still_fails_the_amended_gate():
    null = fit.null_loss([78, 32])
    flat = fit.record_fit(_fitted([null * 1.02, null * 0.97, null * 0.9, null * 0.8]), AMENDED)  # gain 0.20
    assert not flat["ok"] and flat["why"] == "learned too little" and flat["fit_gain"] == pytest.approx(0.2)
    # fitted, but stopped at the epoch cap: not converged, whatever the gain
    capped = fit.record_fit(_fitted([0.5, 0.3, 0.2], epochs=100, best=99), AMENDED)
    assert not capped["ok"] and "epoch cap" in capped["why"] and capped["fit_gain"] > 0.25
    # no losses on record: the kappa reading decides, as before the amendment
    rec = _fitted([])
    assert fit.record_fit(rec, AMENDED)["fit_gain"] is None and not fit.record_fit(rec, AMENDED)["ok"]


def test_the_amendment_is_in_the_plan_and_shows_in_the_rules():
    base = {"confidence": 0.95, "equivalence_margin_pp": 5.0, "tolerance_pp": 1e-9, "min_replicates": 2,
            "primary_claims": ["C1"], "primary_models": ["m"], "primary_domain": "fundus",
            "fit": {"min_train_accuracy": 0.95, "min_kappa": 0.25, "require_convergence": True}}
    assert "min_fit_gain" not in claims.plan(base)["fit_gate"]  # a plan without it hashes as before
    h = rules.plan_hash(claims.plan(base))
    gained = {**base, "fit": {**base["fit"], "min_fit_gain": 0.25}}
    assert rules.plan_hash(claims.plan(gained)) != h
    assert rules.plan_hash(claims.plan({**gained, "fit": {**gained["fit"], "min_fit_gain": 0.3}})) \
        != rules.plan_hash(claims.plan(gained))
    assert "25 % below the null loss" in claims.rule_text(gained)
    amended = {**gained, "amendments": ["2026-12-06: the gate counts a fitted training loss"]}
    assert rules.plan_hash(claims.plan(amended)) != rules.plan_hash(claims.plan(gained))
    assert "Amended after results were seen**: 2026-12-06: the gate counts" in claims.rule_text(amended)
    assert "Amended" not in claims.rule_text(gained)


def test_the_excluded_share_is_in_the_plan_and_shows_in_the_rules():
    base = {"confidence": 0.95, "equivalence_margin_pp": 5.0, "tolerance_pp": 1e-9, "min_replicates": 2,
            "primary_claims": ["C1"], "primary_models": ["m"], "primary_domain": "fundus",
            "fit": {"min_train_accuracy": 0.95, "min_kappa": 0.25, "require_convergence": True, "min_fit_gain": 0.25}}
    assert "max_excluded_share" not in claims.plan(base)["fit_gate"]  # a plan without it hashes as before
    assert fit.Gate.of(base).max_excluded_share is None
    share = {**base, "fit": {**base["fit"], "max_excluded_share": 0.1}}
    assert fit.Gate.of(share).max_excluded_share == 0.1
    assert rules.plan_hash(claims.plan(share)) != rules.plan_hash(claims.plan(base))
    assert rules.plan_hash(claims.plan({**share, "fit": {**share["fit"], "max_excluded_share": 0.2}})) \
        != rules.plan_hash(claims.plan(share))
    assert "at most 10 % of the claim's paired replicates" in claims.rule_text(share)
    assert "at most" not in claims.rule_text(base)
