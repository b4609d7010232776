"""Did a change move a result? Compare two results: record folders, summary JSONs or git revisions
(A = before, B = after). This is the regression gate (`thtl-bench compare A B --fail-on-regression`).

The question a researcher asks, answered in that order (a five-line summary comes first):

1. **Exactly what changed.** Training is deterministic on one machine kind, so each case present
   on both sides either has identical test predictions or not; for a changed case, what differs in
   what made it (its config: code fingerprint, data fingerprint, split, training settings,
   execution; else its machine or library versions).
2. **Whether it is beyond noise.** For every cell whose predictions changed, each metric of
   GATED_METRICS: the paired per-replicate difference B - A (the same replicate of a cell on both
   sides shares its test patients) judged by the claims' own rule (inference.paired: a t over the
   split units with the shared-patient term), Holm-adjusted over all the cells and metrics tested,
   at `stats.alpha`. A drop beyond noise is a REGRESSION.
3. **Which verdicts moved, and why**: the data changed (data fingerprints), the plan changed (plan
   hash), the grid changed (the claim's cells ran other replicates), the fit gate changed (an
   arm's gate status), a metric moved (one of the claim's cells moved beyond noise), or nothing
   beyond noise (a verdict within the noise of its threshold).

**The gate fails** (exit 1 with --fail-on-regression) on a metric regression beyond noise, and on
a verdict change that a metric change beyond noise explains. It does not fail on verdict changes
caused by data, plan, grid or gate changes (deliberate, and shown), on changes within noise, or
on speed: timings of two hosts are not comparable, and a speed regression is only judged from
repeated timings on one runner by pytest-benchmark's own --benchmark-compare-fail (opt-in; see
docs/reproducibility.md). Speed differences are printed for information.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from thtl_bench import records
from thtl_bench.analysis import aggregate as agg
from thtl_bench.analysis import fit, inference, rules
from thtl_bench.analysis import replicates as reps_mod
from thtl_bench.analysis.claims import ANY, BY_ID
from thtl_bench.analysis.summary import flatten
from thtl_bench.errors import UserError
from thtl_bench.io import git

GATED_METRICS = ("accuracy", "recall")  # the claims' metrics; the others are printed, not gated
SPEED = (("train_images_per_s", +1), ("inference_images_per_s", +1), ("wall_s", -1))
GATE = ("fails on a metric drop beyond noise (the claims' paired replicate-level rule, Holm over the cells "
        "and metrics whose predictions changed, at stats.alpha) and on a claim verdict change that such a "
        "metric change explains; verdict changes from data, plan, grid or fit-gate changes and timing "
        "differences are reported, never failed (speed: pytest-benchmark --benchmark-compare-fail on one runner)")


def _is_revision(spec: str) -> bool:
    out = git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    return out is not None and out.returncode == 0


def _from_revision(rev: str, cfg: dict, records_path: str | None) -> tuple[dict, list[dict] | None, str]:
    """The records folder at `rev` (git archive into a temp dir), else its committed summary.json."""
    path = (records_path or cfg["grid"]["records_dir"]).rstrip("/")
    rdir = Path(cfg["report"]["dir"]).as_posix()
    arch = git("archive", "--format=tar", rev, "--", path, binary=True)
    if arch is not None and arch.returncode == 0 and arch.stdout:
        with tempfile.TemporaryDirectory(prefix="thtl-compare-") as tmp:
            with tarfile.open(fileobj=io.BytesIO(arch.stdout)) as tar:
                tar.extractall(tmp, filter="data")
            recs = records.load_all([Path(tmp) / path])
        if recs:
            art = {}
            for key, name in agg.ARTEFACTS.items():
                shown = git("show", f"{rev}:{rdir}/{name}")
                art[key] = json.loads(shown.stdout) if shown is not None and shown.returncode == 0 else None
            return agg.aggregate(recs, cfg, **art), recs, f"{rev}:{path}"
    spath = f"{rdir}/summary.json"
    show = git("show", f"{rev}:{spath}")
    if show is not None and show.returncode == 0:
        with tempfile.TemporaryDirectory(prefix="thtl-compare-") as tmp:
            f = Path(tmp) / "summary.json"
            f.write_text(show.stdout)
            return agg.load_summary(f), None, f"{rev}:{spath}"
    raise UserError(f"revision {rev} has neither records under {path} nor {spath} in git; "
                    "pass --records PATH or compare record folders")


def load_side(spec: str, cfg: dict, records_path: str | None = None) -> tuple[dict, list[dict] | None, str]:
    """(summary, records or None, label) of a records folder, a summary JSON or a git revision."""
    p = Path(spec)
    if p.is_dir():
        recs = records.load_all([p])
        if not recs:
            raise UserError(f"{p}: no records in this folder")
        return agg.aggregate(recs, cfg, **agg.load_artefacts(cfg["report"]["dir"])), recs, str(p)
    if p.is_file():
        return agg.load_summary(p), None, str(p)
    if _is_revision(spec):
        return _from_revision(spec, cfg, records_path)
    raise UserError(f"{spec!r} is not a records folder, a summary JSON or a git revision")


# ----------------------------------------------------------------------------- 1. exact

def _preds(rec: dict) -> tuple[tuple, tuple]:
    t = rec["predictions"]["test"]
    return tuple(str(i) for i in t["ids"]), tuple(int(k) for k in np.asarray(t["probs"]).argmax(1))


EXEC_ENV = ("device", "device_name", "torch", "torchvision", "timm", "numpy", "python", "platform")


def why_changed(a: dict, b: dict) -> str:
    """What differs in what made a case: its config keys (code fingerprint, data, split, train,
    execution, parent), else its machine or library versions."""
    fa, fb = flatten(a.get("config") or {}), flatten(b.get("config") or {})
    keys = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
    if keys:
        named = {"code": "code fingerprint", "parent": "its step 1"}
        return "config: " + ", ".join(named.get(k, k) for k in keys[:6]) + (" ..." if len(keys) > 6 else "")
    ea, eb = a.get("env") or {}, b.get("env") or {}
    env = [k for k in EXEC_ENV if ea.get(k) != eb.get(k)]
    if (ea.get("machine") or {}) != (eb.get("machine") or {}):
        env.append("machine")
    return ("same config; differs in " + ", ".join(env)) if env else "same config and machine (not deterministic?)"


def cases(recs_a: list[dict], recs_b: list[dict]) -> dict:
    """Per slug present on both sides: identical predictions or changed (with why_changed)."""
    ok_a = {r["slug"]: r for r in recs_a if r.get("status") == "ok"}
    ok_b = {r["slug"]: r for r in recs_b if r.get("status") == "ok"}
    both = [s for s in ok_a if s in ok_b]
    changed = {s: why_changed(ok_a[s], ok_b[s]) for s in both if _preds(ok_a[s]) != _preds(ok_b[s])}
    return {"both": len(both), "identical": len(both) - len(changed), "changed": changed,
            "only_a": sorted(set(ok_a) - set(ok_b)), "only_b": sorted(set(ok_b) - set(ok_a))}


# ----------------------------------------------------------------------------- 2. beyond noise

def _ckey(c: dict) -> tuple:
    return c["model"], c["arm"], c.get("domain"), float(c.get("target_fraction", 1.0)), float(c.get("intermediate_fraction", 1.0))


def _label(key: tuple) -> str:
    model, arm, domain, tf, inf = key
    extra = "".join([f"[{domain}]" if domain else "", f" t={tf:g}" if tf != 1.0 else "", f" i={inf:g}" if inf != 1.0 else ""])
    return f"{model}/{arm}{extra}"


def _cell_evidence(key: tuple, metric: str, ca: dict, cb: dict, ia: dict | None, ib: dict | None) -> inference.Evidence:
    """B - A for one cell's metric over the replicates both sides ran (paired on them)."""
    if ia is not None and ib is not None and key in ia and key in ib:
        return inference.paired(reps_mod.paired_replicates(ib[key], ia[key], metric))
    reps_a = {tuple(k): v for k, v in zip(ca.get("replicates") or [], ca["metrics"][metric].get("values") or [], strict=False)}
    reps_b = {tuple(k): v for k, v in zip(cb.get("replicates") or [], cb["metrics"][metric].get("values") or [], strict=False)}
    common = sorted(set(reps_a) & set(reps_b))
    return inference.paired_values([100 * reps_b[k] if reps_b[k] is not None else None for k in common],
                                   [100 * reps_a[k] if reps_a[k] is not None else None for k in common])


