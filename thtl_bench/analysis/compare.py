"""Compare two results: record folders, summary JSONs or git revisions (A = before, B = after).

Both sides go through analysis.aggregate (or are a summary.json it wrote), so they are judged by
the same code, and their differences by the same replicate-level evidence as the claims:
- each cell's test metric: B minus A (pp) from `inference.unpaired` (the two-level bootstrap
  over replicates and patients, hulled with a Welch t part; stratified by split when both sides
  ran the same splits) where both sides have records, else Welch over the replicate values
  (a summary.json side has no per-sample predictions);
- each claim's difference: the same on its two-arm replicates;
- every p-value of the comparison goes through one Benjamini-Hochberg adjustment
  (`scipy.stats.false_discovery_control`); a change is "beyond noise" when its adjusted p is
  below `stats.alpha`. A drop beyond noise is a regression (every metric is higher-is-better);
- a claim whose verdict changed is labelled with why (rules.explain_change: beyond noise,
  inputs differ, borderline, Holm level changed, or UNEXPLAINED) and counts as a regression for
  `--fail-on-regression`: a gate that lets a verdict move silently is no gate;
- speed: a relative change beyond `report.speed_change`; a slowdown is a regression only when
  both sides ran on the same machine (device, CPU model and SIMD level; otherwise it is noted as
  not comparable), and the machine difference is printed.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from tabulate import tabulate

from thtl_bench import records
from thtl_bench.analysis import aggregate as agg
from thtl_bench.analysis import inference, rules
from thtl_bench.analysis import replicates as reps_mod
from thtl_bench.analysis.claims import ANY, BY_ID
from thtl_bench.errors import UserError
from thtl_bench.io import git

SPEED = (("train_images_per_s", +1), ("inference_images_per_s", +1), ("wall_s", -1))


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


# ----------------------------------------------------------------------------- evidence

def _ckey(c: dict) -> tuple:
    return c["model"], c["arm"], c.get("domain"), float(c.get("target_fraction", 1.0)), float(c.get("intermediate_fraction", 1.0))


def _label(key: tuple) -> str:
    model, arm, domain, tf, inf = key
    extra = "".join([f"[{domain}]" if domain else "", f" t={tf:g}" if tf != 1.0 else "", f" i={inf:g}" if inf != 1.0 else ""])
    return f"{model}/{arm}{extra}"


def _cell_evidence(key: tuple, metric: str, ca: dict, cb: dict, ia: dict | None, ib: dict | None,
                   n_boot: int, seed: int) -> inference.Evidence | None:
    try:
        if ia is not None and ib is not None and metric in inference.RATIO_METRICS and key in ia and key in ib:
            return inference.unpaired(reps_mod.cell_replicates(ia[key], metric),
                                      reps_mod.cell_replicates(ib[key], metric), n_boot=n_boot, seed=seed)
        va = [100 * v for v in ca["metrics"][metric].get("values") or [] if v is not None]
        vb = [100 * v for v in cb["metrics"][metric].get("values") or [] if v is not None]
        return inference.unpaired_values(va, vb)
    except ValueError:
        return None


def _claim_evidence(row: dict, ia: dict | None, ib: dict | None, n_boot: int, seed: int) -> inference.Evidence | None:
    claim = BY_ID.get(row.get("claim"))
    if claim is None or ia is None or ib is None:
        return None

    def cell(index: dict, side) -> dict:
        d = row.get("domain") if side.domain == ANY else side.domain
        return index.get((row["model"], side.arm, d, 1.0, 1.0), {})

    try:
        pa = reps_mod.paired_replicates(cell(ia, claim.a), cell(ia, claim.b), claim.metric)
        pb = reps_mod.paired_replicates(cell(ib, claim.a), cell(ib, claim.b), claim.metric)
        return inference.unpaired(pa, pb, n_boot=n_boot, seed=seed) if pa and pb else None
    except ValueError:
        return None


# ----------------------------------------------------------------------------- the difference

def diff(sa: dict, sb: dict, cfg: dict, recs_a: list[dict] | None = None, recs_b: list[dict] | None = None) -> dict:
    """Metric, speed and claim differences of two summaries, with flags and the regressions."""
    st = cfg["stats"]
    alpha, conf = float(st["alpha"]), 1.0 - float(st["alpha"])
    n_boot, seed = int(st["bootstrap"]), int(st["bootstrap_seed"])
    margin, tol = float(st["equivalence_margin_pp"]), float(st["tolerance_pp"])
    thr = float(cfg["report"]["speed_change"])
    ia = reps_mod.index(recs_a) if recs_a is not None else None
    ib = reps_mod.index(recs_b) if recs_b is not None else None
    cells_a = {_ckey(c): c for c in sa["cells"]}
    cells_b = {_ckey(c): c for c in sb["cells"]}
    keys = list(cells_a) + [k for k in cells_b if k not in cells_a]

    metric_rows: list[dict[str, Any]] = []
    speed_rows = []
    for k in keys:
        ca, cb = cells_a.get(k), cells_b.get(k)
        names = list(dict.fromkeys([*((ca or {}).get("metrics") or {}), *((cb or {}).get("metrics") or {})]))
        for name in names:
            row = {"cell": _label(k), "key": list(k), "metric": name, "a": (ca or {}).get("metrics", {}).get(name),
                   "b": (cb or {}).get("metrics", {}).get(name), "delta_pp": None, "ci_pp": None, "p": None,
                   "p_adjusted": None, "flag": ""}
            if not ca or not cb:
                row["flag"] = "only in A" if ca else "only in B"
            else:
                ev = _cell_evidence(k, name, ca, cb, ia, ib, n_boot, seed)
                if ev is None or not ev.decidable:
                    row["flag"] = "fewer than 2 replicates a side: not judged"
                    row["delta_pp"] = None if ev is None else ev.estimate
                else:
                    row.update(delta_pp=ev.estimate, ci_pp=list(ev.interval(conf)), p=ev.p_two_sided(0.0))
            metric_rows.append(row)
        if ca and cb:
            same = ca.get("devices") == cb.get("devices")
            for what, sign in SPEED:
                va, vb = ca["timing"][what]["mean"], cb["timing"][what]["mean"]
                rel = (vb / va - 1) if va and vb is not None else None
                flag = ""
                if rel is not None and abs(rel) > thr:
                    worse = rel * sign < 0
                    flag = ("slower (different machines: not comparable)" if worse and not same
                            else "SLOWER" if worse else "faster")
                speed_rows.append({"cell": _label(k), "what": what, "a": va, "b": vb, "rel": rel, "flag": flag,
                                   "devices": (ca.get("devices"), cb.get("devices"))})

    ra = {(r["id"], r["model"]): r for r in sa.get("claims", [])}
    rb = {(r["id"], r["model"]): r for r in sb.get("claims", [])}
    claim_rows = []
    for k in list(ra) + [k for k in rb if k not in ra]:
        a, b = ra.get(k), rb.get(k)
        row = {"id": k[0], "model": k[1], "a": (a or {}).get("verdict"), "b": (b or {}).get("verdict"),
               "diff_a": (a or {}).get("diff_pp"), "diff_b": (b or {}).get("diff_pp"), "delta_pp": None,
               "ci_pp": None, "p": None, "p_adjusted": None, "changed": (a or {}).get("verdict") != (b or {}).get("verdict"),
               "why": "", "_rows": (a, b)}
        ev = _claim_evidence(a or b, ia, ib, n_boot, seed) if (a and b) else None
        if ev is not None and ev.decidable:
            row.update(delta_pp=ev.estimate, ci_pp=list(ev.interval(conf)), p=ev.p_two_sided(0.0))
        claim_rows.append(row)

    # One false-discovery control over every test of the comparison.
    tested = [r for r in metric_rows + claim_rows if r.get("p") is not None]
    for r, q in zip(tested, inference.bh([r["p"] for r in tested]), strict=True):
        r["p_adjusted"] = q
    for r in metric_rows:
        if r["p_adjusted"] is not None and r["p_adjusted"] < alpha and r["delta_pp"]:
            r["flag"] = "REGRESSION" if r["delta_pp"] < 0 else "improvement"
    flagged_cells = {r["cell"] for r in metric_rows if r["flag"] in ("REGRESSION", "improvement")}
    for r in claim_rows:
        a, b = r.pop("_rows")
        if not r["changed"]:
            continue
        if a is None or b is None:
            r["why"] = "only in A" if b is None else "only in B"
            continue
        beyond = r["p_adjusted"] is not None and r["p_adjusted"] < alpha
        cells = {_label((r["model"], x, a.get(f"domain_{s}"), 1.0, 1.0)) for s, x in (("a", a.get("arm_a")), ("b", a.get("arm_b")))}
        shift = None if r["ci_pp"] is None else (r["ci_pp"][1] - r["ci_pp"][0]) / 2
        r["why"] = rules.explain_change(a, b, flagged=beyond or bool(cells & flagged_cells), shift_pp=shift,
                                        margin=margin, tol=tol)

    regressions = ([f"{r['cell']} {r['metric']} {r['delta_pp']:+.1f} pp (BH-adjusted p {r['p_adjusted']:.3g})"
                    for r in metric_rows if r["flag"] == "REGRESSION"]
                   + [f"{r['cell']} {r['what']} {100 * r['rel']:+.0f} %" for r in speed_rows if r["flag"] == "SLOWER"]
                   + [f"{r['id']}/{r['model']} verdict {r['a']} -> {r['b']} ({r['why'] or 'changed'})"
                      for r in claim_rows if r["changed"]])
    pa, pb = sa["provenance"], sb["provenance"]
    notes = []
    if pa["records_digest"] == pb["records_digest"]:
        notes.append("A and B hold records of the same cases under the same settings (same case ids); "
                     "their measured values may still differ (another run or machine).")
    for key in ("data_kinds", "profiles", "devices", "machines", "data_fingerprints"):
        if pa.get(key) != pb.get(key):
            notes.append(f"{key} differ: A {pa.get(key)} vs B {pb.get(key)}")
    if sa.get("plan_hash") != sb.get("plan_hash"):
        notes.append(f"analysis plans differ: A {sa.get('plan_hash')} vs B {sb.get('plan_hash')}")
    if recs_a is None or recs_b is None:
        notes.append("a side without records (a summary.json): its metrics compared by Welch over replicate values")
    return {"metrics": metric_rows, "speed": speed_rows, "claims": claim_rows, "regressions": regressions,
            "notes": notes, "flagged": sum(r["flag"] in ("REGRESSION", "improvement") for r in metric_rows),
            "tests": len(tested), "alpha": alpha, "speed_change": thr,
            "projection_hours": ((sa.get("projection") or {}).get("total_hours"),
                                 (sb.get("projection") or {}).get("total_hours"))}


# ----------------------------------------------------------------------------- text

def _ms(st: dict | None) -> str:
    if not st or st.get("mean") is None:
        return "-"
    sd = "" if st.get("std") is None else f" ± {100 * st['std']:.1f}"
    return f"{100 * st['mean']:.1f}{sd} (n={st.get('n', '?')})"


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _ci(ci) -> str:
    return "-" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def format_diff(d: dict, label_a: str = "A", label_b: str = "B") -> str:
    out = [f"A = {label_a}", f"B = {label_b}", ""]
    out += [f"note: {n}" for n in d["notes"]]
    out += ["", f"Test metrics (B - A, pp, replicate-level interval at {100 * (1 - d['alpha']):g} %; beyond noise "
                f"when the Benjamini-Hochberg adjusted p over all {d['tests']} tests < {d['alpha']:g}):", ""]
    rows = [[r["cell"], r["metric"], _ms(r["a"]), _ms(r["b"]), _f(r["delta_pp"], "+.1f"), _ci(r["ci_pp"]),
             _f(r["p_adjusted"], ".3g"), r["flag"]] for r in d["metrics"]]
    out.append(tabulate(rows, ["cell", "metric", "A %", "B %", "delta pp", "interval pp", "BH p", "flag"],
                        tablefmt="github", disable_numparse=True))
    out += ["", f"Speed (flagged beyond {100 * d['speed_change']:g} % relative change):", ""]
    rows = [[r["cell"], r["what"], _f(r["a"], ".2f"), _f(r["b"], ".2f"),
             _f(None if r["rel"] is None else 100 * r["rel"], "+.1f"), r["flag"]] for r in d["speed"]]
    out.append(tabulate(rows, ["cell", "figure", "A", "B", "change %", "flag"], tablefmt="github", disable_numparse=True))
    out += ["", "Claims:", ""]
    rows = [[r["id"], r["model"], r["a"] or "-", r["b"] or "-", _f(r["diff_a"], "+.1f"), _f(r["diff_b"], "+.1f"),
             _ci(r["ci_pp"]), _f(r["p_adjusted"], ".3g"), f"VERDICT CHANGED ({r['why']})" if r["changed"] else ""]
            for r in d["claims"]]
    out.append(tabulate(rows, ["claim", "model", "verdict A", "verdict B", "diff A pp", "diff B pp", "B - A interval",
                               "BH p", "flag"], tablefmt="github", disable_numparse=True))
    ha, hb = d["projection_hours"]
    out += ["", f"Projected study cost: A {_f(ha, '.1f')} h, B {_f(hb, '.1f')} h", ""]
    changed = sum(r["changed"] for r in d["claims"])
    out.append(f"{d['flagged']} metric change(s) beyond noise, {len(d['regressions'])} regression(s), "
               f"{changed} claim verdict change(s).")
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
