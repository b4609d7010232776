"""The decision sections of REPORT.md: the verdicts at a glance (with and without the fit gate),
the rule's calibration and power at this design, and the training fit. Markdown lines from the
summary only."""

from __future__ import annotations

from thtl_bench.analysis import claims as claims_mod
from thtl_bench.analysis import rules
from thtl_bench.report.sections import _arm_label, _budget_rule, _details, _iv, _pp, _sizes, _table


def _pc(r: dict | None, digits: int = 1) -> str:
    """'rate % [lo, hi]' of a simulated rate with its Clopper-Pearson interval."""
    if not r:
        return "n/a"
    lo, hi = r["ci95"]
    return f"{100 * r['rate']:.{digits}f} [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def _calibrated(summary: dict, claim: str, model: str) -> dict | None:
    """The calibration's entry of (claim, model), None when it was not calibrated."""
    return next((c for c in (summary.get("calibration") or {}).get("claims") or []
                 if (c["id"], c["model"]) == (claim, model)), None)


def _power_of(summary: dict, claim: str, model: str) -> str:
    c = _calibrated(summary, claim, model)
    if c is None:
        return "-"
    est = [p for p in c["power"] if p["setting"] == "estimated"]
    return f"{100 * est[0]['reproduced']['rate']:.0f} %" if est else "n/a"