def holm(pvalues: list[float]) -> list[float]:
    return rules.holm_adjusted(pvalues)


# ----------------------------------------------------------------------------- the difference

def diff(sa: dict, sb: dict, cfg: dict, recs_a: list[dict] | None = None, recs_b: list[dict] | None = None) -> dict:
    """Cases, metric, claim and speed differences of two sides; the gate's regressions."""
    st = cfg["stats"]
    alpha, conf = float(st["alpha"]), 1.0 - float(st["alpha"])
    gate = fit.Gate.of(st)
    ia = reps_mod.index(recs_a, gate) if recs_a is not None else None
    ib = reps_mod.index(recs_b, gate) if recs_b is not None else None
    exact = cases(recs_a, recs_b) if recs_a is not None and recs_b is not None else None
    changed_slugs = set((exact or {}).get("changed") or {})
    cells_a = {_ckey(c): c for c in sa["cells"]}
    cells_b = {_ckey(c): c for c in sb["cells"]}
    keys = list(cells_a) + [k for k in cells_b if k not in cells_a]

    metric_rows: list[dict[str, Any]] = []
    for k in keys:
        ca, cb = cells_a.get(k), cells_b.get(k)
        names = list(dict.fromkeys([*((ca or {}).get("metrics") or {}), *((cb or {}).get("metrics") or {})]))
        if ia is not None and ib is not None and k in ia and k in ib:
            moved = any(r["slug"] in changed_slugs for r in list(ia[k].values()) + list(ib[k].values()))
        else:
            moved = None  # a summary side: no predictions to compare
        for name in names:
            row = {"cell": _label(k), "key": list(k), "metric": name, "a": (ca or {}).get("metrics", {}).get(name),
                   "b": (cb or {}).get("metrics", {}).get(name), "delta_pp": None, "ci_pp": None, "p": None,
                   "p_holm": None, "se_pp": None, "mde_pp": None, "flag": "", "gated": name in GATED_METRICS}
            if not ca or not cb:
                row["flag"] = "only in A" if ca else "only in B"
            elif moved is False:
                row.update(delta_pp=0.0, flag="identical predictions")
            elif name in inference.RATIO_METRICS:
                try:
                    ev = _cell_evidence(k, name, ca, cb, ia, ib)
                except ValueError:
                    ev = None
                if ev is None or not ev.decidable:
                    row.update(flag="fewer than 2 paired splits: not judged",
                               delta_pp=None if ev is None else ev.estimate)
                else:
                    row.update(delta_pp=ev.estimate, ci_pp=list(ev.interval(conf)), p=ev.p_two_sided(0.0),
                               se_pp=ev.se, mde_pp=mde(ev, alpha))
            metric_rows.append(row)

    tested = [r for r in metric_rows if r["gated"] and r["p"] is not None]
    for r, q in zip(tested, holm([r["p"] for r in tested]), strict=True):
        r["p_holm"] = q
        if q < alpha and r["delta_pp"]:
            r["flag"] = "REGRESSION" if r["delta_pp"] < 0 else "improvement"
    moved_cells = {r["cell"] for r in tested if r["flag"] in ("REGRESSION", "improvement")}

    claim_rows = _claims(sa, sb, ia, ib, moved_cells)
    speed_rows = _speed(cells_a, cells_b, keys)
    regressions = ([f"{r['cell']} {r['metric']} {r['delta_pp']:+.1f} pp {_ci(r['ci_pp'])} (Holm p {r['p_holm']:.3g})"
                    for r in metric_rows if r["flag"] == "REGRESSION"]
                   + [f"{r['id']}/{r['model']} verdict {r['a']} -> {r['b']} (metric moved: {', '.join(r['cells'])})"
                      for r in claim_rows if r["changed"] and r["why"] == "metric moved"])
    pa, pb = sa["provenance"], sb["provenance"]
    notes = []
    for key in ("data_kinds", "profiles", "devices", "machines", "data_fingerprints"):
        if pa.get(key) != pb.get(key):
            notes.append(f"{key} differ: A {pa.get(key)} vs B {pb.get(key)}")
    if sa.get("plan_hash") != sb.get("plan_hash"):
        notes.append(f"analysis plans differ: A {sa.get('plan_hash')} vs B {sb.get('plan_hash')}")
    if recs_a is None or recs_b is None:
        notes.append("a side without records (a summary.json): metrics compared by a t over the paired "
                     "replicate values, no exact comparison of predictions")
    mdes = [r["mde_pp"] for r in tested if r["metric"] == "accuracy" and r["mde_pp"] is not None]
    return {"cases": exact, "metrics": metric_rows, "claims": claim_rows, "speed": speed_rows,
            "regressions": regressions, "notes": notes, "tests": len(tested), "alpha": alpha,
            "flagged": len([r for r in tested if r["flag"] in ("REGRESSION", "improvement")]),
            "mde_accuracy_pp": [min(mdes), max(mdes)] if mdes else None, "gate": GATE}


