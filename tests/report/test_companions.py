"""headline.json and metrics.json mean what their names say: verdicts as strings or null, no
p-value without data, estimates with their interval bounds, units in the names, a headline with
the same dozen columns in every run."""

from __future__ import annotations

import json

from fixtures import make_sample_records as samples

from thtl_bench.report import companions


def _row(cid: str, model: str, verdict: str, estimate=None, interval=None, p=1.0, basis="none",
         family="primary") -> dict:
    return {"id": cid, "model": model, "family": family, "metric": "accuracy", "verdict": verdict,
            "estimate_pp": estimate, "diff_pp": estimate, "interval_pp": interval, "p": p, "p_adjusted": p,
            "basis": basis, "n_pairs": 3 if estimate is not None else 0, "rel_pct": None, "margin_pp": None}


ROWS = [
    _row("C1", "resnet18", "reproduced", -14.0, [-20.5, -7.5], p=0.004, basis="interval"),
    _row("C2", "resnet18", "inconclusive", 1.0, [-4.0, 6.0], p=0.6, basis="interval"),
    _row("C3", "resnet18", "not decided: under-trained", -2.0, [-9.0, 5.0]),  # evidence, but blocked
    _row("C1", "resnet50", "inconclusive"),  # no records: the analysis' word, no data behind it
    _row("C4", "efficientnet_lite0", "contradicted", 8.0, [2.0, 14.0], p=0.01, basis="interval",
         family="exploratory"),
]


def _summary(claims=ROWS) -> dict:
    cell = {"model": "resnet18", "arm": "onestep_last", "domain": None, "target_fraction": 1.0,
            "intermediate_fraction": 1.0, "n": 3, "fit": {"undertrained": [(1, 1)]},
            "metrics": {"accuracy": {"mean": 0.9133, "std": 0.03, "ci_low": 0.77, "ci_high": 1.0}},
            "timing": {"wall_s": {"mean": 2.5}, "train_images_per_s": {"mean": 40.0}}}
    return {"cells": [cell], "claims": claims, "sizes": [],
            "provenance": {"n_ok": 18, "n_not_run": 24},
            "calibration": {"verdict": {"false_decisions": [0.041, 0.063], "coverage": [0.93, 0.96],
                                        "power": [0.81, 0.97], "calibrated": True, "powered": True}},
            "projection": {"basis": "gpu", "total_hours": 12.0, "total_hours_range": [10.0, 15.0]}}


def test_claims_carry_verdict_strings_null_without_data_and_p_only_from_data():
    m = companions.metrics_full(_summary())["claims"]
    assert m["C1.resnet18"] == {"verdict": "reproduced", "family": "primary", "metric": "accuracy",
                                "estimate_pp": -14.0, "estimate_low_pp": -20.5, "estimate_high_pp": -7.5,
                                "rel_pct": None, "margin_pp": None, "p": 0.004, "p_adjusted": 0.004,
                                "n_replicates": 3}
    assert m["C3.resnet18"]["verdict"] == "not decided: under-trained" and m["C3.resnet18"]["p"] is None
    assert m["C3.resnet18"]["estimate_low_pp"] == -9.0  # the estimate is still reported, with its bounds
    assert m["C1.resnet50"]["verdict"] is None and m["C1.resnet50"]["p"] is None  # not 1.0, not 0
    assert m["C1.resnet50"]["estimate_pp"] is None and m["C1.resnet50"]["n_replicates"] == 0
    codes = [v["verdict"] for v in m.values()]
    assert all(v is None or isinstance(v, str) for v in codes)


def test_cells_power_and_cost_have_units_and_bounds():
    m = companions.metrics_full(_summary())
    cell = m["cells"]["resnet18.onestep_last"]
    assert cell["accuracy_pct"] == {"mean": 91.33, "std": 3.0, "low": 77.0, "high": 100.0}
    assert cell["wall_s"] == 2.5 and cell["train_images_per_s"] == 40.0 and cell["undertrained"] == 1
    assert (m["power_min"], m["powered"], m["false_decisions_min"], m["false_decisions_max"], m["calibrated"]) == (
        0.81, True, 0.041, 0.063, True)
    assert "power_min" not in companions.metrics_full({**_summary(), "calibration": None})  # not computed: absent
    assert (m["projected_gpu_hours"], m["projected_gpu_hours_low"], m["projected_gpu_hours_high"]) == (12.0, 10.0, 15.0)
    assert not any(k.startswith("projected_cpu") or k == "projected_hours" for k in m)
    cpu = _summary()
    cpu["projection"]["basis"] = "cpu"
    assert "projected_cpu_hours" in companions.metrics_full(cpu)
    cpu["projection"] = {"basis": None}
    assert not any(k.startswith("projected") for k in companions.metrics_full(cpu))  # nothing measured


def test_headline_counts_the_primary_family_with_fixed_columns():
    head = companions.headline(_summary())
    assert head["primary_claims"] == {"reproduced": 1, "contradicted": 0, "inconclusive": 1, "underpowered": 0,
                                      "not_decided": 1, "without_data": 1}  # the exploratory C4 is not counted
    assert (head["cases_ok"], head["cases_not_run"], head["cells_undertrained"]) == (18, 24, 1)
    assert head["projected_gpu_hours"] == 12.0 and head["power_min"] == 0.81
    empty = companions.headline(_summary(claims=[]))
    assert list(empty) == list(head) and list(empty["primary_claims"]) == list(head["primary_claims"])
    flat = json.dumps(head)
    assert len(json.loads(flat)) + len(head["primary_claims"]) - 1 <= 16  # a short `dvc metrics show`


def test_on_the_sample_records_nothing_is_coded():
    summary, _ = samples.golden_outputs()
    m = companions.metrics_full(summary)
    for key, row in m["claims"].items():
        src = next(r for r in summary["claims"] if f"{r['id']}.{r['model']}" == key)
        if row["verdict"] is None:
            assert row["p"] is None and row["estimate_pp"] is None, key
        else:
            assert row["verdict"] == src["verdict"], key
        if row["p"] is not None:
            assert row["estimate_low_pp"] is not None and row["estimate_high_pp"] is not None, key
