"""REPORT.md's cost sections: speed per cell, the projected cost of the full study (measured
case times and counted FLOPs) and the benchmark targets (perf.json, bench_session.json, and the
main job's wall time: the benchmark session plus the report chain that wrote this line)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from thtl_bench.report.sections import _arm_label, _details, _ms, _num, _sizes, _table, _val


def speed(summary: dict) -> list[str]:
    rows = []
    several = len(summary["domains"]) > 1
    for c in summary["cells"]:
        t = c["timing"]
        rows.append([c["model"], _arm_label(c, several), _sizes(c), c["n"], ", ".join(map(str, c["image_size"])),
                     _ms({"mean": t["train_images_per_s"]["mean"], "std": t["train_images_per_s"]["std"]}, 1.0),
                     _num(t["inference_images_per_s"]["mean"]), _num(t["wall_s"]["mean"]),
                     _num(t["epoch_s"]["mean"], 2)])
    ex = summary["provenance"].get("execution") or {}
    knobs = "; ".join(f"{k} {', '.join(v)}" for k, v in ex.items()) or "not recorded"
    out = ["## Speed and cost", "",
           f"Measured per case (mean ± std over replicates) on {'; '.join(summary['provenance']['devices'])}; "
           f"execution settings: {knobs}.", ""]
    out += _details("Per-cell speed", [_table(rows, ["model", "arm", "sizes %", "replicates", "px", "train img/s",
                                                      "inference img/s", "wall s / case", "s / epoch"])])
    return out + [""] + projection(summary["projection"])


def flop_cost(f: dict | None, s: dict) -> list[str]:
    """The GPU cost of the study grid from counted FLOPs at a stated rate (analysis.projection.
    flop_projection): a range, with the assumption it rests on, until a card measures the rate."""
    if not f or not f.get("available"):
        return [f"GPU cost from counted FLOPs: not projected ({(f or {}).get('missing', 'no FLOP counts')})."]
    lo, hi = f["eflop"]
    grid = f"{len(f['models'])} models x {len(s['arms'])} arms x {f['seeds']} replicates"
    if not f.get("hours"):
        return [f"Training FLOPs of the grid ({grid}): {lo:.2f}-{hi:.2f} EFLOP; hours not projected "
                f"({f.get('missing')})."]
    h_lo, h_hi = f["hours"]
    if f["basis"] == "assumed":
        rate = (f"at {f['mfu'][0]:.0%}-{f['mfu'][1]:.0%} model-FLOP utilisation (MFU) of the {f['gpu']}'s "
                f"{f['gpu_peak_tflops']:g} TFLOP/s dense bf16 peak. **The MFU is an assumption**: "
                f"{f.get('mfu_source') or 'no source given'}. A projection until a card measures it "
                "(`scripts/gpu_check.sh` measures the rate per model and projects again)")
    else:
        rate = "at the FLOP rates measured per model on the card (`scripts/gpu_check.sh`)"
    rows = [[m, f"{v['eflop'][0]:.3f}-{v['eflop'][1]:.3f}", f"{v['hours'][0]:.2f}-{v['hours'][1]:.2f}"]
            for m, v in f["per_model"].items()]
    text = [f"**Projected GPU cost: {h_lo:.1f}-{h_hi:.1f} GPU-hours** for the study grid ({grid}, one GPU): "
            f"{lo:.2f}-{hi:.2f} EFLOP of training and evaluation counted stage by stage (frozen prefixes once "
            f"into the feature cache where it fits, trainable stages 3x forward per training image), "
            f"{f['epochs']}, {rate}."
            + (f" Not priced (no FLOP count): {', '.join(f['unpriced'])}." if f.get("unpriced") else "")]
    return text + [""] + _details("GPU cost per model (from counted FLOPs)", [
        _table(rows, ["model", "EFLOP (arms x replicates)", "GPU-hours"])])


def projection(p: dict) -> list[str]:
    s = p.get("settings")
    if not s:
        return ["### Projected cost of the full study", "", f"Not projected: {p.get('missing', 'no settings')}."]
    gpu = p["basis"] == "gpu"
    unit = "GPU-hours" if gpu else "CPU-hours"
    head = ["### Projected cost of the full study", "",
            f"Grid: {len(s['models'])} models x {len(s['arms'])} arms x {s['seeds']} replicates, "
            f"{s['fundus_images']} fundus / {s['larynx_images']} larynx images, {s['image_size']} px, up to "
            f"{s['max_epochs']} epochs per stage (every SWFT step too)"
            + (f" (profile `{p['profile']}`)." if p.get("profile") else ".")]
    head += [""] + flop_cost(p.get("flops"), s)
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
        f"From the measured case times: **{_num(p['total_hours'], 1)} {unit}** on {'; '.join(p['devices'])}"
        + (f" (range {_num(lo, 1)}-{_num(hi, 1)} with the lowest / highest measured cost per FLOP)" if lo is not None else "")
        + f", of which {_num(est, 1)} estimated for (model, arm) cells that were not measured"
        + (f". **Incomplete**: not priced (no arm measured anywhere): {', '.join(p['unpriced'])}."
           if p.get("unpriced") else "."), "",
    ]
    method = (
        f"Measured at {sizes} px. Each measured case is scaled to the study size: every part by the images "
        f"ratio; epochs also by the epoch-budget ratio and the compute ratio (not for a head-only arm on cached "
        f"features: its epochs train a linear layer); the rest of its wall time by the compute ratio. Compute is "
        f"{scale} at {s['image_size']} px over the measured size. A (model, arm) not measured is estimated by a "
        f"fit seconds = model factor x arm factor; a model never measured gets its forward FLOPs times the "
        f"measured models' factor per FLOP. THTL step 1 is one case per (model, replicate, domain).")
    if not gpu:
        text.append(f"**An extrapolation**: measured on CPU at {sizes} px and scaled by FLOPs; run time does not "
                    "scale exactly with FLOPs and no GPU record exists. Run the grid on a GPU "
                    "(`-S train.device=cuda`) and re-run the report: GPU records are then used.")
    return head + [""] + text + [""] + _details("Per model, and how it is projected", [
        _table(rows, ["model", "in study grid", f"forward GFLOP / image ({s['image_size']} px)", "arms measured",
                      "arms estimated", f"{unit} (arms x replicates)", "arms not priced"]), "", method])


# The report chain counts into the main job only when it wrote REPORT.md this soon after the
# benchmark session ended (`nox -s benchmark report` in one go); later, the two were run apart.
MAIN_JOB_GAP_S = 900.0


def main_job(sess: dict, now: datetime | None) -> tuple[float | None, float | None, str | None]:
    """(main job s, report chain s, why not measured): the benchmark session's wall time plus the
    time from its end (`created`) to `now`, the moment the report renders (its last stage)."""
    try:
        end = datetime.fromisoformat(str(sess["created"]))
    except (KeyError, TypeError, ValueError):
        return None, None, "the benchmark session recorded no end time"
    if end.tzinfo is None:  # the session writes UTC; an older file without the offset is read as UTC too
        end = end.replace(tzinfo=UTC)
    if now is None or sess.get("wall_s") is None:
        return None, None, "no time of writing"
    gap = (now - end).total_seconds()
    if not 0.0 <= gap <= MAIN_JOB_GAP_S:
        return None, None, (f"this report was written {gap / 60:.0f} min after the benchmark session ended, not in "
                            "the same `nox -s benchmark report`")
    return float(sess["wall_s"]) + gap, gap, None


def perf(g: dict, now: datetime | None = None) -> list[str]:
    """The benchmark suite's figures against their targets: `perf.json` (one entry per case of
    benchmarks/test_perf.py) and `bench_session.json` (the last whole, clean benchmark session),
    with the main job's wall time when this report was written right after that session."""
    rdir = g["report_dir"]
    head = ["### Benchmark targets", ""] + [x for n in g["bench_notes"] for x in (n, "")]
    last = g.get("last_run") or {}
    if last and last.get("status") != "ok":
        why = last.get("partial") or f"{last.get('failed', 0)} case(s) failed"
        head += [f"**The last benchmark run ({last.get('created', '?')}, profile `{last.get('profile')}`) did not "
                 f"finish cleanly: {why}.** The figures below are from the last clean run; "
                 f"first failures: {'; '.join(last.get('errors') or []) or 'none recorded'}.", ""]
    perf_, sess = g["perf"], g["session"]
    if not perf_ and not sess:
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
    if sess:
        t = sess.get("targets") or {}
        wall, peak = sess.get("wall_s"), sess.get("peak_rss_gib")
        total, chain, why = main_job(sess, now)
        target = t.get("wall_s")
        if total is not None:
            wrow = ["main job wall time (s)", f"{total:.0f} (benchmark {wall:.0f} + report {chain:.0f})",
                    _val(target), verdict(None if target is None else total <= target)]
        else:  # the benchmark session alone: over the target it fails it, under it decides nothing
            over = wall is not None and target is not None and wall > target
            wrow = ["benchmark session wall time (s)", _num(wall, 0), _val(target),
                    verdict(False if over else None, None if over else f"the main job is not measured: {why}")]
        srows = [wrow,
                 ["peak RSS (GiB)", _num(peak, 2), _val(t.get("peak_rss_gib")),
                  verdict(None if peak is None or t.get("peak_rss_gib") is None else peak <= t["peak_rss_gib"])]]
        out += [f"Benchmark session (`nox -s benchmark`, profile `{sess.get('profile')}`, {sess.get('cases')} cases, "
                f"{sess.get('failed')} failed, {str(sess.get('created', ''))[:10]}) on **{sess.get('device')}** "
                f"({sess.get('cpu_count')} CPUs):", "",
                _table(srows, ["session", "measured", "target", "verdict"])]
        if sess.get("study_cases_reused"):
            # A session that reused finished cases says nothing about the cost of a fresh run.
            out += ["", f"This session reused {sess['study_cases_reused']} finished study case(s) and trained "
                        f"{sess.get('study_cases_trained', 0)}: its wall time is not that of a fresh run."]
        elif sess.get("study_cases_trained") is not None:
            nr = sess.get("study_cases_not_run")
            out += ["", f"A fresh run: every study case that can run here was trained in this session "
                        f"({sess['study_cases_trained']} trained"
                        + (f", {nr} recorded as not run" if nr else "") + ")."]
        out.append("")
    if perf_:
        rows, extra = [], []
        for case in sorted(perf_):
            e = perf_[case]
            unit = e.get("unit") or ("x" if e.get("ratio") is not None else "")
            rows.append([case, e.get("measure", ""), f"{_num(e.get('value'), 3)} {unit}".strip(),
                         f"{e.get('op', '')} {_val(e.get('target'))}".strip(),
                         verdict(e.get("met"), e.get("not_judged_because")), where(e),
                         e.get("profile", ""), str(e.get("created", ""))[:10]])
            if isinstance(e.get("table"), dict):
                extra += [f"`{case}` {e['table'].get('title') or 'per model'} ({where(e)}):", "",
                          _table(e["table"]["rows"], e["table"]["headers"]), ""]
        out += _details(f"Benchmark cases ({len(rows)}; `benchmarks/test_perf.py`, `report/perf.json`)", [
            "Targets from params.yaml `bench:`. Speed ratios are paired, interleaved measurements in one process; "
            "CPU figures still move with whatever else the machine runs (load average shown).", "",
            _table(rows, ["case", "measure", "value", "target", "verdict", "machine", "profile", "date"]), "", *extra])
    return out