def verdicts(summary: dict) -> list[str]:
    """The verdicts at a glance: one row per claim x model (x domain), with the verdict the fit
    gate would give when it is off, the plan hash, the design's calibration and power."""
    sp = summary["stats_params"]
    rows = []
    ids = [c.id for c in claims_mod.CLAIMS]
    models = list(summary["models"]) + [m for m in sp["primary_models"] if m not in summary["models"]]
    shown = [r for r in summary["claims"] if r.get("n_pairs", 0)]
    head_only = []
    for r in sorted(shown, key=lambda r: (ids.index(r["claim"]), r["id"], models.index(r["model"])
                                          if r["model"] in models else len(models))):
        paper = _pp(r["paper_value_pp"]) if r.get("paper_value_pp") is not None else (r.get("paper_says") or "-")
        free = r.get("verdict_ungated")
        rows.append([r["id"], r["model"], claims_mod.contrast(r), r.get("n_pairs", 0),
                     f"{_pp(r.get('diff_pp'))} {_iv(r.get('adj_ci_pp'))}", paper, f"**{r['verdict']}**",
                     "same" if free == r["verdict"] else f"{free} {_iv(r.get('interval_ungated_pp'))}",
                     r.get("family", ""),
                     _power_of(summary, r["claim"], r["model"]) if r.get("family") == "primary" else "-",
                     _passing(r)])
        if r.get("swft_head_only"):
            head_only.append(f"{r['id']}/{r['model']}: {r['swft_head_only']} of {r['swft_replicates']}")
    why: dict[str, dict[str, list[str]]] = {"model": {}, "arm": {}, "run": {}}
    for r in summary["claims"]:
        if r.get("n_pairs", 0):
            continue
        kind = ("model" if r["model"] not in summary["models"]
                else "arm" if not {r.get(f"arm_{x}") for x in "abcd" if r.get(f"arm_{x}")} <= set(summary["arms"])
                else "run")
        why[kind].setdefault(r["model"], []).append(r["id"] + ("" if r.get("family") == "primary" else "*"))
    fam = claims_mod.family(sp)
    alpha = 1.0 - float(sp["confidence"])
    amended = len((summary.get("plan") or {}).get("amendments") or [])
    fixed = ("fixed before the results" if not amended else
             f"fixed before the results and **amended {amended} time(s) after results were seen**, each amendment "
             "dated and explained")
    out = ["## Verdicts at a glance", "",
           f"Analysis plan `{summary['plan_hash']}` (params.yaml `stats:` with the fit gate, {fixed}; "
           f"the rules are below the claims table): primary family {', '.join(sp['primary_claims'])} on "
           f"{', '.join(sp['primary_models'])} (m = {len(fam)}), Holm at family-wise alpha = {alpha:g}; every "
           f"other row is exploratory (unadjusted alpha = {alpha:g}). Estimate = mean paired difference over "
           "replicates (same seed and patient split) in percentage points, with the deciding interval: a t over the "
           "split units whose variance counts training and test-patient sampling once (the units' spread) and the "
           "data set's shared patients once (a separate term). *Without fit gate*: the verdict if every arm "
           "passed the gate. *Power*: the design's, at the paper's effect (section below).", ""]
    passing = any(r.get("n_passing") is not None for r in shown)
    if not passing:
        rows = [row[:-1] for row in rows]
    out.append(_table(rows, ["claim", "model", "A - B (metric)", "replicates", "estimate pp [deciding interval]",
                             "paper", "verdict", "without fit gate", "family", "power"]
                      + (["gate-passing units only"] if passing else []))
               if rows else "No claim could be evaluated.")
    if passing:
        out += ["", "*Gate-passing units only*: where an arm fails the fit gate in some replicates, the same rule on "
                "the split units where every compared arm (and each THTL arm's step 1) passes; one unit or none "
                "decides nothing. It shows whether a withheld verdict hangs on the failing units; it is the plan's "
                "verdict only where the plan allows it (below)."]
    per = [(r, r["per_protocol"]) for r in shown if r.get("per_protocol")]
    if per:
        share = ((summary.get("plan") or {}).get("fit_gate") or {}).get("max_excluded_share")
        out += ["", f"*Decided on the gate-passing replicates* (the plan: at most {100 * share:g} % of a claim's "
                "replicates may fail the gate, and the verdict must be the same without the gate): "
                + "; ".join(f"{r['id']}/{r['model']} on {x['kept']} of {x['of']} replicates"
                            + ("" if x["stands"] else f" (not kept: {r.get('verdict_passing') or 'its verdict'} "
                               f"there, {r.get('verdict_ungated')} without the gate)") for r, x in per) + "."]
    if head_only:
        out += ["", "SWFT selected its head-only step (step 1) in " + "; ".join(head_only) + " replicate(s): there "
                "SWFT *is* THTL last-layer, retrained from the same weights with the same recipe, so its difference "
                "to THTL last-layer is 0 in those replicates by construction."]
    if any(why.values()):
        out += ["", "Not evaluated (each *inconclusive*; * = exploratory; primary members still count in Holm's m):"]
        if why["run"]:
            out.append(f"- no paired records: {_listing(why['run'])} (see Cases not run);")
        if why["arm"]:
            out.append(f"- an arm not in this profile's grid (it trains only {', '.join(summary['arms'])}): "
                       f"{_listing(why['arm'])};")
        if why["model"]:
            out.append(f"- a model not in this profile's grid (it trains only {', '.join(summary['models'])}): "
                       f"{_listing(why['model'])}.")
    in_order = sorted(shown, key=lambda r: (ids.index(r["claim"]), r["id"], r["model"]))
    return out + ruled_out(in_order, summary) + [""] + calibration_note(summary) + [""] + fit_note(summary)


