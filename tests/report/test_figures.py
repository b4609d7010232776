"""The report's figures: pixel size, same bytes, plot-data rows, edge cases (tiny inputs)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.text import Text
from PIL import Image

from thtl_bench.report import figures, forest, style


def _cells(models=("resnet18", "resnet50"), arms=("scratch", "thtl_last", "swft"), domains=("larynx",),
           values=(0.6, 0.7, 0.8)) -> list[dict]:
    out = []
    for m in models:
        for a in arms:
            for d in domains:
                for k, metric in enumerate(("accuracy", "recall")):
                    v = [x - 0.05 * k for x in values]
                    out.append({"model": m, "arm": a, "domain": d, "metric": metric, "mean": float(np.mean(v)),
                                "lo": min(v), "hi": max(v), "n": len(v), "values": v,
                                "undertrained": a == "scratch"})
    return out


def _claims() -> list[dict]:
    return [
        {"id": "C1", "model": "resnet18", "text": "THTL last minus one-step last", "diff": -11.0, "ci": [-19.0, -3.0],
         "adj_ci": [-22.0, -1.0], "paper": -14.7, "verdict": "reproduced", "kind": "directional", "margin": None},
        {"id": "C1", "model": "efficientnet_lite0", "text": "THTL last minus one-step last", "diff": None, "ci": None,
         "adj_ci": None, "paper": None, "verdict": "not decided", "kind": "directional", "margin": None},
        {"id": "C10", "model": "resnet18", "text": "a later claim", "diff": 3.0, "ci": [1.0, 5.0], "adj_ci": None,
         "paper": None, "verdict": "contradicted", "kind": "directional", "margin": None},
        {"id": "C5", "model": "resnet18", "text": "one-step vs scratch: small", "diff": 1.0, "ci": [-8.0, 10.0],
         "adj_ci": [-9.0, 11.0], "paper": None, "verdict": "underpowered", "kind": "equivalence", "margin": 5.0},
    ]


def _confusion(arms=("scratch", "onestep_last", "swft")) -> dict:
    return {"model": "resnet18", "classes": ["benign", "malignant"],
            "arms": [{"arm": a, "matrix": [[40 + i, 10], [5, 30 - i]], "n_replicates": 3} for i, a in enumerate(arms)]}


def _swft(n_reps=3, selected=(1, 1, 3)) -> dict:
    steps = [{"step": k, "group": g} for k, g in enumerate(["head", "layer4", "layer3", "layer2", "layer1_stem"], 1)]
    reps = [{"key": f"s{i}/split0", "val": [0.5 + 0.02 * i + 0.01 * k for k in range(5)],
             "test": [0.55 + 0.01 * i - 0.01 * k for k in range(5)], "selected": selected[i]} for i in range(n_reps)]
    return {"model": "resnet18", "steps": steps, "replicates": reps}


def _size_points() -> list[dict]:
    out = []
    for m in ("resnet18", "resnet50"):
        for axis in ("target", "intermediate"):
            for k, f in enumerate((0.02, 0.1, 0.25, 0.5, 0.9, 1.0)):
                g = -4.0 + k + (m == "resnet50")
                out.append({"model": m, "domain": "fundus", "axis": axis, "fraction": f, "gain": g,
                            "lo": g - 3, "hi": g + 3})
    return out


CASES = {  # name: (build, figure, rows, data, row columns)
    "arms_dot": (figures.build_arms_dot, figures.arms_dot_figure, figures.arms_dot_rows, _cells,
                 {"model", "arm", "domain", "metric", "replicate", "value_pct", "mean_pct", "lo_pct", "hi_pct", "n",
                  "undertrained"}),
    "claims_forest": (forest.build_claims_forest, forest.claims_forest_figure, forest.claims_forest_rows, _claims,
                      {"id", "model", "kind", "diff_pp", "ci_lo", "ci_hi", "adj_lo", "adj_hi", "paper_pp",
                       "margin_pp", "verdict"}),
    "confusion": (figures.build_confusion, figures.confusion_figure, figures.confusion_rows, _confusion,
                  {"model", "arm", "true", "predicted", "count", "row_pct", "n_replicates"}),
    "swft_steps": (figures.build_swft_steps, figures.swft_steps_figure, figures.swft_steps_rows, _swft,
                   {"model", "replicate", "split", "step", "group", "accuracy_pct", "selected"}),
    "size_axis": (figures.build_size_axis, figures.size_axis_figure, figures.size_axis_rows, _size_points,
                  {"model", "domain", "axis", "fraction", "gain_pp", "lo_pp", "hi_pp", "undertrained"}),
}


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _shuffled(data):
    """The same data in another order (lists of dicts, or the confusion/swft dict's lists)."""
    rng = random.Random(7)
    if isinstance(data, list):
        data = list(data)
        rng.shuffle(data)
        return data
    key = "arms" if "arms" in data else "replicates"
    items = list(data[key])
    rng.shuffle(items)
    return {**data, key: items}


@pytest.mark.parametrize("name", list(CASES))
def test_png_size_bytes_and_order_independence(name, tmp_path):
    build, draw, _, data, _ = CASES[name]
    a = draw(data(), tmp_path / "a.png")
    b = draw(data(), tmp_path / "sub" / "b.png")  # creates the folder
    c = draw(_shuffled(data()), tmp_path / "c.png")
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()
    assert b"Software" not in a.read_bytes()[:400]  # no matplotlib version stamp
    size = Image.open(a).size
    assert size == build(data()).canvas.get_width_height()  # no tight bbox: the size as built
    assert size[0] == 880 and 250 <= size[1] <= 1400


@pytest.mark.parametrize("name", list(CASES))
def test_rows_have_the_documented_columns(name):
    _, _, rows, data, columns = CASES[name]
    out = rows(data())
    assert out and all(set(r) == columns for r in out)
    assert rows(_shuffled(data())) == out  # sorted inside


# ------------------------------------------------------------------------------- 1. arms dot


def test_arms_dot_rows_and_layout():
    cells = _cells(models=("resnet50", "resnet18"))  # catalog order puts resnet18 first
    rows = figures.arms_dot_rows(cells)
    assert [r["model"] for r in rows][0] == "resnet18"
    assert [r["arm"] for r in rows if r["model"] == "resnet18" and r["metric"] == "accuracy"
            and r["replicate"] == 0] == ["scratch", "thtl_last", "swft"]  # registry order
    first = rows[0]
    assert first["value_pct"] == pytest.approx(60.0) and first["mean_pct"] == pytest.approx(70.0)
    assert first["undertrained"] is True
    fig = figures.build_arms_dot(cells)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["resnet18", "scratch", "thtl_last", "swft",
                                                            "resnet50", "scratch", "thtl_last", "swft"]
    assert [a.get_title() for a in fig.axes[:2]] == ["test accuracy", "malignant recall (sensitivity)"]
    assert "hollow: under-trained (mean: any replicate)" in _texts(fig)
    # the arm's colour on its tick label, and a chance line at 50 % in each panel
    assert to_hex(ax.get_yticklabels()[3].get_color()) == style.arm_colour("swft").lower()
    for a in fig.axes[:2]:
        assert any(list(line.get_xdata()) == [50.0, 50.0] for line in a.get_lines())
    # with the majority-class rate, the accuracy panel is read against it, recall still against 50 %
    fig = figures.build_arms_dot(cells, majority=0.71)
    acc, rec = fig.axes[:2]
    assert any(list(line.get_xdata()) == [71.0, 71.0] for line in acc.get_lines())
    assert not any(list(line.get_xdata()) == [50.0, 50.0] for line in acc.get_lines())
    assert any(list(line.get_xdata()) == [50.0, 50.0] for line in rec.get_lines())
    assert "majority class (71 %)" in _texts(fig)


def test_arms_dot_hollows_only_the_under_trained_replicates():
    cells = _cells(models=("resnet18",), arms=("swft",))
    for c in cells:
        c.update(undertrained=True, undertrained_replicates=[False, True, False])
    rows = figures.arms_dot_rows(cells)
    assert [r["undertrained"] for r in rows if r["metric"] == "accuracy"] == [False, True, False]
    fig = figures.build_arms_dot(cells)
    dots = next(c for c in fig.axes[0].collections if type(c).__name__ == "PathCollection")  # replicate dots
    assert [round(float(fc[3]), 3) for fc in dots.get_facecolors()] == [0.7, 0.0, 0.7]  # hollow = no face


def test_arms_dot_several_domains_one_panel_column_each():
    fig = figures.build_arms_dot(_cells(domains=("fundus", "angiography")), domain_order=["fundus"])
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["fundus: test accuracy", "fundus: malignant recall", "angiography: test accuracy",
                      "angiography: malignant recall"]
    fig.canvas.draw()
    ys = [round(a.get_position().y0, 3) for a in fig.axes]  # one row of panels per domain, metrics side by side
    assert ys[0] == ys[1] and ys[2] == ys[3] and ys[0] > ys[2]


def test_arms_dot_edge_cases(tmp_path):
    one = [{"model": "resnet18", "arm": "swft", "metric": "accuracy", "mean": 0.7, "lo": None, "hi": None,
            "n": 1, "values": [0.7]}]
    figures.arms_dot_figure(one, tmp_path / "one.png")  # one arm, one replicate, no interval, no domain
    rows = figures.arms_dot_rows(one)
    assert rows == [{"model": "resnet18", "arm": "swft", "domain": "larynx", "metric": "accuracy", "replicate": 0,
                     "value_pct": 70.0, "mean_pct": 70.0, "lo_pct": None, "hi_pct": None, "n": 1,
                     "undertrained": False}]
    assert "hollow: under-trained (mean: any replicate)" not in _texts(figures.build_arms_dot(one))
    empty = [{**one[0], "values": []}]
    assert figures.arms_dot_rows(empty)[0]["replicate"] is None
    figures.build_arms_dot(empty)
    with pytest.raises(ValueError, match="no cells"):
        figures.build_arms_dot([])
    with pytest.raises(ValueError, match=r"missing \['mean'\]"):
        figures.build_arms_dot([{"model": "m", "arm": "a", "metric": "accuracy"}])


# ---------------------------------------------------------------------------- 2. claims forest


def test_claims_forest_order_marks_and_verdicts():
    claims = _claims()
    rows = forest.claims_forest_rows(claims)
    # C1 < C5 < C10; within a claim, models in catalog order (resnet18 before efficientnet_lite0)
    assert [(r["id"], r["model"]) for r in rows] == [("C1", "resnet18"), ("C1", "efficientnet_lite0"),
                                                     ("C5", "resnet18"), ("C10", "resnet18")]
    assert rows[0]["adj_lo"] == -22.0 and rows[1]["ci_lo"] is None and rows[1]["paper_pp"] is None
    fig = forest.build_claims_forest(claims)
    ax, right = fig.axes[0], fig.axes[1]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["C1", "resnet18", "efficientnet_lite0", "C5",
                                                            "resnet18", "C10", "resnet18"]
    labels = [t.get_text() for t in right.get_yticklabels()]
    assert labels == ["", "−11.0 pp  reproduced", "n/a  not decided", "", "+1.0 pp  underpowered", "",
                      "+3.0 pp  contradicted"]
    assert to_hex(right.get_yticklabels()[1].get_color()) == style.VERDICT_COLOURS["reproduced"].lower()
    # one paper diamond (only C1 resnet18 has a number), the claim texts on their header rows
    diamonds = [line for line in ax.get_lines() if line.get_marker() == "D"]
    assert len(diamonds) == 1 and list(diamonds[0].get_xdata()) == [-14.7]
    assert {"THTL last minus one-step last", "one-step vs scratch: small", "a later claim"} <= set(_texts(fig))
    assert "equivalence margin" in _texts(fig)
    lo, hi = ax.get_xlim()
    assert lo < -22.0 and hi > 11.0


def test_claims_forest_edge_cases(tmp_path):
    single = [{"id": "C2", "model": "resnet18", "text": "t", "diff": None, "ci": None, "adj_ci": None, "paper": None,
               "verdict": "inconclusive", "kind": "directional", "margin": None}]
    forest.claims_forest_figure(single, tmp_path / "single.png")  # no number at all: zero line only
    assert "equivalence margin" not in _texts(forest.build_claims_forest(single))
    with pytest.raises(ValueError, match="verdict 'maybe' not one of reproduced"):
        forest.build_claims_forest([{**single[0], "verdict": "maybe"}])
    with pytest.raises(ValueError, match="kind 'x'"):
        forest.build_claims_forest([{**single[0], "kind": "x"}])


def test_claims_forest_clips_a_wide_interval_and_says_so():
    # A 2-replicate interval of hundreds of pp beside a decisive one of a few: the axis follows
    # the points and the intervals on 3 or more replicates (ends clipped there, at least 20 and at
    # most 100 pp, arrowheads at the edge, the legend says so).
    base = {"text": "t", "paper": None, "kind": "directional", "margin": None}
    wide = [{**base, "id": "C6", "model": "efficientnet_lite0", "diff": 0.0, "ci": [-6.7, 6.7], "adj_ci": [-6.7, 6.7],
             "verdict": "inconclusive", "n": 12},
            {**base, "id": "C6", "model": "efficientnet_lite2", "diff": 10.7, "ci": [-397.7, 419.1],
             "adj_ci": [-397.7, 419.1], "verdict": "inconclusive", "n": 2}]
    fig = forest.build_claims_forest(wide)
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert -23 < lo < -20 and 20 < hi < 23  # at least 20 pp: the 12-replicate row and the points lie within
    heads = [line for line in ax.get_lines() if line.get_marker() in ("<", ">")]
    assert sorted(float(line.get_xdata()[0]) for line in heads) == [-20.0, -20.0, 20.0, 20.0]
    assert "interval clipped at ±20 pp" in _texts(fig)
    # the points, the paper's numbers, margins and intervals on >= 3 replicates, rounded up; 20 to 100 pp
    assert forest.clip_bound([{"diff": 1.0}]) == 20.0 and forest.clip_bound([{"diff": -170.0}]) == 100.0
    assert forest.clip_bound([{"diff": 1.0, "paper": -24.7}]) == 25.0
    assert forest.clip_bound([{"diff": -9.8, "ci": [-49.3, 29.7], "n": 8}]) == 50.0
    assert forest.clip_bound([{"diff": -9.8, "ci": [-49.3, 29.7], "n": 2}]) == 20.0
    assert forest.clip_bound([{"diff": -9.8, "ci": [-49.3, 29.7]}]) == 50.0  # no n: it counts
    # the rows' data (the CSV behind the figure) keep the real ends
    assert forest.claims_forest_rows(wide)[1]["ci_lo"] == -397.7
    # nothing beyond the clip: no arrowheads, no note, the axis hugs the interval
    nfig = forest.build_claims_forest(wide[:1])
    narrow = nfig.axes[0]
    assert not [line for line in narrow.get_lines() if line.get_marker() in ("<", ">")]
    assert not any("clipped" in t for t in _texts(nfig)) and narrow.get_xlim()[1] < 10


# --------------------------------------------------------------------------------- 3. confusion


def test_confusion_counts_percent_and_colour_bar():
    data = _confusion()
    rows = figures.confusion_rows(data)
    assert [(r["arm"], r["true"], r["predicted"]) for r in rows[:4]] == [
        ("scratch", "benign", "benign"), ("scratch", "benign", "malignant"),
        ("scratch", "malignant", "benign"), ("scratch", "malignant", "malignant")]
    assert rows[0]["count"] == 40 and rows[0]["row_pct"] == pytest.approx(80.0)
    fig = figures.build_confusion(data)
    bars = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylim() == pytest.approx((0.0, 100.0))
    panels = [a for a in fig.axes if a.get_label() != "<colorbar>" and a.get_visible()]
    assert [a.get_title() for a in panels] == ["scratch  (3 replicates)", "onestep_last  (3 replicates)",
                                               "swft  (3 replicates)"]
    assert "40\n80 %" in _texts(fig) and "positive class = malignant" in fig.get_suptitle()


def test_confusion_edge_cases(tmp_path):
    one = {"model": "m", "classes": ["benign", "malignant"],
           "arms": [{"arm": "swft", "matrix": [[0, 0], [3, 4]], "n_replicates": 1}]}
    figures.confusion_figure(one, tmp_path / "one.png")  # one arm, a class without images
    rows = figures.confusion_rows(one)
    assert rows[0]["row_pct"] is None and rows[2]["row_pct"] == pytest.approx(300 / 7)
    assert "0\n–" in _texts(figures.build_confusion(one))
    seven = _confusion(arms=("scratch", "onestep_last", "onestep_all", "thtl_step1", "thtl_last", "thtl_all", "swft"))
    fig = figures.build_confusion(seven)  # 4 + 3 panels, the spare one hidden
    assert sum(a.get_visible() for a in fig.axes if a.get_label() != "<colorbar>") == 7
    with pytest.raises(ValueError, match=r"matrix shape \(3,\), expected \(2, 2\)"):
        figures.build_confusion({**one, "arms": [{"arm": "swft", "matrix": [1, 2, 3]}]})


# -------------------------------------------------------------------------------- 4. SWFT steps


def test_swft_steps_rings_strip_and_rows():
    data = _swft()
    fig = figures.build_swft_steps(data)
    ax, strip = fig.axes[0], fig.axes[1]
    rings = [line for line in ax.get_lines() if line.get_marker() == "o" and line.get_markersize() == 9]
    assert sorted(float(line.get_xdata()[0]) for line in rings) == [1.0, 1.0, 3.0]
    # each ring sits on its replicate's validation curve at the selected step
    assert sorted(round(float(line.get_ydata()[0]), 6) for line in rings) == [50.0, 52.0, 56.0]
    assert [round(p.get_height()) for p in strip.patches] == [2, 0, 1, 0, 0]
    assert [t.get_text() for t in strip.get_xticklabels()] == ["1\n+head", "2\n+layer4", "3\n+layer3",
                                                               "4\n+layer2", "5\n+layer1_stem"]
    assert any("lowest validation loss" in t for t in _texts(fig))
    rows = figures.swft_steps_rows(data)
    mean_val = [r for r in rows if r["replicate"] == "mean" and r["split"] == "val"]
    assert [r["selected"] for r in mean_val] == [2, 0, 1, 0, 0]
    assert mean_val[0]["accuracy_pct"] == pytest.approx(52.0)
    assert [r["selected"] for r in rows if r["replicate"] == "s2/split0" and r["split"] == "val"] == [
        False, False, True, False, False]


def test_swft_steps_edge_cases(tmp_path):
    one = _swft(n_reps=1, selected=(2,))
    one["replicates"][0]["test"] = [0.5, None]  # fewer / missing values
    figures.swft_steps_figure(one, tmp_path / "one.png")
    rows = figures.swft_steps_rows(one)
    test = [r["accuracy_pct"] for r in rows if r["replicate"] == "s0/split0" and r["split"] == "test"]
    assert test == [50.0, None, None, None, None]
    none_selected = {**one, "replicates": [{**one["replicates"][0], "selected": None}]}
    figures.build_swft_steps(none_selected)
    with pytest.raises(ValueError, match="selected step 9"):
        figures.build_swft_steps({**one, "replicates": [{**one["replicates"][0], "selected": 9}]})


# --------------------------------------------------------------------------------- 6. size axis


def test_size_axis_log_x_panels_and_labels():
    fig = figures.build_size_axis(_size_points())
    axes = list(fig.axes)
    assert len(axes) == 2 and all(a.get_xscale() == "log" for a in axes)
    assert axes[0].get_xlabel().startswith("target") and axes[1].get_xlabel().startswith("intermediate")
    labels = [t.get_text() for t in axes[0].get_xticklabels()]
    assert labels == ["2 %", "10 %", "25 %", "50 %", "90 %", "\n100 %"]  # 90/100 % stacked, not overlapping
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["resnet18 · fundus", "resnet50 · fundus"]
    colours = [to_hex(line.get_color()) for line in legend.get_lines()]
    assert colours == [style.model_colour("resnet18"), style.model_colour("resnet50")]
    rows = figures.size_axis_rows(_size_points())
    assert rows[0] == {"model": "resnet18", "domain": "fundus", "axis": "target", "fraction": 0.02, "gain_pp": -4.0,
                       "lo_pp": -7.0, "hi_pp": -1.0, "undertrained": False}


def test_size_axis_one_model_colours_domains_and_marks_under_trained_points():
    pts = [p for p in _size_points() if p["model"] == "resnet18"]
    pts += [{**p, "domain": "angio", "gain": p["gain"] + 3, "undertrained": p["fraction"] == 0.02} for p in pts]
    fig = figures.build_size_axis(pts)
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:2] == ["resnet18 · angio", "resnet18 · fundus"] and "under-" in texts[-1]
    colours = [to_hex(line.get_color()) for line in legend.get_lines()[:2]]
    assert colours[0] != colours[1]  # one model: the domains carry the colour
    hollow = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_markerfacecolor() == "white"]
    assert len(hollow) == sum(bool(p.get("undertrained")) for p in pts) == 2  # one per axis