def mde(ev: inference.Evidence, alpha: float, power: float = 0.8) -> float | None:
    """The smallest difference this comparison detects with `power` (two-sided at alpha, before
    Holm): (t_(1 - alpha/2) + t_power) x se."""
    if ev.se is None or ev.df is None:
        return None
    from scipy import special

    return float((special.stdtrit(ev.df, 1 - alpha / 2) + special.stdtrit(ev.df, power)) * ev.se)


def _claims(sa: dict, sb: dict, ia: dict | None, ib: dict | None, moved_cells: set[str]) -> list[dict]:
    ra = {(r["id"], r["model"]): r for r in sa.get("claims", [])}
    rb = {(r["id"], r["model"]): r for r in sb.get("claims", [])}
    out = []
    for k in list(ra) + [k for k in rb if k not in ra]:
        a, b = ra.get(k), rb.get(k)
        row = {"id": k[0], "model": k[1], "a": (a or {}).get("verdict"), "b": (b or {}).get("verdict"),
               "diff_a": (a or {}).get("diff_pp"), "diff_b": (b or {}).get("diff_pp"),
               "changed": (a or {}).get("verdict") != (b or {}).get("verdict"), "why": "", "cells": []}
        if a and b:
            claim = BY_ID.get(a.get("claim"))
            sides = [] if claim is None else list(claim.sides)
            keys = [(k[1], s.arm, a.get("domain") if s.domain == ANY else s.domain, 1.0, 1.0) for s in sides]
            row["cells"] = [_label(x) for x in keys if _label(x) in moved_cells]
            if row["changed"]:
                row["why"] = _cause(a, b, sa, sb, keys, ia, ib, row["cells"])
        elif row["changed"]:
            row["why"] = "grid changed (claim only in A)" if b is None else "grid changed (claim only in B)"
        out.append(row)
    return out