def ruled_out(shown: list[dict], summary: dict) -> list[str]:
    """What an inconclusive primary directional claim's deciding interval says about the effect its
    power is stated at (the calibration's: the paper's, capped by the measured baseline, or the
    registered design effect): excluded, or still inside. Only rows the rule decided on an interval
    (basis "interval"), or withheld by the fit gate and inconclusive without it (that interval,
    labelled so); a reading of the interval at its (Holm) level, not a verdict."""
    lines = []
    for r in shown:
        if r.get("family") != "primary" or r.get("kind") != "directional":
            continue
        if r.get("verdict") == "inconclusive" and r.get("basis") == "interval":
            ci, verdict, which = r.get("adj_ci_pp"), "inconclusive", "deciding interval"
        elif str(r.get("verdict", "")).startswith("not decided") and r.get("verdict_ungated") == "inconclusive":
            ci, verdict, which = (r.get("interval_ungated_pp"), f"{r['verdict']}; without the fit gate inconclusive",
                                  "interval without the gate")
        else:
            continue
        cal = _calibrated(summary, r["claim"], r["model"])
        effect = cal.get("power_effect_pp") if cal else None
        if not ci or None in ci or effect is None:
            continue
        source = (cal.get("effect_source") or "the paper's figure").split(" (")[0]
        what = f"{_pp(effect)} pp, {source}" + (", capped by the measured baseline" if cal.get("power_note") else "")
        head = f"- {r['id']} on {r['model']}: {verdict}; its {which} {_iv(ci)}"
        if effect > ci[1] or effect < ci[0]:
            lines.append(f"{head} **excludes the effect its power is stated at** ({what}; power "
                         f"{_power_of(summary, r['claim'], r['model'])}): an effect that large is ruled out at the "
                         "interval's level; the effects inside the interval are not.")
        elif ci[0] <= 0 <= ci[1]:
            lines.append(f"{head} holds both 0 and the effect its power is stated at ({what}): this design cannot "
                         "tell them apart.")
        else:
            lines.append(f"{head} holds the effect its power is stated at ({what}) and not 0, yet the rule did not "
                         "decide (see the row's note).")
    if not lines:
        return []
    return ["", "**What the primary claims left undecided rule out** (a reading of their intervals, not a "
            "verdict):", *lines]


def _passing(r: dict) -> str:
    """The gate-passing-units reading of a row: '-' where no arm failed the gate."""
    n = r.get("n_passing")
    if n is None:
        return "-"
    units = f"({n} of {(r.get('per_protocol') or {}).get('of', r.get('n_pairs', 0))} units)"
    if r.get("interval_passing_pp") is None:
        return f"{r['verdict_passing']} {units}"
    return f"{r['verdict_passing']} {_pp(r.get('estimate_passing_pp'))} {_iv(r['interval_passing_pp'])} {units}"


def _listing(by_model: dict[str, list[str]]) -> str:
    return "; ".join(f"{', '.join(dict.fromkeys(v))} on {m}" for m, v in by_model.items())


def calibration_note(summary: dict) -> list[str]:
    """One paragraph under the verdicts: is the rule calibrated and powered at this design?"""
    cal = summary.get("calibration")
    if not cal:
        return ["**Calibration and power:** not computed for these records (`thtl-bench calibrate`)."]
    if cal.get("stale"):
        return ["**Calibration and power:** report/calibration.json belongs to other records or another plan "
                "(its key differs): run `thtl-bench calibrate`."]
    v = cal["verdict"]
    fd, cov, pw = v.get("false_decisions"), v.get("coverage"), v.get("power")
    parts = [f"**Calibration at this design** ({cal['settings']['n_sim']} simulated studies per design and setting, "
             "components estimated from these records and a pessimistic setting): false decisions at nominal 5 % "
             f"in {100 * fd[0]:.1f}-{100 * fd[1]:.1f} %, coverage of the 95 % interval {100 * cov[0]:.1f}-"
             f"{100 * cov[1]:.1f} % (targets 2.5-7.5 % and 92-98 %: "
             f"{'met' if v['calibrated'] else '**not met**'})." if fd and cov else
             "**Calibration:** no primary claim with paired records."]
    if pw:
        span = (f"{100 * pw[0]:.0f} %" if f"{100 * pw[0]:.0f}" == f"{100 * pw[1]:.0f}"
                else f"{100 * pw[0]:.0f}-{100 * pw[1]:.0f} %")
        parts.append(f"**Power** of each primary claim at the paper's effect (the registered design effect where "
                     f"the paper gives none; estimated components, Holm's strictest level): {span} (target >= "
                     f"{100 * cal['settings']['min_power']:.0f} %: {'met' if v['powered'] else '**not met**'}).")
    return [" ".join(parts) + " Details: *Calibration and power of the rule* below."]