def test_size_axis_edge_cases(tmp_path):
    one = [{"model": "resnet18", "domain": "fundus", "axis": "target", "fraction": 0.1, "gain": 2.0,
            "lo": None, "hi": None}]
    figures.size_axis_figure(one, tmp_path / "one.png")
    with pytest.raises(ValueError, match="axis 'source'"):
        figures.build_size_axis([{**one[0], "axis": "source"}])
    with pytest.raises(ValueError, match=r"fraction 1.5 outside \(0, 1\]"):
        figures.build_size_axis([{**one[0], "fraction": 1.5}])


# ------------------------------------------------------------------------------------- style


def test_one_colour_per_arm_everywhere():
    from thtl_bench import arms

    colours = [style.arm_colour(a) for a in arms.NAMES]
    assert len(set(colours)) == len(colours)
    assert style.arm_colour("my_arm") == style.arm_colour("my_arm") in style.EXTRA_COLOURS
    assert style.model_colour("tv:resnet18") == style.model_colour("resnet18")
    # the same arm draws in the same colour in the dot plot and the confusion panels
    dot = figures.build_arms_dot(_cells(arms=("swft",)))
    conf = figures.build_confusion(_confusion(arms=("swft",)))
    dot_tick = [t for t in dot.axes[0].get_yticklabels() if t.get_text() == "swft"][0]
    assert to_hex(dot_tick.get_color()) == to_hex(conf.axes[0].title.get_color()) == style.arm_colour("swft").lower()