def _cause(a: dict, b: dict, sa: dict, sb: dict, keys: list, ia: dict | None, ib: dict | None,
           moved: list[str]) -> str:
    """Why a claim's verdict differs between A and B (module docstring, item 3)."""
    if sa["provenance"].get("data_fingerprints") != sb["provenance"].get("data_fingerprints"):
        return "data changed"
    if sa.get("plan_hash") != sb.get("plan_hash"):
        return "plan changed"
    if ia is not None and ib is not None:
        if any(set(ia.get(x, {})) != set(ib.get(x, {})) for x in keys):
            return "grid changed"
        gate_a = [bool(r["gate"]["ok"]) for x in keys for _, r in sorted(ia.get(x, {}).items())]
        gate_b = [bool(r["gate"]["ok"]) for x in keys for _, r in sorted(ib.get(x, {}).items())]
        if gate_a != gate_b:
            return "fit gate changed"
    elif a.get("n_pairs") != b.get("n_pairs"):
        return "grid changed"
    if moved:
        return "metric moved"
    return "within noise"


def _speed(cells_a: dict, cells_b: dict, keys: list) -> list[dict]:
    rows = []
    for k in keys:
        ca, cb = cells_a.get(k), cells_b.get(k)
        if not ca or not cb:
            continue
        for what, _sign in SPEED:
            va, vb = ca["timing"][what]["mean"], cb["timing"][what]["mean"]
            rel = (vb / va - 1) if va and vb is not None else None
            rows.append({"cell": _label(k), "what": what, "a": va, "b": vb, "rel": rel,
                         "same_host": ca.get("devices") == cb.get("devices")})
    return rows


# ----------------------------------------------------------------------------- text