def calibration(summary: dict) -> list[str]:
    """The calibration section: components used, false decisions and coverage per design, power."""
    cal = summary.get("calibration")
    out = ["## Calibration and power of the rule", ""]
    if not cal or cal.get("stale") or not cal.get("claims"):
        return out + calibration_note(summary)
    s = cal["settings"]
    out += [f"Each primary claim's variance components are estimated from this run's records; the simulation model "
            "(thtl_bench.analysis.simulate: a data set of the records' patients, stratified test splits drawn from it "
            "as the records' splits are, per-image correctness from patient, image, training-run and arm effects) is "
            "fitted to them (*estimated*), and every fitted SD is scaled by "
            f"{s['pessimistic_scale']:g} (*pessimistic*: {s['pessimistic_scale'] ** 2:.2f} x each variance). "
            f"{s['n_sim']} simulated studies per design and setting; rates with their 95 % Clopper-Pearson "
            "interval (Monte-Carlo error). *Plain t*: the same studies judged by a replicate-level t without the "
            "shared-patient term.", ""]
    rows = []
    for c in cal["claims"]:
        m = c["moments"]
        for label in ("estimated", "pessimistic"):
            k = c["components"][label]
            rows.append([f"{c['id']} {c['model']}", c["metric"], label,
                         f"{k['patient']:.2f} / {k['patient_arm']:.2f} / {k['image_arm']:.2f} / {k['train']:.2f}",
                         f"{100 * k['identical']:.0f} %",
                         f"{m['within'] ** 0.5:.1f} / {m['systematic'] ** 0.5:.1f} / {m['train'] ** 0.5:.1f}"
                         if label == "estimated" else "-"])
    out += ["Components (logit-scale SDs: patient / patient x arm / image x arm / training run; the share of "
            "replicates where the arms predict alike) and the records' moments they were fitted to (pp per patient: "
            "within / systematic; pp per replicate: training), labelled estimated or pessimistic:", "",
            _table(rows, ["claim", "metric", "setting", "SDs", "identical", "moments (records)"]), ""]
    rows = []
    for c in cal["claims"]:
        for r in c["calibration"]:
            rows.append([f"{c['id']} {c['model']}", r["setting"], r["units"], _pc(r["decisions"]),
                         _pc(r["coverage"]), f"{100 * r['plain_t_decisions']['rate']:.1f}"])
    out += ["Under the null (no true difference), at the run's own design and at "
            f"{', '.join(map(str, s['replicates']))} split units:", "",
            _table(rows, ["claim", "setting", "split units", "false decisions % (nominal 5)", "coverage % (95 %)",
                          "plain t false decisions %"]), ""]
    rows = []
    for c in cal["claims"]:
        for r in c["power"]:
            rows.append([f"{c['id']} {c['model']}", r["setting"], r["units"], f"{c['power_effect_pp']:+.1f}",
                         f"{r['level']:.4g}", _pc(r["reproduced"]), _pc(r["coverage"])])
    notes = [f"- {c['id']}: {c['effect_source']}" + (f"; {c['power_note']}" if c["power_note"] else "")
             for c in cal["claims"]]
    out += [f"Power at the paper's effect (arm B at its measured rates, arm A shifted; judged at alpha / m = "
            f"{s['level'] / cal['family_size']:.4g}, the strictest level Holm gives a member of the family):", "",
            _table(rows, ["claim", "setting", "split units", "effect pp", "level", "power %", "coverage % (95 %)"]),
            "", *notes]
    return out


