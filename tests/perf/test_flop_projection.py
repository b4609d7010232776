"""The GPU-hour projection from counted FLOPs (analysis.projection.flop_projection, issue 22.8):
stage FLOPs laid out as the engine trains them (cached frozen prefixes, trainable suffixes, SWFT
steps), the epoch range of the budget rule, hours at an assumed or a measured rate, and the
REPORT.md text that states the assumption."""

from __future__ import annotations

import pytest

from thtl_bench import config
from thtl_bench.analysis import projection
from thtl_bench.perf import flops
from thtl_bench.report import cost

# A toy model: stages a, b (frozen prefix for a head-only arm), head; groups back to front.
STAGING = {"stages": ["a", "b", "head"], "groups": [["head", ["head"]], ["b", ["b"]], ["a", ["a"]]],
           "forward": [60, 30, 10], "out_numel": [1000, 100, 2]}
TRAIN = {"lr_head": 1e-3, "lr_backbone": 1e-4, "lr_scratch": 1e-3, "max_epochs": 20, "min_epochs": 5,
         "patience": 5, "swft_lr_decay": 0.5, "augment": {"hflip": True}, "feature_cache": True,
         "feature_cache_max_gb": 4, "head_only_views": 1, "precision": "bf16"}


def counts(**settings) -> dict:
    s = {"models": ["toy"], "arms": ["onestep_last", "onestep_all"], "seeds": 2, "image_size": 8,
         "max_epochs": 20, "fundus_images": 100, "larynx_images": 1000, "train": TRAIN,
         "split": {"val": 0.2, "test": 0.3}, "gpu": "H100 SXM", "gpu_peak_tflops": 1.0, "mfu": [0.1, 0.2],
         "mfu_source": "an assumption for the test", **settings}
    return {"settings": s, "staging": {"toy": STAGING}, "per_image": {}}


def test_a_cached_head_costs_one_prefix_pass_and_head_epochs():
    # larynx 1000 images: 500 train, 200 val, 300 test; epochs 6 (patience 5 + 1) to 20.
    lo, hi = projection.case_flops("toy", "onestep_last", counts())
    prefix = 90 * 1000  # a and b once per image into the cache

    def head(e):
        return e * 3 * 10 * 500 + 10 * (200 * (e + 1) + 1000)

    assert (lo, hi) == (prefix + head(6), prefix + head(20))


def test_a_cache_that_does_not_fit_runs_the_prefix_every_epoch():
    tiny_cap = counts(train={**TRAIN, "feature_cache_max_gb": 1e-9})
    lo, _ = projection.case_flops("toy", "onestep_last", tiny_cap)
    assert lo == 6 * (90 + 30) * 500 + 100 * (200 * 7 + 1000)


def test_all_layers_and_swft_steps_follow_the_arms_plans():
    lo, hi = projection.case_flops("toy", "onestep_all", counts())
    assert (lo, hi) == tuple(e * 3 * 100 * 500 + 100 * (200 * (e + 1) + 1000) for e in (6, 20))
    # THTL step 1 trains on the intermediate domain (100 images: 50 / 20 / 30).
    s1, _ = projection.case_flops("toy", "thtl_step1", counts())
    assert s1 == 6 * 3 * 100 * 50 + 100 * (20 * 7 + 100)
    # SWFT: head (cached prefix a+b), then b+head (cached prefix a), then everything: three stages.
    sw_lo, sw_hi = projection.case_flops("toy", "swft", counts())
    step1 = 90 * 1000 + 6 * 3 * 10 * 500 + 10 * (200 * 7 + 1000)
    step2 = 60 * 1000 + 6 * 3 * 40 * 500 + 40 * (200 * 7 + 1000)
    step3 = 6 * 3 * 100 * 500 + 100 * (200 * 7 + 1000)
    assert sw_lo == step1 + step2 + step3 and sw_hi > sw_lo


def test_hours_pair_the_fewest_epochs_with_the_highest_rate():
    f = projection.flop_projection(counts())
    (lo_f, hi_f), (lo_h, hi_h) = f["eflop"], f["hours"]
    assert lo_h == pytest.approx(lo_f * 1e18 / (1e12 * 0.2) / 3600)
    assert hi_h == pytest.approx(hi_f * 1e18 / (1e12 * 0.1) / 3600)
    assert f["basis"] == "assumed" and f["mfu"] == [0.1, 0.2] and f["complete"]
    a = projection.case_flops("toy", "onestep_last", counts())
    b = projection.case_flops("toy", "onestep_all", counts())
    assert lo_f == pytest.approx(2 * (a[0] + b[0]) / 1e18)  # seeds x arms
    measured = projection.flop_projection(counts(), rates={"toy": 5e11})
    assert measured["basis"] == "measured" and measured["hours"][0] == pytest.approx(lo_f * 1e18 / 5e11 / 3600)
    assert projection.flop_projection(counts(), rates={})["hours"] is None  # no rate, no hours
    assert not projection.flop_projection(None)["available"]


def test_report_states_the_range_and_its_assumption():
    p = projection.projection([], counts())
    text = "\n".join(cost.projection(p))
    f = p["flops"]
    assert f"{f['hours'][0]:.1f}-{f['hours'][1]:.1f} GPU-hours" in text
    assert "10%-20% model-FLOP utilisation" in text and "**The MFU is an assumption**" in text
    assert "an assumption for the test" in text and "scripts/gpu_check.sh" in text


def test_the_paper_profile_projects_its_own_grid_stage_by_stage():
    """The settings the artefact carries come from the paper profile; every paper model's stages
    sum to its whole forward count."""
    s = flops.projection_settings(config.load(config.DEFAULT_PARAMS))
    assert s["profile"] == "paper" and s["train"]["precision"] == "bf16" and s["split"]["val"] > 0
    assert s["gpu_peak_tflops"] > 0 and len(s["mfu"]) == 2 and s["mfu_source"]
    st = flops.staging("resnet18", 224)
    assert sum(st["forward"]) == flops.per_image("resnet18", 224)
    assert [g for g, _ in st["groups"]][0] == "head" and len(st["out_numel"]) == len(st["stages"])
