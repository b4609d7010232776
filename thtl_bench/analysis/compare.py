"""Compare two results: record folders, summary JSONs or git revisions (A = before, B = after).

Every side goes through analysis.aggregate (or is a summary.json it wrote), so A and B are judged by
the same code. For each model x arm and test metric: delta = mean B - mean A in pp, flagged as
beyond seed noise when |delta| > the combined half-width sqrt(hA^2 + hB^2) of the two t-intervals
over seeds, or when a Welch t-test over the per-seed values gives p < stats.alpha. A flagged drop
is a regression (every metric here is higher-is-better). Speed: a relative change of throughput
or wall time beyond report.speed_change is flagged; a slowdown is a regression unless the two
sides ran on different devices (then speed is not comparable and only noted). Claim verdict
changes are listed; they are informational, not regressions.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from tabulate import tabulate

from thtl_bench import records
from thtl_bench.analysis import aggregate as agg
from thtl_bench.analysis.intervals import welch_p
from thtl_bench.errors import UserError
from thtl_bench.io import git

SPEED = (("train_images_per_s", +1), ("inference_images_per_s", +1), ("wall_s", -1))


def _is_revision(spec: str) -> bool:
    out = git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    return out is not None and out.returncode == 0


def _from_revision(rev: str, cfg: dict, records_path: str | None) -> tuple[dict, str]:
    """The records folder at `rev` (git archive into a temp dir), else its committed summary.json."""
    path = (records_path or cfg["grid"]["records_dir"]).rstrip("/")
    arch = git("archive", "--format=tar", rev, "--", path, binary=True)
    if arch is not None and arch.returncode == 0 and arch.stdout:
        with tempfile.TemporaryDirectory(prefix="thtl-compare-") as tmp:
            with tarfile.open(fileobj=io.BytesIO(arch.stdout)) as tar:
                tar.extractall(tmp, filter="data")
            recs = records.load_all([Path(tmp) / path])
            if recs:
                fl = git("show", f"{rev}:{Path(cfg['report']['dir']).as_posix()}/flops.json")
                flops = json.loads(fl.stdout) if fl is not None and fl.returncode == 0 else None
                return agg.aggregate(recs, cfg, flops=flops), f"{rev}:{path}"
    spath = f"{Path(cfg['report']['dir']).as_posix()}/summary.json"
    show = git("show", f"{rev}:{spath}")
    if show is not None and show.returncode == 0:
        with tempfile.TemporaryDirectory(prefix="thtl-compare-") as tmp:
            f = Path(tmp) / "summary.json"
            f.write_text(show.stdout)
            return agg.load_summary(f), f"{rev}:{spath}"
    raise UserError(f"revision {rev} has neither records under {path} nor {spath} in git; "
                    "pass --records PATH or compare record folders")


def load_side(spec: str, cfg: dict, records_path: str | None = None) -> tuple[dict, str]:
    """(summary, label) of a records folder, a summary JSON or a git revision."""
    p = Path(spec)
    if p.is_dir():
        recs = records.load_all([p])
        if not recs:
            raise UserError(f"{p}: no records in this folder")
        return agg.aggregate(recs, cfg, flops=agg.load_flops(Path(cfg["report"]["dir"]) / "flops.json")), str(p)
    if p.is_file():
        return agg.load_summary(p), str(p)
    if _is_revision(spec):
        return _from_revision(spec, cfg, records_path)
    raise UserError(f"{spec!r} is not a records folder, a summary JSON or a git revision")


# ----------------------------------------------------------------------------- the difference

def _half(st: dict) -> float | None:
    if st.get("ci_low") is None:
        return None
    return (st["ci_high"] - st["ci_low"]) / 2


def _metric_row(model: str, arm: str, name: str, a: dict | None, b: dict | None, alpha: float) -> dict:
    row: dict[str, Any] = {"model": model, "arm": arm, "metric": name, "a": a, "b": b,
                           "delta_pp": None, "noise_pp": None, "p": None, "flag": ""}
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        row["flag"] = "only in A" if a and not b else ("only in B" if b and not a else "n/a")
        return row
    row["delta_pp"] = 100 * (b["mean"] - a["mean"])
    ha, hb = _half(a), _half(b)
    if ha is not None and hb is not None:
        row["noise_pp"] = 100 * math.hypot(ha, hb)
    row["p"] = welch_p(a.get("values") or [], b.get("values") or [])
    beyond = ((row["noise_pp"] is not None and abs(row["delta_pp"]) > row["noise_pp"])
              or (row["p"] is not None and row["p"] < alpha))
    if beyond and row["delta_pp"] != 0:
        row["flag"] = "REGRESSION" if row["delta_pp"] < 0 else "improvement"
    elif row["noise_pp"] is None and row["p"] is None:
        row["flag"] = "one seed: not judged"
    return row


def diff(sa: dict, sb: dict, cfg: dict) -> dict:
    """Metric, speed and claim differences of two summaries, with flags and the regressions."""
    alpha = float(cfg["stats"]["alpha"])
    thr = float(cfg["report"]["speed_change"])
    keys = [(c["model"], c["arm"]) for c in sa["cells"]]
    keys += [(c["model"], c["arm"]) for c in sb["cells"] if (c["model"], c["arm"]) not in keys]
    metric_rows, speed_rows = [], []
    for m, a in keys:
        ca, cb = agg.cell(sa, m, a), agg.cell(sb, m, a)
        names = list(dict.fromkeys([*((ca or {}).get("metrics") or {}), *((cb or {}).get("metrics") or {})]))
        for name in names:
            metric_rows.append(_metric_row(m, a, name, (ca or {}).get("metrics", {}).get(name),
                                           (cb or {}).get("metrics", {}).get(name), alpha))
        if ca and cb:
            same_dev = ca.get("devices") == cb.get("devices")
            for key, sign in SPEED:
                va, vb = ca["timing"][key]["mean"], cb["timing"][key]["mean"]
                rel = (vb / va - 1) if va and vb is not None else None
                flag = ""
                if rel is not None and abs(rel) > thr:
                    worse = rel * sign < 0
                    flag = ("slower (different devices: not comparable)" if worse and not same_dev
                            else "SLOWER" if worse else "faster")
                speed_rows.append({"model": m, "arm": a, "what": key, "a": va, "b": vb, "rel": rel,
                                   "flag": flag, "devices": (ca.get("devices"), cb.get("devices"))})
    claim_rows = []
    ca_claims = {(r["id"], r["model"]): r for r in sa.get("claims", [])}
    cb_claims = {(r["id"], r["model"]): r for r in sb.get("claims", [])}
    for k in list(ca_claims) + [k for k in cb_claims if k not in ca_claims]:
        ra, rb = ca_claims.get(k), cb_claims.get(k)
        va, vb = (ra or {}).get("verdict"), (rb or {}).get("verdict")
        claim_rows.append({"id": k[0], "model": k[1], "a": va, "b": vb,
                           "diff_a": (ra or {}).get("diff_pp"), "diff_b": (rb or {}).get("diff_pp"),
                           "changed": va != vb})
    regressions = ([f"{r['model']}/{r['arm']} {r['metric']} {r['delta_pp']:+.1f} pp"
                    for r in metric_rows if r["flag"] == "REGRESSION"]
                   + [f"{r['model']}/{r['arm']} {r['what']} {100 * r['rel']:+.0f} %"
                      for r in speed_rows if r["flag"] == "SLOWER"])
    pa, pb = sa["provenance"], sb["provenance"]
    notes = []
    if pa["records_digest"] == pb["records_digest"]:
        notes.append("A and B hold the same records (same case ids).")
    for key in ("data_kinds", "profiles", "devices", "data_fingerprints"):
        if pa.get(key) != pb.get(key):
            notes.append(f"{key} differ: A {pa.get(key)} vs B {pb.get(key)}")
    return {"metrics": metric_rows, "speed": speed_rows, "claims": claim_rows,
            "regressions": regressions, "notes": notes,
            "flagged": sum(r["flag"] in ("REGRESSION", "improvement") for r in metric_rows),
            "alpha": alpha, "speed_change": thr,
            "projection_hours": (sa["projection"].get("total_hours"), sb["projection"].get("total_hours"))}


# ----------------------------------------------------------------------------- text

def _ms(st: dict | None) -> str:
    if not st or st.get("mean") is None:
        return "-"
    sd = "" if st.get("std") is None else f" ± {100 * st['std']:.1f}"
    return f"{100 * st['mean']:.1f}{sd} (n={st.get('n', '?')})"


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def format_diff(d: dict, label_a: str = "A", label_b: str = "B") -> str:
    out = [f"A = {label_a}", f"B = {label_b}", ""]
    out += [f"note: {n}" for n in d["notes"]]
    out += ["", f"Test metrics (B - A, pp; beyond seed noise when |delta| > combined t-interval "
                f"half-width or Welch p < {d['alpha']:g}):", ""]
    rows = [[r["model"], r["arm"], r["metric"], _ms(r["a"]), _ms(r["b"]), _f(r["delta_pp"], "+.1f"),
             _f(r["noise_pp"], ".1f"), _f(r["p"], ".3g"), r["flag"]] for r in d["metrics"]]
    out.append(tabulate(rows, ["model", "arm", "metric", "A %", "B %", "delta pp", "noise pp", "Welch p", "flag"],
                        tablefmt="github", disable_numparse=True))
    out += ["", f"Speed (flagged beyond {100 * d['speed_change']:g} % relative change):", ""]
    rows = [[r["model"], r["arm"], r["what"], _f(r["a"], ".2f"), _f(r["b"], ".2f"),
             _f(None if r["rel"] is None else 100 * r["rel"], "+.1f"), r["flag"]] for r in d["speed"]]
    out.append(tabulate(rows, ["model", "arm", "figure", "A", "B", "change %", "flag"],
                        tablefmt="github", disable_numparse=True))
    out += ["", "Claims:", ""]
    rows = [[r["id"], r["model"], r["a"] or "-", r["b"] or "-", _f(r["diff_a"], "+.1f"), _f(r["diff_b"], "+.1f"),
             "VERDICT CHANGED" if r["changed"] else ""] for r in d["claims"]]
    out.append(tabulate(rows, ["claim", "model", "verdict A", "verdict B", "diff A pp", "diff B pp", "flag"],
                        tablefmt="github", disable_numparse=True))
    ha, hb = d["projection_hours"]
    out += ["", f"Projected study cost: A {_f(ha, '.1f')} h, B {_f(hb, '.1f')} h", ""]
    changed = sum(r["changed"] for r in d["claims"])
    out.append(f"{d['flagged']} metric change(s) beyond seed noise, {len(d['regressions'])} regression(s), "
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
    sa, la = load_side(a, cfg, records_path)
    sb, lb = load_side(b, cfg, records_path)
    d = diff(sa, sb, cfg)
    return d, format_diff(d, la, lb)
