"""Golden aggregate of the committed sample records, REPORT.md sections, CLI shells.

Regenerate the golden files after a deliberate change of the aggregation with
`python tests/fixtures/make_sample_records.py --golden`.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from fixtures import make_sample_records as samples

from thtl_bench import records, report
from thtl_bench.analysis import aggregate as agg
from thtl_bench.analysis import claims, rules
from thtl_bench.analysis import summary as summ
from thtl_bench.cli import report as report_cli
from thtl_bench.report import decisions, sections
from thtl_bench.report import plots as plots_mod

DATA = Path(samples.HERE)


@pytest.fixture(autouse=True)
def pinned_registry(monkeypatch):
    """Pin the canonical order (the registries are others' modules; importing models is slow)."""
    monkeypatch.setattr(summ, "_registry", lambda kind: list(samples.GOLDEN_ORDER[kind]))


@pytest.fixture(scope="module")
def sample_records():
    return records.load_all([DATA / "records"])


def _same(a, b, path="$") -> list[str]:
    """Differences between two JSON values; floats compared to 1e-9 relative."""
    if isinstance(a, float) or isinstance(b, float):
        ok = (isinstance(a, (int, float)) and isinstance(b, (int, float))
              and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())} differ"]
        return [d for k in a for d in _same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_calibration_section_from_its_artefact(tmp_path, monkeypatch):
    import functools

    from thtl_bench.analysis import calibration, components

    monkeypatch.setattr(calibration.components, "fit",
                        functools.partial(components.fit, fit_splits=6, pools=2, maxiter=15))
    cfg = _cfg(tmp_path, primary_claims=["C1"], primary_models=["resnet18"])
    cfg["stats"]["calibration"] = {**cfg["stats"]["calibration"], "n_sim": 30}
    recs = records.load_all([DATA / "records"])
    own = calibration.inputs(recs, cfg)[0]["design"].splits
    cfg["stats"]["calibration"]["replicates"] = [3, own]  # the run's own design among the others: shown once
    cal = calibration.run(recs, cfg, workers=1)
    units = [r["units"] for r in cal["claims"][0]["calibration"]]
    assert set(units) == {3, own} and len(units) == 2 * len({3, own})  # two settings, each design once
    (tmp_path / "report" / "calibration.json").write_text(json.dumps(cal))
    text = report.write(cfg, [DATA / "records"]).read_text()
    section = text[text.index("## Calibration and power of the rule"):text.index("## Larynx test results")]
    assert "C1 resnet18" in section and "estimated" in section and "pessimistic" in section
    assert "false decisions % (nominal 5)" in section and "power %" in section
    glance = text[:text.index("## Figures")]
    assert "**Calibration at this design** (30 simulated studies" in glance
    # one primary claim: its power is one number, not a range from itself to itself
    pw = cal["claims"][0]["power"][0]["reproduced"]["rate"]
    assert f"Holm's strictest level): {100 * pw:.0f} % (target" in glance
    # a calibration of other records is not shown as this run's
    cal["key"] = "someone-else"
    (tmp_path / "report" / "calibration.json").write_text(json.dumps(cal))
    assert "belongs to other records" in report.write(cfg, [DATA / "records"]).read_text()


def _cfg(tmp_path: Path, **stats_over) -> dict:
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"].update(stats_over)
    cfg["report"].update(dir=str(tmp_path / "report"), path=str(tmp_path / "REPORT.md"), speed_change=0.2)
    cfg["data"] = {"root": str(tmp_path / "data")}
    cfg["grid"] = {"records_dir": str(DATA / "records")}
    # The FLOP artefact the running side writes beside the report (thtl-bench flops).
    (tmp_path / "report").mkdir(parents=True, exist_ok=True)
    shutil.copy(samples.GOLDEN_FLOPS_PATH, tmp_path / "report" / "flops.json")
    return cfg


def test_sample_records_are_labelled_fixtures(sample_records):
    assert len(sample_records) == 44
    assert all(samples.FIXTURE_NOTE == r["fixture"] for r in sample_records)


def test_golden_summary_and_claims_table(sample_records):
    summary, table = samples.golden_outputs()
    golden = json.loads((DATA / "golden" / "summary.json").read_text())
    diffs = _same(json.loads(json.dumps(summary)), golden)
    assert not diffs, "aggregation changed (regenerate with --golden if intended):\n" + "\n".join(diffs[:20])
    assert table == (DATA / "golden" / "claims_table.md").read_text()


def test_golden_comparison_detects_a_changed_aggregate(sample_records):
    recs = copy.deepcopy(sample_records)
    swft = next(r for r in recs if r["slug"] == "resnet18__swft__fundus__s1__k1")
    swft["metrics"]["test"]["accuracy"] -= 0.01
    changed = agg.aggregate(recs, samples.GOLDEN_CFG, samples.GOLDEN_ORDER)
    golden = json.loads((DATA / "golden" / "summary.json").read_text())
    assert _same(json.loads(json.dumps(changed)), golden)


def _images(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


def test_report_writes_every_section_figures_first(tmp_path):
    cfg = _cfg(tmp_path, bootstrap=200)
    path = report.write(cfg, [DATA / "records"])
    text = path.read_text()
    order = ["# thtl-bench report", "> **Data:**", "## Verdicts at a glance", "**Calibration and power:**",
             "**Fit gate", "## Figures", "### Claims", "### Test accuracy and malignant recall per arm",
             "### Confusion matrices: resnet18", "### SWFT steps: resnet18 via fundus", "### LayerCAM",
             "## Claims: every test", "Decision rules:", "## Calibration and power of the rule",
             "## Larynx test results", "## THTL step 1",
             "## Training budget and fit", "## Reference points", "## Which intermediate domain fits",
             "## Cases not run", "## Speed and cost", "### Projected cost of the full study",
             "### Benchmark targets", "## Provenance", "## Assumptions"]
    at = [text.find(h) for h in order]
    assert all(i >= 0 for i in at), [h for h, i in zip(order, at, strict=True) if i < 0]
    assert at == sorted(at), "sections out of order"
    assert "**synthetic vascular phantoms**" in text and "FIXTURE RECORDS" in text
    assert text.index("## Figures") < 120 * 200  # the first screen is the headline and the verdicts
    glance = text[text.index("## Verdicts at a glance"):text.index("## Figures")]
    assert "| C1      | resnet18" in glance and "**inconclusive**" in glance
    assert "C1, C2, C3, C4, C5 on resnet50" in glance  # primary members without records, in one line
    assert agg.load_summary(tmp_path / "report" / "summary.json")["plan_hash"] in glance
    assert "**Absent**" in text and "cam.json" in text  # no cam.json written
    assert "An extrapolation" in text and "CPU-hours" in text
    assert "vit_b_16 | onestep_last" in text  # a not-run case with its reason
    assert "dvc.lock records no stage output" in text or "dvc.lock not found" in text
    assert "at most 30 epochs" in text and "not before epoch 8" in text  # the budget rule with the records' numbers
    assert "<details>" in text
    rdir = tmp_path / "report"
    for f in ("summary.json", "metrics.json", "headline.json", "figures/claims_forest.png", "figures/arms_dot.png",
              "figures/confusion_resnet18.png", "figures/swft_steps_resnet18__fundus.png",
              *(f"plots/{n}.csv" for n in plots_mod.CSV)):
        assert (rdir / f).is_file(), f
    for img in _images(text):  # every figure the report shows exists
        assert (tmp_path / img).is_file(), img
    metrics = json.loads((rdir / "metrics.json").read_text())
    summary = agg.load_summary(rdir / "summary.json")
    row = next(r for r in summary["claims"] if (r["id"], r["model"]) == ("C3", "resnet18"))
    assert metrics["claims"]["C3.resnet18"]["verdict"] == row["verdict"] and isinstance(row["verdict"], str)
    assert metrics["claims"]["C1.resnet50"]["verdict"] is None and metrics["claims"]["C1.resnet50"]["p"] is None
    swft = next(c for c in summary["cells"] if (c["model"], c["arm"]) == ("resnet18", "swft"))["metrics"]["accuracy"]
    cell = metrics["cells"]["resnet18.swft.via_fundus"]["accuracy_pct"]
    assert cell["mean"] == pytest.approx(100 * swft["mean"], abs=1e-4)
    assert (cell["low"], cell["high"]) == (pytest.approx(100 * swft["ci_low"], abs=1e-4), pytest.approx(100 * swft["ci_high"], abs=1e-4))
    head = json.loads((rdir / "headline.json").read_text())
    assert head["cases_ok"] == 42 and head["primary_claims"]["without_data"] == 5  # resnet50: no records
    first = {f: (rdir / f).read_bytes() for f in ("metrics.json", "headline.json", "summary.json",
                                                  "plots/swft_steps.csv", "figures/arms_dot.png")}
    report.write(cfg, [DATA / "records"])
    assert first == {f: (rdir / f).read_bytes() for f in first}  # deterministic: no dates inside


def test_plot_csvs_carry_their_declared_axes(tmp_path):
    cfg = _cfg(tmp_path, bootstrap=100)
    report.write(cfg, [DATA / "records"])
    for name, (columns, x, y) in plots_mod.CSV.items():
        rows = list(csv.DictReader((tmp_path / "report" / "plots" / f"{name}.csv").open()))
        with (tmp_path / "report" / "plots" / f"{name}.csv").open() as fh:
            assert next(csv.reader(fh)) == columns, name
        if name != "size_axis":  # the fixture has one data size: no size axis
            drawn = [r for r in rows if r[x] != "" and r[y] != ""]
            assert drawn, name
            if name == "claims_forest":  # only claims never evaluated (resnet50: no records) lack a point
                assert {r["model"] for r in rows if r not in drawn} == {"resnet50"}
            else:
                assert drawn == rows, name
    swft = list(csv.DictReader((tmp_path / "report" / "plots" / "swft_steps.csv").open()))
    assert {r["series"].split(" · ")[0] for r in swft} == {"resnet18", "efficientnet_lite0"}
    assert any(r["selected"] == "True" for r in swft)


def test_swft_that_kept_step_1_is_said_so(tmp_path, sample_records):
    recs = copy.deepcopy(sample_records)
    for r in recs:
        if r["case"]["arm"] == "swft" and r["case"]["model"] == "resnet18":
            for st in r["swft_steps"]:
                st["selected"] = st["step"] == 1
    cfg = _cfg(tmp_path, bootstrap=50)
    summary = agg.aggregate(recs, cfg, samples.GOLDEN_ORDER)
    text = sections._swft_caption(summary, "resnet18", "fundus")
    assert "3 of 3 replicate(s) selected step 1" in text and "retrained THTL last-layer" in text


def test_report_cam_section_and_data_version(tmp_path):
    cfg = _cfg(tmp_path, bootstrap=100)
    cfg["_params_file"] = str(tmp_path / "params.yaml")  # dvc.lock is read beside it
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  synth:\n    outs:\n    - path: data\n"
                                       "      hash: md5\n      md5: 0123456789abcdef.dir\n")
    rdir = tmp_path / "report"
    fig = rdir / "figures" / "cam__resnet18.png"
    fig.parent.mkdir(parents=True)
    fig.write_bytes(b"png")
    entries = [{"model": "resnet18", "arm": arm, "via": via, "domain": "larynx", "image_id": "m/1.png",
                "label": "malignant", "figure": str(fig), "vessel_mass": {"layer3": share, "layer4": share / 2},
                "vessel_fraction": 0.1, "pred": "malignant", "prob": 0.9}
               for arm, via, share in (("thtl_last", "fundus", 0.2), ("swft", "fundus", 0.6))]
    (rdir / "cam.json").write_text(json.dumps(entries))
    text = report.write(cfg, [DATA / "records"]).read_text()
    assert f"md5 0123456789abcdef.dir ({tmp_path / 'dvc.lock'}, stage synth)" in text
    assert "**Absent**" not in text
    assert "| resnet18 | swft via fundus      | larynx malignant | 1      | 10.0              | 60.0     | 30.0     |" in text
    assert "min-max scaled" in text
    assert f"![LayerCAM resnet18 · larynx malignant · m/1.png]({fig.relative_to(tmp_path)})" in text
    assert fig.is_file()  # the figures cleanup keeps LayerCAM's own files


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    report_cli.add_cli(p.add_subparsers(dest="command"))
    return p


def test_cli_aggregate_then_report_from_summary(tmp_path, monkeypatch, capsys):
    params = tmp_path / "params.yaml"
    cfg = _cfg(tmp_path, bootstrap=100)
    cfg["profiles"] = {"t": {}}
    params.write_text(json.dumps(cfg))  # JSON is YAML
    args = _parser().parse_args(["aggregate", str(DATA / "records"), "--params", str(params), "--profile", "t"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "42 ok / 2 not run" in out and "| C1 " in out
    summary = tmp_path / "report" / "summary.json"
    assert agg.load_summary(summary)["provenance"]["n_ok"] == 42
    args = _parser().parse_args(["report", "--summary", str(summary), "--params", str(params), "--profile", "t"])
    assert args.func(args) == 0
    assert "## Verdicts at a glance" in (tmp_path / "REPORT.md").read_text()


def test_claims_table_matches_rule_text_parameters(sample_records):
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"]["equivalence_margin_pp"] = 60.0
    res = claims.evaluate(sample_records, cfg, samples.GOLDEN_ORDER)
    c5 = {r["model"]: r for r in res if r["id"] == "C5"}
    # A wide margin turns the small resnet18 difference into a reproduced equivalence.
    assert c5["resnet18"]["verdict"] == "reproduced"
    assert "margin 60 pp" in claims.rule_text(cfg["stats"])


def test_assumptions_read_per_arm_lrs_and_the_common_budget_from_records(sample_records):
    """lrs are arm-dependent and read per case.arm from the engine's config.train; the budget
    is one rule for every arm, and a record that says otherwise shows."""
    cfg = copy.deepcopy(samples.GOLDEN_CFG)
    cfg["stats"]["bootstrap"] = 50
    rows = {r[0]: r[2] for r in sections.per_arm_rows(agg.aggregate(sample_records, cfg, samples.GOLDEN_ORDER))}
    assert rows["lr, new head"] == "scratch/onestep_last/onestep_all/thtl_step1/thtl_last/thtl_all/swft 0.001"
    assert rows[next(k for k in rows if k.startswith("lr, body"))] == (
        "scratch 0.001; onestep_last/onestep_all/thtl_step1/thtl_last/thtl_all/swft 0.0001")
    budget = rows[next(k for k in rows if k.startswith("Epoch budget"))]
    assert budget.startswith("the same for every arm: scratch 8/30/4")

    unfair = copy.deepcopy(sample_records)
    for r in unfair:
        if r["case"]["arm"] == "swft":
            r["config"]["train"]["max_epochs"] = 3
    summ = agg.aggregate(unfair, cfg, samples.GOLDEN_ORDER)
    rows = {r[0]: r[2] for r in sections.per_arm_rows(summ)}
    assert rows[next(k for k in rows if k.startswith("Epoch budget"))].startswith("**differs between arms**")
    assert sections._budget_rule(summ["train_by_arm"]) is None  # no single rule to state


def test_glance_names_each_arms_domain_and_claims_outside_the_grid(tmp_path, sample_records):
    # a domains-profile grid: no SWFT, THTL through several domains; C6v compares thtl_last across two,
    # C6 (the factorial's interaction) across four
    recs = [r for r in copy.deepcopy(sample_records) if r["case"]["arm"] not in ("swft", "thtl_all")]
    summary = agg.aggregate(recs, _cfg(tmp_path, bootstrap=50), samples.GOLDEN_ORDER)
    c1 = next(r for r in summary["claims"] if r["id"] == "C1" and r.get("n_pairs"))
    summary["claims"].append({**c1, "id": "C6v", "claim": "C6v", "arm_b": "thtl_last", "domain": None,
                              "domain_a": "fundus_vessel_tortuous", "domain_b": "fundus_vessel"})
    summary["claims"].append({**c1, "id": "C6", "claim": "C6", "arm_b": "thtl_last", "domain": None,
                              "domain_a": "fundus_vessel_tortuous", "domain_b": "fundus_vessel",
                              "arm_c": "thtl_last", "arm_d": "thtl_last", "domain_c": "fundus_lesion_tortuous",
                              "domain_d": "fundus_lesion"})
    text = "\n".join(decisions.verdicts(summary))
    assert "thtl_last[fundus_vessel_tortuous] - thtl_last[fundus_vessel] (accuracy)" in text
    assert ("(thtl_last[fundus_vessel_tortuous] - thtl_last[fundus_vessel]) - (thtl_last[fundus_lesion_tortuous] - "
            "thtl_last[fundus_lesion]) (accuracy)") in text
    outside = next(line for line in text.splitlines() if line.startswith("- an arm not in this profile's grid"))
    assert "C2*" in outside and "C4*" in outside and "C1" not in outside  # arms swft / thtl_all not in the grid
    # a claim is listed once, under one reason: primary members of a model the grid has are "arm" rows too
    listed = [line for line in text.splitlines() if line.startswith("- ")]
    ids = [f"{i} on {m}" for line in listed for part in line.split(": ", 1)[1].split("; ")
           for m in [part.rsplit(" on ", 1)[-1].split(" ")[0]] for i in part.rsplit(" on ", 1)[0].split(", ")]
    assert len(ids) == len(set(ids)), ids
    # the budget rule without its SWFT clause when no SWFT record states the decay
    rule = sections._budget_rule(summary["train_by_arm"])
    assert rule and "at most 30 epochs" in rule and "SWFT step k" not in rule and "n/a" not in rule
    from thtl_bench import arms
    assert "; SWFT step k" in arms.BUDGET_RULE  # where _budget_rule cuts: a reworded rule must move the cut


def test_transfer_section_is_the_same_from_memory_and_from_summary_json():
    # summary.json is written with sorted keys (dvc's report stage reads it); an in-memory summary
    # keeps insertion order: the rendered tau table must not depend on which one it is
    kendall = {"logme": {"tau": 0.33, "ci": [-1.0, 1.0], "n": 3}, "frechet": {"tau": -0.33, "ci": [-1.0, 1.0], "n": 3}}
    rows = [{"model": "m", "domain": "fundus", "n_replicates": 3, "logme": -0.5, "frechet": 1000.0,
             "gain": -12.0, "gain_lo": -30.0, "gain_hi": 8.0}]
    a = sections.transfer({"transfer": {"rows": rows, "kendall": kendall}})
    b = sections.transfer({"transfer": {"rows": rows, "kendall": dict(reversed(list(kendall.items())))}})
    assert a == b


def test_an_inconclusive_primary_claim_says_whether_its_interval_excludes_the_powered_effect():
    from thtl_bench.report import decisions

    cal = {"claims": [{"id": "C6", "model": "m", "power_effect_pp": 10.0, "power_note": "",
                       "effect_source": "the effect registered with the claim (no published figure)",
                       "power": [{"setting": "estimated", "reproduced": {"rate": 0.88}}]}]}
    row = {"id": "C6", "claim": "C6", "model": "m", "family": "primary", "kind": "directional", "basis": "interval",
           "verdict": "inconclusive", "adj_ci_pp": [-7.9, 4.1]}

    def said(r: dict) -> str:
        return "\n".join(decisions.ruled_out([r], {"calibration": cal}))

    out = said(row)
    assert "C6 on m: inconclusive" in out and "**excludes the effect its power is stated at** (+10.0 pp" in out
    assert "power 88 %" in out and "(no published" not in out
    assert "holds both 0 and the effect" in said({**row, "adj_ci_pp": [-3.0, 12.5]})
    assert "and not 0, yet the rule did not decide" in said({**row, "adj_ci_pp": [0.5, 12.5]})  # e.g. Holm stopped
    withheld = said({**row, "verdict": "not decided: under-trained", "basis": "none", "adj_ci_pp": None,
                     "verdict_ungated": "inconclusive", "interval_ungated_pp": [-7.0, 2.8]})
    assert "not decided: under-trained; without the fit gate inconclusive; its interval without the gate [-7.0, +2.8] " \
           "**excludes" in withheld
    # decided, exploratory, not decided on an interval, or without a calibrated effect: nothing to read
    for other in ({**row, "verdict": "reproduced"}, {**row, "family": "exploratory"}, {**row, "basis": "none"},
                  {**row, "model": "x"}):
        assert said(other) == ""


def test_step1_above_its_shortcut_probe_is_paired_by_split():
    from thtl_bench.report import sections

    cell = {"model": "m", "domain": "fundus_vessel", "trains_on": "fundus_vessel",
            "replicates": [[0, 0], [1, 0], [2, 1], [3, 2]],
            "metrics": {"accuracy": {"values": [0.50, 0.60, 0.40, 0.30]}}}
    entries = [{"domain": "fundus_vessel", "split_seed": 0, "shortcut": {"accuracy": 0.35}},
               {"domain": "fundus_vessel", "split_seed": 1, "shortcut": {"accuracy": 0.30}},
               {"domain": "fundus_vessel", "split_seed": 2, "shortcut": {"accuracy": 0.35}},
               {"domain": "fundus_lesion", "split_seed": 0, "shortcut": {"accuracy": 0.90}}]  # another domain
    gap = sections.above_probe(cell, entries)
    # split 0: mean(50, 60) - 35 = +20; split 1: +10; split 2: -5 (a split's replicates averaged first)
    assert gap["splits"] == 3 and gap["above"] == 2 and gap["mean_pp"] == pytest.approx(25 / 3)
    assert gap["lo_pp"] < gap["mean_pp"] < gap["hi_pp"]
    assert sections.above_probe(cell, entries[3:]) is None  # no probe on this domain's splits


def test_the_glance_says_which_claims_were_decided_on_the_gate_passing_replicates(tmp_path, sample_records):
    from thtl_bench.report import decisions

    summary = agg.aggregate(copy.deepcopy(sample_records), _cfg(tmp_path, bootstrap=50), samples.GOLDEN_ORDER)
    summary["plan"]["fit_gate"]["max_excluded_share"] = 0.1
    c1 = next(r for r in summary["claims"] if r["id"] == "C1" and r.get("n_pairs"))
    text = "\n".join(decisions.verdicts(summary))
    assert "Decided on the gate-passing replicates" not in text
    c1.update(per_protocol={"kept": 19, "of": 20, "stands": True}, n_passing=19, verdict_passing=c1["verdict"],
              interval_passing_pp=c1["adj_ci_pp"], estimate_passing_pp=c1["diff_pp"])
    text = "\n".join(decisions.verdicts(summary))
    line = next(x for x in text.splitlines() if x.startswith("*Decided on the gate-passing replicates*"))
    assert "at most 10 % of a claim's replicates" in line and f"C1/{c1['model']} on 19 of 20 replicates." in line
    assert "(19 of 20 units)" in text  # the gate-passing column counts against all the claim's replicates
    c1["per_protocol"]["stands"] = False
    c1.update(verdict="not decided: under-trained", verdict_passing="reproduced", verdict_ungated="inconclusive")
    line = next(x for x in "\n".join(decisions.verdicts(summary)).splitlines() if x.startswith("*Decided on"))
    assert "(not kept: reproduced there, inconclusive without the gate)" in line


def test_the_fit_note_states_the_plans_rule_for_few_failing_replicates(tmp_path, sample_records):
    from thtl_bench.report import decisions

    summary = agg.aggregate(copy.deepcopy(sample_records), _cfg(tmp_path, bootstrap=50), samples.GOLDEN_ORDER)
    for c in summary["cells"]:
        c["fit"]["undertrained"] = []
    assert decisions.fit_note(summary)[0].startswith("**Fit gate:** every trained arm")
    summary["cells"][0]["fit"]["undertrained"] = ["some_slug"]
    gate = summary["plan"]["fit_gate"]
    gate.pop("max_excluded_share", None)
    (before,) = decisions.fit_note(summary)
    assert "1 replicate(s) fail it" in before and "claims on these cells are *not decided*;" in before
    gate["max_excluded_share"] = 0.1
    (after,) = decisions.fit_note(summary)
    assert "unless at most 10 % of a claim's replicates fail" in after
    # the gate in the training section: the plan's own words and numbers, the same as under the claims
    rule = decisions.fit_rule(summary)
    assert rules.gate_text(summary["plan"]["fit_gate"]) in rule and "(step 1)" in rule
    assert decisions.fit_rule({}) == ""


def test_the_tau_table_adjusts_the_scores_p_values_over_the_scores_tested():
    # six scores asking one question: one p of 0.032 among them is no finding at family-wise 5 %
    ps = {"frechet": 0.684, "hscore": 0.684, "leep": 0.684, "logme": 0.032, "mmd": 1.0, "nce": 0.684}
    kendall = {n: {"tau": 0.1, "p": p, "n": 12} for n, p in ps.items()} | {"other": {"tau": None, "p": None}}
    rows = [{"model": "m", "domain": "fundus", "n_replicates": 3, "logme": -0.5, "gain": -12.0}]
    text = "\n".join(sections.transfer({"transfer": {"rows": rows, "kendall": kendall}}))
    line = next(x for x in text.splitlines() if x.startswith("| logme"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == "0.032" and cells[3] == "0.192"  # Holm: 6 x 0.032
    other = [c.strip() for c in next(x for x in text.splitlines() if x.startswith("| other")).strip("|").split("|")]
    assert other[3] == "n/a" and "The 6 scores are 6 tests of one question" in text