def fit_note(summary: dict) -> list[str]:
    gate = (summary.get("plan") or {}).get("fit_gate") or {}
    under = [(c, rep) for c in summary["cells"] for rep in c["fit"]["undertrained"]]
    if not under:
        return ["**Fit gate:** every trained arm of every replicate passed it, so no verdict rests on an "
                "arm that did not train."]
    sizes: dict[str, list[str]] = {}
    for c, _ in under:
        sizes.setdefault(f"{c['model']}/{_arm_label(c, True)}", []).append(_sizes(c))
    one_size = {_sizes(c) for c in summary["cells"]} == {"100 / 100"}
    names = [k if one_size else f"{k} at {', '.join(dict.fromkeys(v))} %" for k, v in sorted(sizes.items())]
    inherited = sum(rep.endswith(" (step 1)") for _, rep in under)
    count = (f"{len(under)} replicate(s) fail it" if not inherited else
             f"{len(under) - inherited} replicate(s) fail it, {inherited} more through a step 1 that fails")
    fitted = f" or training-loss fit gain >= {gate['min_fit_gain']:g}" if gate.get("min_fit_gain") is not None else ""
    kappa = f" (kappa-like gain >= {gate['min_kappa']:g}{fitted}, and converged; or train accuracy >= " \
            f"{gate['min_train_accuracy']:g})" if gate else ""
    share = gate.get("max_excluded_share")
    rest = ("claims on these cells are *not decided*" if share is None else
            f"claims on these cells are *not decided*, unless at most {100 * share:g} % of a claim's replicates "
            "fail and its verdict on the others is the same as without the gate (those rows say \"decided on the k "
            "of n replicates\")")
    return [f"**Fit gate{kappa}: {count}** ({', '.join(names)}): {rest}; the verdict without the gate is in the "
            "table."]


def fit_rule(summary: dict) -> str:
    """The fit gate in words with the plan's numbers (the same words as the rules under the claims)."""
    gate = (summary.get("plan") or {}).get("fit_gate")
    if not gate:
        return ""
    return ("The fit gate (part of the analysis plan: `stats.fit`): an arm is judged on the stage it selected (SWFT: "
            f"the step validation chose); it passes with {rules.gate_text(gate)}. A THTL child of a step 1 that "
            "fails, fails (marked \"(step 1)\").")


def training_fit(summary: dict) -> list[str]:
    rows = []
    several = len(summary["domains"]) > 1
    for c in summary["cells"]:
        f = c["fit"]
        acc = [a for a in f["train_accuracy"] if a is not None]
        kap = [k for k in f.get("kappa") or [] if k is not None]
        gain = [x for x in f.get("fit_gain") or [] if x is not None]
        heads = sum(bool(h) for h in f.get("head_only") or [])
        rows.append([c["model"], _arm_label(c, several), _sizes(c), c["n"],
                     "n/a" if not acc else f"{100 * min(acc):.0f}-{100 * max(acc):.0f}",
                     "n/a" if not kap else f"{min(kap):.2f}-{max(kap):.2f}",
                     "n/a" if not gain else f"{min(gain):.2f}-{max(gain):.2f}",
                     f"{sum(bool(x) for x in f.get('converged') or [])}/{c['n']}",
                     "; ".join("/".join(str(e) for e in ep) or "-" for ep in c["epochs"]),
                     (f"{heads}/{c['n']} head-only" if c["arm"] == "swft" else "-"),
                     ", ".join(f"{r} ({w})" if w else r for r, w in zip(f["undertrained"], [w for w in f.get("why") or []
                                                                                            if w], strict=False))
                     or "none"])
    text = _budget_rule(summary.get("train_by_arm") or {})
    out = ["## Training budget and fit", "",
           f"**The budget rule** (from the records' config): {text or 'not in the records'}. {fit_rule(summary)}", ""]
    return out + _details(f"Fit per cell ({len(rows)} cells): train accuracy and kappa-like gain of the selected "
                          "stage, its training-loss fit gain, converged replicates, epochs per stage and replicate, "
                          "SWFT's selected step, replicates failing the gate",
                          [_table(rows, ["model", "arm", "sizes %", "replicates", "train acc %", "gain (kappa)",
                                         "fit gain (loss)", "converged", "epochs per stage (per replicate)",
                                         "SWFT selected", "fail the gate"])])
