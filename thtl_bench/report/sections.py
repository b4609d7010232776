"""The sections of REPORT.md, each a list of markdown lines from the summary, the drawn plots
(report.plots) and the gathered inputs (report.gather); nothing here reads files or imports the
running side.

Order: what was run on which data and the verdicts first (one screen), then the figures, then
the tables behind them (long ones folded in <details>), then cost, benchmark targets,
provenance and the assumptions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tabulate import tabulate

from thtl_bench import arms as arms_registry
from thtl_bench.analysis import claims as claims_mod
from thtl_bench.analysis import rules
from thtl_bench.analysis.intervals import t_interval
from thtl_bench.analysis.summary import canonical_order, lookup
from thtl_bench.config import canonical_json

TARGET_COLS = [("accuracy", "accuracy %"), ("recall", "malignant recall %"), ("specificity", "specificity %"),
               ("precision", "precision %"), ("f1", "F1 %"), ("auc", "AUC x100")]

# paper.md's **assumed** choices and our own: (what, config keys tried in order, read from the
# records' config).
ASSUMED = [
    ("Input size (px, square)", ["data.image_size"]),
    ("Resize rule", ["data.resize"]),
    ("CE-NBI label source (patient 092)", ["data.larynx.cenbi_label_source"]),
    ("Batch size", ["train.batch_size"]),
    ("Optimizer", ["train.optimizer"]),
    ("Weight decay", ["train.weight_decay"]),
    ("Schedule after warm-up", ["train.schedule"]),
    ("Gradient clipping (max norm)", ["train.max_grad_norm"]),
    ("New head init (std of N(0, std^2))", ["train.head_init_std"]),
    ("Augmentation", ["train.augment"]),
    ("Frozen-feature views per image (last-layer arms)", ["train.head_only_views"]),
    ("Validation share", ["split.val"]),
    ("Test share", ["split.test"]),
]
PER_ARM = [("lr, new head", "lr_head"), ("lr, body (every group but the head; frozen in last-layer arms)", "lr_body")]
STATEMENTS = [
    "THTL step 1 fine-tunes all layers on the intermediate domain (arms.py `thtl_step1`: trainable {step1}).",
    "SWFT: cumulative groups back to front, each step from the previous step's best weights at a decayed lr; "
    "the step is chosen on the validation split, never the test split.",
    "SWFT groups for non-ResNet families are our generic back-to-front grouping: {groups}.",
    "Every arm's new head starts from the same seeded N(0, std^2) draw (`train.head_init_std`), whatever the "
    "arm: no arm-dependent initialisation.",
    "ImageNet mean/std normalisation of inputs.",
    "C5 'small difference' = within +-{margin:g} pp (`stats.equivalence_margin_pp`, TOST).",
    "Paper numbers of C1-C3 are read as percentage points; the relative change is shown too.",
]


# ----------------------------------------------------------------------------- formatting

def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def _ms(st: dict | None, scale: float = 100.0, ci: bool = False, digits: int = 1) -> str:
    """'mean ± std [lo, hi]' of a metric entry, scaled (100 for %)."""
    if not st or st.get("mean") is None:
        return "n/a"
    s = f"{scale * st['mean']:.{digits}f}"
    if st.get("std") is not None:
        s += f" ± {scale * st['std']:.{digits}f}"
    if ci and st.get("ci_low") is not None:
        s += f" [{scale * st['ci_low']:.{digits}f}, {scale * st['ci_high']:.{digits}f}]"
    return s


def _num(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}"


def _iv(iv: Sequence[float] | None) -> str:
    return "n/a" if iv is None else f"[{iv[0]:+.1f}, {iv[1]:+.1f}]"


def _val(v: Any) -> str:
    return v if isinstance(v, str) else canonical_json(v)


def _cell(x: Any) -> Any:
    # One markdown row per table row: multi-line texts (e.g. not-run reasons) become one line.
    return " ".join(x.split()).replace("|", "\\|") if isinstance(x, str) else x


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    return tabulate([[_cell(x) for x in r] for r in rows], headers=headers, tablefmt="github",
                    disable_numparse=True)


def _details(summary_line: str, body: Sequence[str]) -> list[str]:
    return [f"<details><summary>{summary_line}</summary>", "", *body, "", "</details>"]


def _img(alt: str, path: Path, base: Path) -> str:
    return f"![{alt}]({os.path.relpath(path, base)})"


def _arm_label(c: dict, several_domains: bool) -> str:
    return c["arm"] if c.get("domain") is None or not several_domains else f"{c['arm']} via {c['domain']}"


def _sizes(c: dict) -> str:
    return f"{100 * c['target_fraction']:g} / {100 * c['intermediate_fraction']:g}"


# ----------------------------------------------------------------------------- first screen

def headline(summary: dict) -> list[str]:
    """Which data, which profile, which grid: the first lines of the report."""
    prov = summary["provenance"]
    kinds = prov["data_kinds"]
    lines = []
    if prov.get("fixture"):
        lines += ["> **FIXTURE RECORDS**: at least one record is a fake test fixture "
                  "(tests/fixtures/make_sample_records.py); nothing here is a measurement.", ""]
    if kinds == ["phantom"]:
        what = ("**synthetic vascular phantoms** (no patient data): the numbers test the pipeline and the "
                "statistics, and what the phantoms build in; they say nothing about real laryngeal images.")
    elif kinds == ["real"]:
        what = "**real images**."
    else:
        what = f"a **mix of data kinds {kinds}**: read every table with care."
    reps = sorted({tuple(r) for c in summary["cells"] for r in c["replicates"]})
    sizes = sorted({(c["target_fraction"], c["intermediate_fraction"]) for c in summary["cells"]}, reverse=True)
    grid = (f"{len(summary['models'])} model(s) ({', '.join(summary['models'])}) x {len(summary['arms'])} arm(s) "
            f"x {len(summary['domains'])} intermediate domain(s) ({', '.join(summary['domains']) or 'none'}) x "
            f"{len(reps)} replicate(s) (training seed, split seed: {', '.join(f'{s}/{k}' for s, k in reps)})")
    if len(sizes) > 1:
        grid += f"; data sizes (target / intermediate %): {', '.join(f'{100 * a:g}/{100 * b:g}' for a, b in sizes)}"
    lines.append(f"> **Data:** {what}  \n> **Profile** {', '.join(prov['profiles'])}: {grid}; "
                 f"{prov['n_ok']} case(s) ran, {prov['n_not_run']} not run; "
                 f"{', '.join(map(str, prov['image_sizes']))} px; {'; '.join(prov['devices'])}.")
    return lines


# ----------------------------------------------------------------------------- figures

def figures(summary: dict, plots: Any, g: dict, base: Path) -> list[str]:
    out = ["## Figures", ""]
    if plots.claims_forest:
        out += ["### Claims", "", _img("claims forest plot", plots.claims_forest, base), "",
                "Point = estimate (colour = verdict), thin line = 95 % interval, pale bar = deciding (adjusted) "
                "interval, diamond = the paper's number, band = the equivalence margin.", ""]
    if plots.arms_dot:
        out += ["### Test accuracy and malignant recall per arm", "", _img("models x arms", plots.arms_dot, base), "",
                "Dots = replicates; bar = the cell's replicate-level interval (the claims' rule: t over split units, shared patients once); "
                "hollow dot = an under-trained replicate, hollow mean = at least one in the cell.", ""]
    for model, png in plots.confusion:
        out += [f"### Confusion matrices: {model}", "", _img(f"confusion {model}", png, base), ""]
    for model, dom, png in plots.swft:
        out += [f"### SWFT steps: {model} via {dom}", "", _img(f"SWFT steps {model} {dom}", png, base), "",
                _swft_caption(summary, model, dom), ""]
    if plots.size_axis:
        out += ["### THTL gain against data size", "", _img("size axes", plots.size_axis, base), "",
                "Each point: thtl_last minus onestep_last (test accuracy, pp) with its paired replicate-level "
                "interval; one axis varies at a time (the other at 100 %).", ""]
    out += cam(g, base)
    out += ["", f"Plot data (long format, `dvc plots show`): {', '.join(f'`{os.path.relpath(p, base)}`' for p in plots.csv.values())}."]
    return out


def _swft_caption(summary: dict, model: str, dom: str) -> str:
    curve = next((c for c in summary["swft"] if c["model"] == model and (c["domain"] or "-") == dom), None)
    if not curve:
        return ""
    sel = [r["selected"] for r in curve["replicates"]]
    ones = sum(1 for s in sel if s == 1)
    chosen = ", ".join(f"{r['key']}: {r['selected']}" for r in curve["replicates"])
    text = (f"Solid = validation (it selects the step: {curve['selected_by']}), dashed = test (diagnostic only); "
            f"ring = the step each replicate selected ({chosen}).")
    if ones:
        text += (f" **{ones} of {len(sel)} replicate(s) selected step 1**: there SWFT's result is the head-only "
                 "step, i.e. a retrained THTL last-layer, not the deeper fine-tuning.")
    return text


def cam(g: dict, base: Path) -> list[str]:
    path = g["cam_path"]
    out = ["### LayerCAM", ""]
    entries = g["cam"]
    if entries is None:
        return out + [f"**Absent**: `{os.path.relpath(path, base)}` was not found, so this report has no LayerCAM "
                      "figures. Run `thtl-bench cam` (it writes the figures and cam.json), then `thtl-bench report`."]
    groups = list(dict.fromkeys(k for e in entries for k in (e["vessel_mass"] or {})))
    models = canonical_order("models", [e["model"] for e in entries])
    arms = canonical_order("arms", [e["arm"] for e in entries])

    def mean(values: list) -> str:
        v = [float(x) for x in values if x is not None]
        return _pct(sum(v) / len(v)) if v else "n/a"

    rows = []
    for m in models:
        for a in arms:
            keys = list(dict.fromkeys((e.get("via"), e.get("domain", "larynx"), e.get("label"))
                                      for e in entries if (e["model"], e["arm"]) == (m, a)))
            for via, dom, label in keys:
                sel = [e for e in entries if (e["model"], e["arm"], e.get("via"), e.get("domain", "larynx"),
                                              e.get("label")) == (m, a, via, dom, label)]
                rows.append([m, a + (f" via {via}" if via and a != "thtl_step1" else ""), f"{dom} {label}", len(sel),
                             mean([e.get("vessel_fraction") for e in sel]),
                             *(mean([(e["vessel_mass"] or {}).get(k) for e in sel]) for k in groups)])
    out += ["Each map is min-max scaled on its own (shapes compare, magnitudes do not); each row of a grid gives "
            "the true class and the model's predicted class with its probability; a SWFT row whose replicate "
            "selected step 1 is marked. Share of CAM mass on vessel pixels (%) per arm and layer group, from "
            f"`{os.path.relpath(path, base)}`; `vessel pixels` is what an evenly spread map would get (chance); "
            "n/a: no vessel masks (real data).", "",
            _table(rows, ["model", "arm", "images", "maps", "vessel pixels %"] + groups), ""]
    for fig in dict.fromkeys(e["figure"] for e in entries):
        e = next(x for x in entries if x["figure"] == fig)
        p = Path(fig)  # cam.json paths are relative to the repository root (the working dir)
        label = f"{e['model']} · {e.get('domain', 'larynx')} {e.get('label', '?')} · {e.get('image_id', '?')}"
        missing = "" if p.exists() else " (figure file missing: re-run `thtl-bench cam`)"
        out += [_img(f"LayerCAM {label}", p, base), f"*{label}*{missing}", ""]
    return out


# ----------------------------------------------------------------------------- tables

def claims(summary: dict) -> list[str]:
    return ["## Claims: every test", "",
            "Paper numbers are the abstracts' (ResNet18 / ResNet50 only); other models get the same tests with no "
            "paper number. C6 (the mechanism, an interaction of the 2 x 2 factorial: radial vs tortuous step-1 trees "
            "x lesion- vs vessel-graded step-1 labels) is (A - B) - (C - D) over four THTL last-layer cells; C6v "
            "and C6l are its simple effects. `C1@angio` = claim C1 with the intermediate domain angio "
            "(exploratory).", ""] + \
        _details("The full claims table (intervals, P(A>B), notes)", [claims_mod.table(summary["claims"])]) + \
        ["", "Decision rules:", "", claims_mod.rule_text(summary["stats_params"])]


def target_table(summary: dict) -> list[str]:
    several = len(summary["domains"]) > 1
    rows = []
    for c in summary["cells"]:
        if c["trains_on"] != "larynx":
            continue
        m = c["metrics"]
        rows.append([c["model"], _arm_label(c, several), _sizes(c), c["n"], _ms(m.get("accuracy"), ci=True),
                     *(_ms(m.get(k)) for k, _ in TARGET_COLS[1:])])
    head = ["## Larynx test results (model x arm)", "",
            "Mean ± std over replicates, accuracy with its replicate-level interval (the claims' rule: a t over the "
            "split units with the shared-patient term). Values in %. sizes = target / intermediate training share "
            "in %."]
    if not rows:
        return head + ["", "No larynx records."]
    body = [_table(rows, ["model", "arm", "sizes %", "replicates"] + [h for _, h in TARGET_COLS])]
    return head + [""] + (body if len(rows) <= 16 else _details(f"{len(rows)} cells", body))


def above_probe(cell: dict, entries: Sequence[dict], confidence: float = 0.95) -> dict | None:
    """A step-1 cell's test accuracy minus the shortcut probe's on the same split (references.json),
    paired by split seed (a split's replicates averaged first), in pp: mean, t-interval over the
    splits, and on how many splits it is above. None without at least one paired split."""
    domain = cell.get("domain") or cell.get("trains_on")
    probe = {int(e["split_seed"]): e["shortcut"]["accuracy"] for e in entries
             if e.get("domain") == domain and e.get("split_seed") is not None and (e.get("shortcut") or {}).get(
                 "accuracy") is not None}
    by_split: dict[int, list[float]] = {}
    for (_, split), v in zip(cell.get("replicates") or [], (cell["metrics"].get("accuracy") or {}).get("values") or [],
                             strict=False):
        if v is not None and int(split) in probe:
            by_split.setdefault(int(split), []).append(float(v))
    gaps = [100.0 * (sum(v) / len(v) - probe[k]) for k, v in sorted(by_split.items())]
    if not gaps:
        return None
    t = t_interval(gaps, confidence)
    return {"mean_pp": t["mean"], "lo_pp": t["ci_low"], "hi_pp": t["ci_high"], "splits": len(gaps),
            "above": sum(g > 0 for g in gaps)}


def step1_table(summary: dict) -> list[str]:
    entries = (summary.get("references") or {}).get("entries") or []
    rows = []
    for c in summary["cells"]:
        if c["trains_on"] == "larynx":
            continue
        gap = above_probe(c, entries)
        rows.append([c["model"], c["domain"] or c["trains_on"], _sizes(c), c["n"],
                     _ms(c["metrics"].get("accuracy"), ci=True), _ms(c["metrics"].get("qwk"), scale=1.0, ci=True, digits=3),
                     "n/a" if gap is None else f"{_pp(gap['mean_pp'])}"
                     + (f" {_iv([gap['lo_pp'], gap['hi_pp']])}" if gap["lo_pp"] is not None else "")
                     + f" ({gap['above']} of {gap['splits']} splits above)"])
    out = ["## THTL step 1 (intermediate domains)", "",
           "Test accuracy in % and quadratic weighted kappa (the grades are ordinal); mean ± std [t-interval over "
           "replicates]. *Above the shortcut probe*: test accuracy minus the colour/global-statistics probe's on the "
           "same split (Reference points), pp, with a t-interval over the splits: where it is clearly above, step 1 "
           "learned more than the shortcut carries (n/a: no probe computed)."]
    return out + ["", _table(rows, ["model", "domain", "sizes %", "replicates", "accuracy %", "QWK",
                                    "above the shortcut probe pp"]) if rows else "No step-1 records."]


def references(summary: dict) -> list[str]:
    ref = summary.get("references")
    out = ["## Reference points", ""]
    if not ref or not ref.get("entries"):
        return out + ["Not computed (`thtl-bench references` writes report/references.json)."]

    def acc(x: dict | None) -> str:
        if not x:
            return "n/a"
        ci = x.get("accuracy_ci")
        return f"{100 * x['accuracy']:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")

    rows = [[e["domain"], e.get("split_seed", "-"), e.get("test_groups", "-"), acc(e.get("majority")),
             acc(e.get("ceiling")), acc(e.get("shortcut"))] for e in ref["entries"]]
    return out + ["What a trained model's test accuracy should be read against: always the majority class; the "
                  "ceiling (logistic regression on the generator's per-image truth, e.g. tortuosity: what a perfect "
                  "reader of the label-defining geometry reaches); the shortcut probe (colour histograms and "
                  "global statistics only: near the majority rate means the label cannot be read without the "
                  "vessel geometry). Accuracy % [95 % interval over test patients].", "",
                  _table(rows, ["domain", "split seed", "test patients", "majority", "ceiling", "shortcut probe"])]


def transfer(summary: dict) -> list[str]:
    t = summary.get("transfer")
    out = ["## Which intermediate domain fits: transferability scores", ""]
    if not t or not t.get("rows"):
        return out + ["Not computed (`thtl-bench transfer` writes report/transfer.json from the step-1 "
                      "checkpoints)."]
    names = [n for n in dict.fromkeys(k for r in t["rows"] for k in r)
             if n not in ("model", "domain", "n_replicates", "gain", "gain_lo", "gain_hi")]
    rows = [[r["model"], r["domain"], r["n_replicates"], *(_num(r.get(n), 3) for n in names),
             f"{_pp(r.get('gain'))} {_iv([r['gain_lo'], r['gain_hi']] if r.get('gain_lo') is not None else None)}"]
            for r in t["rows"]]
    def compared(k: dict) -> str:
        if k.get("strata") is None:
            return f"{k.get('n', '-')} (all pairs)"
        return f"{k.get('n', '-')} ({k.get('compared', '-')} pairs within {k['strata']} models)"

    kendall = sorted((t.get("kendall") or {}).items())  # not dict order: JSON sorts
    tested = {n: k["p"] for n, k in kendall if k.get("p") is not None}
    holm = dict(zip(tested, rules.holm_adjusted(list(tested.values())), strict=True))
    taus = [[n, _num(k.get("tau"), 2), _num(k.get("p"), 3) if k.get("p") is not None else "n/a",
             _num(holm[n], 3) if n in holm else "n/a", k.get("p_method") or "-",
             _iv([100 * x for x in k["ci"]]).replace("+", "") if k.get("ci") else (k.get("reason") or "n/a"),
             compared(k)] for n, k in kendall]
    return out + ["Scores of each step-1 network on the target training split (higher = predicted to transfer "
                  "better) and distances between the domains' ImageNet features (lower = closer), beside the "
                  "measured THTL gain (thtl_last - onestep_last, pp [interval]).", "",
                  _table(rows, ["model", "domain", "replicates", *names, "THTL gain pp"]), "",
                  "Does the score predict the gain? Kendall's tau-b between score and gain over the (model, domain) "
                  "pairs (distances with the sign turned, so + means 'predicts'). With several models only pairs of "
                  "one model are compared (a stratified tau; the p permutes gains within each model): each model's "
                  "scores, distances and baseline are on its own scale, and across models tau would rank the models, "
                  "not the domains. Two-sided permutation p, and a bootstrap interval over domains (x100) only where "
                  f"at least 5 domains can be resampled. The {len(tested)} scores are {len(tested)} tests of one "
                  "question (does a score rank the domains?), so one of them below 0.05 happens by chance more often "
                  "than 5 %: read *Holm p*, adjusted over the scores (family-wise 5 %):", "",
                  _table(taus, ["score", "tau", "permutation p", "Holm p", "p method", "interval (x100)",
                                "pairs (compared)"])
                  if taus else "Too few pairs for tau."] + \
        (["", f"{t['note']}"] if t.get("note") else [])


def _budget_rule(by_arm: dict) -> str | None:
    """The budget rule with the records' numbers when every arm recorded the same ones; None
    when the records lack them or the arms differ (per_arm_rows then shows how)."""
    vals = {}
    for k in ("min_epochs", "max_epochs", "patience", "warmup_epochs", "schedule"):
        seen = {_val(x) for a in by_arm.values() for x in a.get(f"train.{k}", [])}
        if len(seen) != 1:
            return None
        vals[k] = seen.pop()
    decay = {_val(x) for a in by_arm.values() for x in a.get("train.swft_lr_decay", [])}
    if len(decay) == 1:
        return arms_registry.budget_text({**vals, "swft_lr_decay": decay.pop()})
    # no SWFT records (or several decays): the rule without its SWFT learning-rate clause
    text = arms_registry.budget_text({**vals, "swft_lr_decay": "?"})
    return text[:text.index("; SWFT step k")] if "; SWFT step k" in text else text


def not_run(summary: dict) -> list[str]:
    out = ["## Cases not run", ""]
    if not summary["not_run"]:
        return out + ["Every case of the records ran."]
    # One row per (model, arm) with its replicates; the reason's first sentence (the full text,
    # with where the weights were looked for and the remedies, is in each record).
    groups: dict[tuple, list[str]] = {}
    for n in summary["not_run"]:
        first = str(n["reason"]).split(". ")[0].split(" Looked in:")[0].strip().rstrip(".")
        groups.setdefault((n["model"], n["arm"], first), []).append(f"s{n['seed']}/k{n.get('split', 0)}")
    rows = [[m, a, ", ".join(r), reason] for (m, a, reason), r in groups.items()]
    return out + [_table(rows, ["model", "arm", "replicates", "reason (full text in the record)"])]


# ----------------------------------------------------------------------------- provenance

def provenance(summary: dict, g: dict, sources: Sequence[str] | None, now: datetime) -> list[str]:
    prov = summary["provenance"]
    libs = "; ".join(f"{k} {', '.join(v)}" for k, v in prov["libraries"].items())
    rows = [
        ["report code (git commit)", g["repo_commit"]],
        ["commit(s) that produced the records", ", ".join(prov["record_git_commits"])],
        ["data version (.dvc of the profile's data folder, this checkout)", g["data_version"]],
        ["data kind (from records)", ", ".join(prov["data_kinds"])],
        ["data fingerprints (from records)",
         "; ".join(f"{d}: {', '.join(v)}" for d, v in prov["data_fingerprints"].items())],
        ["profile(s)", ", ".join(prov["profiles"])],
        ["analysis plan hash", summary["plan_hash"]],
        ["device(s)", "; ".join(prov["devices"])],
        ["machine(s) (CPU model, numpy SIMD, torch CPU capability)", "; ".join(prov.get("machines") or []) or "n/a"],
        ["platform(s)", "; ".join(prov["platforms"])],
        ["execution (records' env)", "; ".join(f"{k} {', '.join(v)}" for k, v in prov["execution"].items()) or "n/a"],
        ["libraries (records)", libs or "n/a"],
        ["libraries (report)", g["libraries"]],
        ["records", f"{prov['n_records']} ({prov['n_ok']} ok, {prov['n_not_run']} not run), digest "
                    f"{prov['records_digest']}, created {' .. '.join(prov['created'] or [])}"],
        ["records folder(s)", ", ".join(map(str, sources)) if sources else "(from summary.json)"],
        ["report date (UTC)", now.strftime("%Y-%m-%d %H:%M")],
    ]
    return ["## Provenance", ""] + _details("What produced this report", [_table(rows, ["item", "value"])])


def _recorded(conf: dict[str, list], key: str) -> str | None:
    """Recorded value(s) of a config key, or of its sub-keys when the key is a section."""
    v = lookup(conf, key)
    if v is not None:
        return ", ".join(_val(x) for x in v)
    sub = {k: vs for k, vs in conf.items() if k.startswith(key + ".") or f".{key}." in k}
    if not sub:
        return None
    return "; ".join(f"{k.split(key + '.', 1)[1]}={', '.join(_val(x) for x in vs)}" for k, vs in sub.items())


def per_arm_rows(summary: dict) -> list[list[str]]:
    """Rows for the arm-dependent parameters (PER_ARM), arms with equal values grouped, read from
    the records per case.arm (summary['train_by_arm'])."""
    by_arm = summary.get("train_by_arm") or {}
    names = list(summary.get("arms") or by_arm)
    rows = []
    for what, key in PER_ARM:
        groups: dict[str, list[str]] = {}
        for a in names:
            recorded = (by_arm.get(a) or {}).get(f"train.{key}")
            text = "n/a (not in records)" if recorded is None else ", ".join(_val(x) for x in recorded)
            groups.setdefault(text, []).append(a)
        value = "; ".join(f"{'/'.join(arms)} {text}" for text, arms in groups.items())
        rows.append([what, f"records' config.train.{key}, by case.arm", value or "no records"])
    budget = {a: tuple(_val(x) for k in ("min_epochs", "max_epochs", "patience")
                       for x in (by_arm.get(a) or {}).get(f"train.{k}", [None])) for a in names}
    same = len(set(budget.values())) <= 1
    rows.append(["Epoch budget (min / max / patience) per stage, every SWFT step included",
                 "records' config.train.{min_epochs,max_epochs,patience}, by case.arm",
                 ("the same for every arm: " if same else "**differs between arms**: ")
                 + "; ".join(f"{a} {'/'.join(v)}" for a, v in budget.items()) if budget else "no records"])
    return rows


def assumptions(summary: dict) -> list[str]:
    conf = summary.get("config") or {}
    rows = []
    for dom, classes in (summary["provenance"].get("classes") or {}).items():
        rows.append([f"Classes of {dom}", "records' data.classes", _val(classes)])
    reps = sorted({tuple(r) for c in summary["cells"] for r in c["replicates"]})
    rows.append(["Replicates (training seed, split seed)", "records' case.seed / case.split",
                 ", ".join(f"{s}/{k}" for s, k in reps) or "none"])
    for what, keys in ASSUMED:
        found = next(((k, v) for k in keys if (v := _recorded(conf, k)) is not None), None)
        rows.append([what, found[0], found[1]] if found else [what, keys[0], "not in records' config"])
    rows += per_arm_rows(summary)
    step1 = arms_registry.get("thtl_step1").trainable
    other = sorted({"+".join(c["steps"][-1]["groups"] or []) for c in summary["swft"]
                    if not c["model"].split(":")[-1].startswith("resnet")})
    sp = summary["stats_params"]
    stmts = [t.format(step1=step1, groups="; ".join(other) or "none measured",
                      margin=float(sp["equivalence_margin_pp"])) for t in STATEMENTS]
    params = [[k, ", ".join(_val(x) for x in v[:8]) + (f" ... ({len(v)} values)" if len(v) > 8 else "")]
              for k, v in conf.items()]
    return (["## Assumptions", "",
             "Choices the papers do not state (docs/study.md **assumed** items) and the values the records were "
             "produced with (read from the records' config).", ""]
            + [f"- {s}" for s in stmts] + [""]
            + _details("Assumed choices and their recorded values", [_table(rows, ["assumed choice", "key",
                                                                                   "value(s) used"])])
            + [""] + _details("Every parameter in the records' config",
                              [_table(params, ["key", "value(s)"]) if params else "(none recorded)"]))