def _ms(st: dict | None) -> str:
    if not st or st.get("mean") is None:
        return "-"
    sd = "" if st.get("std") is None else f" ± {100 * st['std']:.1f}"
    return f"{100 * st['mean']:.1f}{sd} (n={st.get('n', '?')})"


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _ci(ci) -> str:
    return "-" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def summary_lines(d: dict, label_a: str, label_b: str) -> list[str]:
    """The five lines a researcher reads first."""
    c = d["cases"]
    if c is None:
        cases_line = "Cases: a side is a summary.json: predictions not compared"
    else:
        whys: dict[str, int] = {}
        for w in c["changed"].values():
            whys[w] = whys.get(w, 0) + 1
        cause = "; ".join(f"{n} x {w}" for w, n in sorted(whys.items(), key=lambda x: -x[1])[:3])
        cases_line = (f"Cases: {c['both']} on both sides, {c['identical']} with identical predictions, "
                      f"{len(c['changed'])} changed{f' ({cause})' if cause else ''}; "
                      f"{len(c['only_a'])} only in A, {len(c['only_b'])} only in B")
    flagged = [r for r in d["metrics"] if r["flag"] in ("REGRESSION", "improvement")]
    m_line = (f"Metrics: {d['tests']} cell metric(s) tested (changed predictions), {len(flagged)} beyond noise"
              + (": " + "; ".join(f"{r['cell']} {r['metric']} {r['delta_pp']:+.1f} pp ({r['flag']})" for r in flagged[:3])
                 if flagged else ""))
    moved = [r for r in d["claims"] if r["changed"]]
    v_line = (f"Verdicts: {len(moved)} changed"
              + (": " + "; ".join(f"{r['id']}/{r['model']} {r['a']} -> {r['b']} ({r['why']})" for r in moved[:3])
                 if moved else ""))
    gate = (f"Gate: FAIL ({len(d['regressions'])} regression(s))" if d["regressions"] else "Gate: pass")
    return [f"A = {label_a}  |  B = {label_b}", cases_line, m_line, v_line, gate]


def format_diff(d: dict, label_a: str = "A", label_b: str = "B") -> str:
    out = summary_lines(d, label_a, label_b) + [""]
    out += [f"note: {n}" for n in d["notes"]]
    if d["cases"] and d["cases"]["changed"]:
        out += ["", "Changed cases (what differs in what made them):", ""]
        out.append(tabulate(sorted(d["cases"]["changed"].items()), ["case", "why"], tablefmt="github",
                            disable_numparse=True))
    mde_line = "" if not d["mde_accuracy_pp"] else (
        f" Smallest accuracy change detectable with 80 % power here: {d['mde_accuracy_pp'][0]:.1f}-"
        f"{d['mde_accuracy_pp'][1]:.1f} pp.")
    out += ["", f"Test metrics (B - A, pp; paired replicate-level interval at {100 * (1 - d['alpha']):g} %; beyond "
                f"noise when the Holm-adjusted p over the {d['tests']} gated test(s) < {d['alpha']:g}).{mde_line}", ""]
    rows = [[r["cell"], r["metric"], _ms(r["a"]), _ms(r["b"]), _f(r["delta_pp"], "+.1f"), _ci(r["ci_pp"]),
             _f(r["p_holm"], ".3g"), r["flag"]] for r in d["metrics"]]
    out.append(tabulate(rows, ["cell", "metric", "A %", "B %", "delta pp", "interval pp", "Holm p", "flag"],
                        tablefmt="github", disable_numparse=True))
    out += ["", "Claims:", ""]
    rows = [[r["id"], r["model"], r["a"] or "-", r["b"] or "-", _f(r["diff_a"], "+.1f"), _f(r["diff_b"], "+.1f"),
             f"VERDICT CHANGED ({r['why']})" if r["changed"] else ""] for r in d["claims"]]
    out.append(tabulate(rows, ["claim", "model", "verdict A", "verdict B", "diff A pp", "diff B pp", "flag"],
                        tablefmt="github", disable_numparse=True))
    hosts = {r["same_host"] for r in d["speed"]}
    out += ["", "Speed (information only: " + ("the same host" if hosts == {True} else "different hosts")
            + "; speed is gated by pytest-benchmark --benchmark-compare-fail on one runner):", ""]
    rows = [[r["cell"], r["what"], _f(r["a"], ".2f"), _f(r["b"], ".2f"),
             _f(None if r["rel"] is None else 100 * r["rel"], "+.1f")] for r in d["speed"]]
    out.append(tabulate(rows, ["cell", "figure", "A", "B", "change %"], tablefmt="github", disable_numparse=True))
    out += ["", f"The gate {d['gate']}."]
    out += [f"  regression: {r}" for r in d["regressions"]]
    return "\n".join(out)


def compare(a: str, b: str, cfg: dict | None = None, records_path: str | None = None) -> str:
    """The comparison text of A and B (see the module docstring)."""
    return run(a, b, cfg, records_path)[1]


def run(a: str, b: str, cfg: dict | None = None, records_path: str | None = None) -> tuple[dict, str]:
    if cfg is None:
        from thtl_bench import config

        cfg = config.load()
    sa, ra, la = load_side(a, cfg, records_path)
    sb, rb, lb = load_side(b, cfg, records_path)
    d = diff(sa, sb, cfg, ra, rb)
    return d, format_diff(d, la, lb)
