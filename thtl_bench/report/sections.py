"""The sections of REPORT.md, each a list of markdown lines from the summary and the gathered
inputs (report.gather); nothing here reads files or imports the running side."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tabulate import tabulate

from thtl_bench import arms as arms_registry
from thtl_bench.analysis import claims as claims_mod
from thtl_bench.analysis.summary import canonical_order, lookup
from thtl_bench.config import canonical_json
from thtl_bench.report.figures import swft_figure

LARYNX_COLS = [("accuracy", "accuracy % (mean ± std [CI])"), ("recall", "malignant recall %"),
               ("specificity", "specificity %"), ("precision", "precision %"), ("f1", "F1 %"),
               ("auc", "AUC x100")]

# paper.md's **assumed** choices and our own: (what, config keys tried in order: the records'
# config first, then params.yaml as it is now, which the table says).
ASSUMED = [
    ("Input size (px, square)", ["data.image_size"]),
    ("Resize rule", ["data.resize"]),
    ("CE-NBI label source (patient 092)", ["data.larynx.cenbi_label_source"]),
    ("Batch size", ["train.batch_size"]),
    ("Optimizer", ["train.optimizer"]),
    ("Weight decay", ["train.weight_decay"]),
    ("Schedule", ["train.schedule"]),
    ("Early stopping patience (val loss)", ["train.patience"]),
    ("Gradient clipping (max norm)", ["train.max_grad_norm"]),
    ("Augmentation", ["train.augment"]),
    ("Frozen-feature views per image (last-layer arms)", ["train.head_only_views"]),
    ("Validation share", ["split.val"]),
    ("Test share", ["split.test"]),
    ("Split seed", ["split.seed"]),
    ("Target training fraction", ["split.target_fraction"]),
    ("Intermediate training fraction", ["split.intermediate_fraction"]),
]
# Arm-dependent training parameters: the engine records each arm's own values under these
# config.train keys (engine.case._train_subset), so the table reads them per case.arm.
PER_ARM = [
    ("lr, new head (per arm)", "lr_head"),
    ("lr, body = every group but the head (per arm; frozen in last-layer arms)", "lr_body"),
    ("Epoch budget per stage (per arm; SWFT: per step)", "max_epochs"),
]
STATEMENTS = [
    "THTL step 1 fine-tunes all layers on fundus (arms.py `thtl_step1`: trainable {step1}).",
    "SWFT: cumulative groups back to front, each step from the previous step's best weights; the "
    "best step is chosen on the validation split, never the test split.",
    "SWFT groups for non-ResNet families are our generic back-to-front grouping: {groups}.",
    "The nine models (paper names only ResNet18/50): {paper_models}.",
    "ImageNet mean/std normalisation of inputs.",
    "C5 'small difference' = within +-{margin:g} pp (`stats.equivalence_margin_pp`); claims decide on "
    "the image bootstrap below {below} seeds (`stats.bootstrap_below_seeds`).",
    "Paper numbers of C1-C3 are read as percentage points; the relative reading is checked too.",
]


# ----------------------------------------------------------------------------- formatting

def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def _ms(st: dict | None, scale: float = 100.0, ci: bool = False, digits: int = 1) -> str:
    """'mean ± std [lo, hi]' of a stats.t_interval dict, scaled (100 for %)."""
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


def _val(v: Any) -> str:
    return v if isinstance(v, str) else canonical_json(v)


def _cell(x: Any) -> Any:
    # One markdown row per table row: multi-line texts (e.g. not-run reasons) become one line.
    return " ".join(x.split()).replace("|", "\\|") if isinstance(x, str) else x


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    return tabulate([[_cell(x) for x in r] for r in rows], headers=headers, tablefmt="github",
                    disable_numparse=True)


def _slugname(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in model)


# ----------------------------------------------------------------------------- sections

def headline(summary: dict) -> list[str]:
    prov = summary["provenance"]
    kinds = prov["data_kinds"]
    lines = []
    if prov.get("fixture"):
        lines.append("> **FIXTURE RECORDS**: at least one record is a fake test fixture "
                     "(tests/fixtures/make_sample_records.py); nothing here is a measurement.")
    if kinds == ["phantom"]:
        what = ("**synthetic phantom images** (no patient data). The numbers test the pipeline and the "
                "statistics; they say nothing about real laryngeal images or the papers' clinical claims.")
    elif kinds == ["real"]:
        what = f"**real images** (fingerprints {prov['data_fingerprints']})."
    else:
        what = f"a **mix of data kinds {kinds}**: read every table with care."
    if lines:
        lines.append("")
    lines.append(f"> **Which data produced this report:** {what} Profile(s) "
                 f"{', '.join(prov['profiles'])}, {prov['n_ok']} cases run, {prov['n_not_run']} not run, "
                 f"image size {', '.join(map(str, prov['image_sizes']))} px, device(s) "
                 f"{'; '.join(prov['devices'])}.")
    return lines


def provenance(summary: dict, g: dict, sources: Sequence[str] | None, now: datetime) -> list[str]:
    prov = summary["provenance"]
    libs = "; ".join(f"{k} {', '.join(v)}" for k, v in prov["libraries"].items())
    rows = [
        ["report code (git commit)", g["repo_commit"]],
        ["commit(s) that produced the records", ", ".join(prov["record_git_commits"])],
        ["data version (data.dvc, current checkout)", g["data_version"]],
        ["data kind (from records)", ", ".join(prov["data_kinds"])],
        ["data fingerprints (from records)",
         "; ".join(f"{d}: {', '.join(v)}" for d, v in prov["data_fingerprints"].items())],
        ["profile(s)", ", ".join(prov["profiles"])],
        ["device(s)", "; ".join(prov["devices"])],
        ["platform(s)", "; ".join(prov["platforms"])],
        ["execution (records' env)", "; ".join(f"{k} {', '.join(v)}" for k, v in prov["execution"].items())
         or "n/a"],
        ["libraries (records)", libs or "n/a"],
        ["libraries (report)", g["libraries"]],
        ["records", f"{prov['n_records']} ({prov['n_ok']} ok, {prov['n_not_run']} not run), digest "
                    f"{prov['records_digest']}, created {' .. '.join(prov['created'] or [])}"],
        ["records folder(s)", ", ".join(map(str, sources)) if sources else "(from summary.json)"],
        ["report date (UTC)", now.strftime("%Y-%m-%d %H:%M")],
    ]
    return ["## Provenance", "", _table(rows, ["item", "value"])]


def not_run(summary: dict) -> list[str]:
    out = ["## Cases not run", ""]
    if not summary["not_run"]:
        return out + ["Every case of the records ran."]
    # One row per (model, arm) with its seeds; the reason's first sentence (the full text, with
    # where the weights were looked for and the remedies, is in each record).
    groups: dict[tuple, dict] = {}
    for n in summary["not_run"]:
        first = str(n["reason"]).split(". ")[0].split(" Looked in:")[0].strip().rstrip(".")
        g = groups.setdefault((n["model"], n["arm"], first), {"seeds": []})
        g["seeds"].append(str(n["seed"]))
    rows = [[m, a, ", ".join(g["seeds"]), reason] for (m, a, reason), g in groups.items()]
    return out + [_table(rows, ["model", "arm", "seeds", "reason (full text in the record)"])]


def grid(summary: dict, conf: float) -> list[str]:
    rows = []
    for c in summary["cells"]:
        if c["domain"] != "larynx":
            continue
        m = c["metrics"]
        rows.append([c["model"], c["arm"], c["n"], _ms(m["accuracy"], ci=True),
                     *(_ms(m[k]) for k, _ in LARYNX_COLS[1:])])
    head = ["## Larynx test results (model x arm)", "",
            f"Mean ± std over seeds; accuracy also with its {100 * conf:g} % t-interval over seeds "
            "(none with one seed). Values in %."]
    if not rows:
        return head + ["", "No larynx records."]
    conf_rows = [[c["model"], c["arm"], *(c["confusion_sum"][0] + c["confusion_sum"][1])]
                 for c in summary["cells"] if c["domain"] == "larynx" and c["confusion_sum"]]
    return head + ["", _table(rows, ["model", "arm", "seeds"] + [h for _, h in LARYNX_COLS]), "",
                   "Confusion matrices (test split, summed over seeds; positive = malignant):", "",
                   _table(conf_rows, ["model", "arm", "TN", "FP", "FN", "TP"])]


def fundus(summary: dict, conf: float) -> list[str]:
    rows = [[c["model"], c["n"], _ms(c["metrics"]["accuracy"], ci=True),
             _ms(c["metrics"].get("qwk"), scale=1.0, ci=True, digits=3)]
            for c in summary["cells"] if c["domain"] == "fundus"]
    out = ["## THTL step 1 (fundus, intermediate domain)", "",
           f"DR grading test accuracy in % and quadratic weighted kappa; mean ± std [{100 * conf:g} % t-interval]."]
    return out + ["", _table(rows, ["model", "seeds", "accuracy %", "QWK"]) if rows else "No fundus records."]


def claims(summary: dict) -> list[str]:
    return ["## Claims C1-C5", "",
            "Paper numbers are the abstracts' (ResNet18 / ResNet50 only); other models get the same "
            "tests with no paper number. pp = percentage points.", "",
            claims_mod.table(summary["claims"]), "", "Decision rules:", "",
            claims_mod.rule_text(summary["stats_params"])]


def swft(summary: dict, rdir: Path, base: Path) -> list[str]:
    out = ["## SWFT step curves", "",
           f"Plot data: `{os.path.relpath(rdir / 'swft_steps.csv', base)}` (mean over seeds). "
           "`selected` = seeds whose best step (chosen on validation) is this one."]
    if not summary["swft"]:
        return out + ["", "No SWFT records."]
    for curve in summary["swft"]:
        png = swft_figure(curve, rdir / "figures" / f"swft_steps_{_slugname(curve['model'])}.png")
        rows = [[s["step"], "+" + (s["groups"] or ["?"])[-1], s["n"],
                 _pct(s["val_mean"]) + ("" if s["val_std"] is None else f" ± {_pct(s['val_std'])}"),
                 _pct(s["test_mean"]) + ("" if s["test_std"] is None else f" ± {_pct(s['test_std'])}"),
                 s["selected"]] for s in curve["steps"]]
        out += ["", f"### {curve['model']}", "", f"![SWFT steps {curve['model']}]({os.path.relpath(png, base)})",
                "", _table(rows, ["step", "group added", "seeds", "val acc %", "test acc %", "selected"])]
    return out


def cam(g: dict, base: Path) -> list[str]:
    path = g["cam_path"]
    out = ["## LayerCAM", ""]
    entries = g["cam"]
    if entries is None:
        return out + [f"**Absent**: `{os.path.relpath(path, base)}` was not found, so this report has no "
                      "LayerCAM figures. Run `thtl-bench cam` (it writes the figures and cam.json), then "
                      "`thtl-bench report`."]
    groups = list(dict.fromkeys(g for e in entries for g in (e["vessel_mass"] or {})))
    models = canonical_order("models", [e["model"] for e in entries])
    arms = canonical_order("arms", [e["arm"] for e in entries])
    domains = list(dict.fromkeys(e.get("domain", "larynx") for e in entries))

    def mean(values: list) -> str:
        v = [float(x) for x in values if x is not None]
        return _pct(sum(v) / len(v)) if v else "n/a"

    rows = []
    for m in models:
        for a in arms:
            for d in domains:
                sel = [e for e in entries if (e["model"], e["arm"], e.get("domain", "larynx")) == (m, a, d)]
                if sel:
                    rows.append([m, a, d, len(sel), mean([e.get("vessel_fraction") for e in sel]),
                                 *(mean([(e["vessel_mass"] or {}).get(g) for e in sel]) for g in groups)])
    out += [f"Mean share of CAM mass on vessel pixels (%) per arm and layer group, from "
            f"`{os.path.relpath(path, base)}`; `vessel pixels` is the share a map spread evenly would "
            "get (chance). n/a: no vessel masks (real data).", "",
            _table(rows, ["model", "arm", "domain", "maps", "vessel pixels %"] + groups)]
    figs = list(dict.fromkeys(e["figure"] for e in entries))
    for fig in figs:
        e = next(x for x in entries if x["figure"] == fig)
        p = Path(fig)  # cam.json paths are relative to the repository root (the working dir)
        label = f"{e['model']} / {e.get('domain', 'larynx')} {e.get('label', '?')} / {e.get('image_id', '?')}"
        missing = "" if p.exists() else " (figure file missing: re-run `thtl-bench cam`)"
        out += ["", f"![LayerCAM {label}]({os.path.relpath(p, base)})", f"*{label}*{missing}"]
    return out


def speed(summary: dict) -> list[str]:
    rows = []
    for c in summary["cells"]:
        t = c["timing"]
        rows.append([c["model"], c["arm"], c["n"], ", ".join(map(str, c["image_size"])),
                     _ms({"mean": t["train_images_per_s"]["mean"], "std": t["train_images_per_s"]["std"]}, 1.0),
                     _num(t["inference_images_per_s"]["mean"]), _num(t["wall_s"]["mean"]),
                     _num(t["epoch_s"]["mean"], 2), "; ".join(c["devices"])])
    ex = summary["provenance"].get("execution") or {}
    knobs = "; ".join(f"{k} {', '.join(v)}" for k, v in ex.items()) or "not recorded"
    out = ["## Speed", "",
           f"Measured per case (mean ± std over seeds) on {'; '.join(summary['provenance']['devices'])}; "
           f"execution settings: {knobs}.", "",
           _table(rows, ["model", "arm", "seeds", "px", "train img/s", "inference img/s",
                         "wall s / case", "s / epoch", "device"])]
    return out + [""] + projection(summary["projection"])


def projection(p: dict) -> list[str]:
    s = p.get("settings")
    if not s:
        return ["### Projected cost of the full study", "", f"Not projected: {p.get('missing', 'no settings')}."]
    gpu = p["basis"] == "gpu"
    unit = "GPU-hours" if gpu else "CPU-hours"
    head = ["### Projected cost of the full study", "",
            f"Grid: {len(s['models'])} models x {len(s['arms'])} arms x {s['seeds']} seeds, "
            f"{s['fundus_images']} fundus / {s['larynx_images']} larynx images, {s['image_size']} px, up to "
            f"{s['max_epochs']} epochs per stage (every SWFT step too)"
            + (f" (profile `{p['profile']}`)." if p.get("profile") else ".")]
    if not p["per_model"]:
        return head + ["", "No timed records: nothing to project."]
    sizes = ", ".join(map(str, p["measured_image_sizes"]))
    n_arms = len(s["arms"])

    def arms(e: dict, key: str) -> str:
        got = e.get(key) or []
        return "all" if len(got) == n_arms else (", ".join(got) or "-")

    rows = [[e["model"], "yes" if e["in_paper_grid"] else "no (not summed)", _num(e.get("gflop_per_image"), 2),
             arms(e, "arms_measured"), arms(e, "arms_estimated"), _num(e["hours"], 1),
             ", ".join(e["arms_missing"]) or "-"] for e in p["per_model"]]
    by_flops = p.get("compute_scale") == ["flops"]
    scale = ("counted forward FLOPs per image (torch FlopCounterMode)" if by_flops
             else "counted forward FLOPs per image where the model can be counted, else pixel count")
    est = p.get("estimated_hours") or 0.0
    lo, hi = p.get("total_hours_range") or (None, None)
    text = [
        f"Measured on **{'; '.join(p['devices'])}** at **{sizes} px**. Each measured case is scaled to "
        f"the study size: every part by the images ratio; epochs also by the epoch-budget ratio and the "
        f"compute ratio (not for a head-only arm on cached features: its epochs train a linear layer on "
        f"pooled features); the rest of its wall time (frozen-feature cache, evaluation, setup) by the "
        f"compute ratio. Compute is {scale} at {s['image_size']} px over the measured size. A measured "
        f"(model, arm) costs the mean over its seeds. A (model, arm) not measured is estimated by a fit "
        f"seconds = model factor x arm factor over the measured ones: a measured model keeps its own "
        f"factor; a model never measured gets its forward FLOPs times the measured models' factor per "
        f"FLOP (geometric mean; the range below uses the lowest and the highest). Each cell is charged "
        f"{s['seeds']} seeds. THTL step 1 is one case per (model, seed), shared by the THTL arms.",
        "",
        _table(rows, ["model", "in study grid", f"forward GFLOP / image ({s['image_size']} px)", "arms measured",
                      "arms estimated", f"{unit} (arms x seeds)", "arms not priced"]),
        "",
        f"**Projected total: {_num(p['total_hours'], 1)} {unit}** on the machine above"
        + (f" (range {_num(lo, 1)}-{_num(hi, 1)} with the lowest / highest measured cost per FLOP)" if lo is not None else "")
        + f", of which {_num(est, 1)} estimated for (model, arm) cells that were not measured"
        + (f". **Incomplete**: not priced (no arm measured anywhere): {', '.join(p['unpriced'])}."
           if p.get("unpriced") else "."),
        "",
    ]
    if gpu:
        if any(int(x) != int(s["image_size"]) for x in p["measured_image_sizes"] if x is not None):
            text.append(f"The compute scaling from {sizes} px to {s['image_size']} px is an extrapolation.")
        if est:
            text.append("Estimated cells assume run time proportional to the fitted factors; on a GPU, "
                        "memory-bound models (depthwise convolutions) run further below peak than dense ones.")
    else:
        text.append(
            f"**This is an extrapolation**: measured on CPU at {sizes} px and scaled by "
            f"{'counted FLOPs' if by_flops else 'counted FLOPs or pixel count'} to {s['image_size']} px; run time does not scale exactly with FLOPs (small images use the cores "
            "less well, depthwise convolutions are memory-bound), early stopping may end cases sooner, "
            "and no GPU record exists, so no GPU-hour figure can be derived from these records. Run the "
            "grid on a GPU (`-S train.device=cuda`) and re-run the report: GPU records are then used.")
    return head + [""] + text


def perf(g: dict) -> list[str]:
    """The benchmark suite's figures against their targets: `perf.json` (one entry per case of
    benchmarks/test_perf.py) and `bench_session.json` (the benchmark session)."""
    rdir = g["report_dir"]
    head = ["### Benchmark targets", ""] + [x for n in g["bench_notes"] for x in (n, "")]
    last = g.get("last_run") or {}
    if last and last.get("status") != "ok":
        why = last.get("partial") or f"{last.get('failed', 0)} case(s) failed"
        head += [f"**The last benchmark run ({last.get('created', '?')}, profile `{last.get('profile')}`) did not "
                 f"finish cleanly: {why}.** The figures below are from the last clean run; "
                 f"first failures: {'; '.join(last.get('errors') or []) or 'none recorded'}.", ""]
    perf, sess = g["perf"], g["session"]
    if not perf and not sess:
        return head + [f"No benchmark results in {rdir} (perf.json, bench_session.json): run `nox -s benchmark`."]

    def verdict(met: Any, why: str | None = None) -> str:
        return {True: "met", False: "**not met**"}.get(met, f"not judged{f' ({why})' if why else ''}")

    def where(e: dict) -> str:
        bits = [str(e.get("device_name") or e.get("device") or "?")]
        if e.get("threads"):
            bits.append(f"{e['threads']} threads" + (f", load {e['loadavg_1m']}" if e.get("loadavg_1m") is not None else ""))
        if e.get("torch"):
            bits.append(f"torch {e['torch']}")
        knobs = [f"{e['image_size']} px" if e.get("image_size") else None,
                 f"batch {e['batch']}" if e.get("batch") else None, e.get("precision"),
                 "channels_last" if e.get("channels_last") else None]
        return ", ".join(bits + [k for k in knobs if k])

    out = list(head)
    if perf:
        rows, extra = [], []
        for case in sorted(perf):
            e = perf[case]
            unit = e.get("unit") or ("x" if e.get("ratio") is not None else "")
            rows.append([case, e.get("measure", ""), f"{_num(e.get('value'), 3)} {unit}".strip(),
                         f"{e.get('op', '')} {_val(e.get('target'))}".strip(),
                         verdict(e.get("met"), e.get("not_judged_because")), where(e),
                         e.get("profile", ""), str(e.get("created", ""))[:10]])
            if isinstance(e.get("table"), dict):
                extra += [f"`{case}` {e['table'].get('title') or 'per model'} ({where(e)}):", "",
                          _table(e["table"]["rows"], e["table"]["headers"]), ""]
        out += ["Measured by `benchmarks/test_perf.py` (`report/perf.json`); targets from params.yaml `bench:`. "
                "Speed ratios are paired, interleaved measurements in one process, but CPU figures still move "
                "with whatever else the machine runs (load average shown).", "",
                _table(rows, ["case", "measure", "value", "target", "verdict", "machine", "profile", "date"]), ""]
        out += extra
    if sess:
        t = sess.get("targets") or {}
        wall, peak = sess.get("wall_s"), sess.get("peak_rss_gib")
        srows = [["wall time (s)", _num(wall, 0), _val(t.get("wall_s")),
                  verdict(None if wall is None or t.get("wall_s") is None else wall <= t["wall_s"])],
                 ["peak RSS (GiB)", _num(peak, 2), _val(t.get("peak_rss_gib")),
                  verdict(None if peak is None or t.get("peak_rss_gib") is None else peak <= t["peak_rss_gib"])]]
        out += [f"Benchmark session (`nox -s benchmark`, profile `{sess.get('profile')}`, {sess.get('cases')} cases, "
                f"{sess.get('failed')} failed) on **{sess.get('device')}** ({sess.get('cpu_count')} CPUs):", "",
                _table(srows, ["session", "measured", "target", "verdict"])]
        if sess.get("cases") and sess.get("failed"):
            out += ["", "Some cases failed: the session figures do not describe a complete run."]
        if sess.get("study_cases_reused"):
            # A session that reused finished cases says nothing about the cost of a fresh run.
            out += ["", f"This session reused {sess['study_cases_reused']} finished study case(s) and trained "
                        f"{sess.get('study_cases_trained', 0)}: its wall time is not that of a fresh run."]
        elif sess.get("study_cases_trained") is not None:
            out += ["", f"A fresh run: all {sess['study_cases_trained']} study cases were trained in this session."]
    return out


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
    kind = {a.name: a.trainable for a in arms_registry.ARMS.values()}
    by_arm = summary.get("train_by_arm") or {}
    names = list(summary.get("arms") or by_arm)
    rows, budget = [], {}
    for what, key in PER_ARM:
        groups: dict[str, list[str]] = {}
        for a in names:
            recorded = (by_arm.get(a) or {}).get(f"train.{key}")
            text = "n/a" if recorded is None else ", ".join(_val(x) for x in recorded)
            if key == "max_epochs":
                budget[a] = (text, kind.get(a) == "swft")
                if kind.get(a) == "swft":
                    hs = (by_arm.get(a) or {}).get("train.head_step_epochs")
                    text += " per step" + (f" (head-only step 1: {', '.join(_val(x) for x in hs)})" if hs else "")
            if recorded is None:
                text += " (not in records)"
            groups.setdefault(text, []).append(a)
        value = "; ".join(f"{'/'.join(arms)} {text}" for text, arms in groups.items())
        rows.append([what, f"records' config.train.{key}, by case.arm", value or "no records"])
    if budget:
        parts = []
        for label, k in (("last-layer arms", "head"), ("SWFT", "swft"), ("all-layer arms", "all")):
            sel = [a for a in names if kind.get(a) == k]
            if sel:
                vals = "/".join(dict.fromkeys(budget[a][0] for a in sel))
                parts.append(f"{label} ({'/'.join(sel)}) {vals} epochs" + (" per step" if k == "swft" else ""))
        differ = [f"{c.id} ({c.arm_a} vs {c.arm_b})" for c in claims_mod.CLAIMS
                  if c.arm_a in budget and c.arm_b in budget and budget[c.arm_a] != budget[c.arm_b]]
        rows.append(["Epoch budgets differ between arms", "records' config.train.max_epochs, by case.arm",
                     ("**yes**: " if len(set(budget.values())) > 1 else "no: ") + "; ".join(parts)
                     + (f". Claims whose two arms had different epoch budgets: {', '.join(differ)}"
                        if differ else "")])
    return rows


def assumptions(summary: dict) -> list[str]:
    conf = summary.get("config") or {}
    rows = []
    fundus = summary["provenance"].get("classes", {}).get("fundus")
    rows.append(["Intermediate task: 5 DR grades (0-4)", "records' data.classes (fundus)",
                 _val(fundus) if fundus else "no fundus records"])
    seeds = sorted({x for c in summary["cells"] for x in c["seeds"]})
    rows.append(["Seeds", "records' case.seed", ", ".join(map(str, seeds)) or "none"])
    for what, keys in ASSUMED:
        found = next(((k, v) for k in keys if (v := _recorded(conf, k)) is not None), None)
        rows.append([what, found[0], found[1]] if found else [what, keys[0], "not in records' config"])
    rows += per_arm_rows(summary)
    step1 = arms_registry.get("thtl_step1").trainable
    other = sorted({"+".join(c["steps"][-1]["groups"] or []) for c in summary["swft"]
                    if not c["model"].split(":")[-1].startswith("resnet")})
    sp = summary["stats_params"]
    stmts = [t.format(step1=step1, groups="; ".join(other) or "none measured",
                      paper_models=", ".join((summary["projection"].get("settings") or {}).get("models") or ["n/a"]),
                      margin=float(sp["equivalence_margin_pp"]), below=sp["bootstrap_below_seeds"])
             for t in STATEMENTS]
    params = [[k, ", ".join(_val(x) for x in v[:8]) + (f" ... ({len(v)} values)" if len(v) > 8 else "")]
              for k, v in conf.items()]
    return (["## Assumptions", "",
             "Choices the papers do not state (docs/study.md **assumed** items) and the values the "
             "records were produced with (read from the records' config).", ""]
            + [f"- {s}" for s in stmts]
            + ["", _table(rows, ["assumed choice", "key", "value(s) used"]), "",
               "<details><summary>Every parameter in the records' config</summary>", "",
               _table(params, ["key", "value(s)"]) if params else "(none recorded)", "", "</details>"])