def test_style_does_not_leak_rc_params():
    import matplotlib

    before = dict(matplotlib.rcParams)
    figures.build_arms_dot(_cells())
    assert dict(matplotlib.rcParams) == before


def test_mechanism_figure_and_the_cam_lift(tmp_path):
    from thtl_bench.analysis import mediator
    from thtl_bench.report import mechanism

    def entry(via, patient, mt, ms, ft=0.1, fs=0.3, arm="thtl_last"):
        return {"model": "m", "arm": arm, "via": via, "image_id": f"{patient}/i.png", "group": patient,
                "segment_mass": {"g1": {"straight": 0.5, "tortuous": 0.5, "dots": 0.0},
                                 "g2": {"straight": ms, "tortuous": mt, "dots": 0.0}},
                "segment_fraction": {"straight": fs, "tortuous": ft, "dots": 0.0}}

    entries = [entry("fundus_vessel_tortuous", p, mt, 0.2) for p, mt in (("a", 0.3), ("b", 0.2), ("c", 0.25))]
    entries += [entry(None, "a", 0.05, 0.2, arm="onestep_last"), entry(None, "b", 0.05, 0.2, arm="onestep_last")]
    entries.append(entry("fundus_vessel", "a", 0.0, 0.0))  # no segment mass: left out
    lifts = {(r["arm"], r["via"]): r for r in mediator.segment_lift(entries)}
    r = lifts[("thtl_last", "fundus_vessel_tortuous")]
    chance = 100 * 0.1 / 0.4
    want = np.array([100 * m / (m + 0.2) - chance for m in (0.3, 0.2, 0.25)])
    assert r["group"] == "g2" and r["patients"] == 3 and r["lift_pp"] == pytest.approx(want.mean())
    assert r["lo_pp"] < r["lift_pp"] < r["hi_pp"] and r["chance_pp"] == pytest.approx(chance)
    assert lifts[("thtl_last", "fundus_vessel")]["lift_pp"] is None
    effects = [{"claim": c, "model": "m", "diff_pp": v, "ci_pp": [v - 5, v + 5], "adj_ci_pp": [v - 6, v + 6],
                "verdict": "inconclusive", "n_pairs": 8} for c, v in (("C6", 4.0), ("C6v", 3.0), ("C6l", -1.0))]
    png = mechanism.mechanism_figure(effects, list(lifts.values()), tmp_path / "mech.png")
    assert png.is_file() and png.stat().st_size > 5000
    # the registered effect a claim was powered at is drawn on its row (hollow diamond, in the legend)
    effects[0].update(design_effect_pp=10.0, direction=1)
    fig = mechanism.build_mechanism(effects, list(lifts.values()))
    ax1 = fig.axes[0]
    diamonds = [ln for ln in ax1.lines if ln.get_marker() == "D"]
    assert len(diamonds) == 1 and list(diamonds[0].get_xdata()) == [10.0] and list(diamonds[0].get_ydata()) == [2]
    assert [t.get_text() for t in ax1.get_legend().get_texts()] == ["registered effect"]
    # the legend sits above the top row's marker and its verdict label, not over them
    fig.canvas.draw()
    box = ax1.get_legend().get_window_extent().transformed(ax1.transData.inverted())
    assert box.y0 > 2.15, box
    rows = mechanism.mechanism_rows(effects, list(lifts.values()))
    assert [r["name"] for r in rows[:3]] == ["C6", "C6v", "C6l"]
    with pytest.raises(ValueError):
        mechanism.build_mechanism([], [])
