"""The headline claims C1-C5 of docs/study.md, tested per model on the records.

Each claim is a paired difference (arm A minus arm B, same seed, same test split) of one test
metric. For each model: the mean difference in percentage points, the relative change, a paired
t-interval and ttest_rel p-value across seeds, a paired bootstrap interval over test images
(intervals.bootstrap_paired), the paper's number, a verdict and whether the paper's number lies in
our interval. The interval that decides (`ci_used`) is the bootstrap one when there are fewer
than `stats.bootstrap_below_seeds` seeds, else the t one. `rule_text` states the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from thtl_bench.analysis import intervals
from thtl_bench.analysis.summary import canonical_order, outcomes

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    arm_a: str
    arm_b: str
    metric: str  # test metric name (thtl_bench.metrics)
    kind: str  # "directional" (sign of A - B) | "equivalence" (small, non-significant)
    direction: int = 0  # +1 / -1 for directional claims
    paper: dict = field(default_factory=dict)  # model -> paper number in points (abstract)
    paper_says: dict = field(default_factory=dict)  # model -> statement for claims without a number


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "THTL last-layer accuracy minus one-step last-layer accuracy",
          "thtl_last", "onestep_last", "accuracy", "directional", -1,
          paper={"resnet18": -14.7, "resnet50": -14.8}),
    Claim("C2", "SWFT accuracy minus THTL last-layer accuracy",
          "swft", "thtl_last", "accuracy", "directional", +1,
          paper={"resnet18": 26.1, "resnet50": 20.4}),
    Claim("C3", "SWFT malignant recall minus THTL last-layer malignant recall",
          "swft", "thtl_last", "recall", "directional", +1,
          paper={"resnet18": 79.8, "resnet50": 62.2}),
    Claim("C4", "SWFT accuracy is higher than THTL all-layers accuracy",
          "swft", "thtl_all", "accuracy", "directional", +1,
          paper_says={"resnet18": "yes", "resnet50": "yes"}),
    Claim("C5", "one-step (ImageNet, all layers) vs scratch: a small, non-significant accuracy difference",
          "onestep_all", "scratch", "accuracy", "equivalence",
          paper_says={"resnet18": "yes", "resnet50": "yes"}),
)


def base_model(name: str) -> str:
    """Registry prefixes (tv:/timm:) do not change which paper number applies."""
    return name.split(":", 1)[-1]


def verdict(claim: Claim, diff: float | None, ci: Sequence[float] | None, margin: float) -> str:
    """Directional: reproduced if the CI excludes 0 on the paper's side, contradicted if it
    excludes 0 on the other side, else inconclusive. Equivalence (C5): reproduced if the CI
    contains 0 (not significant) and lies within +-margin; contradicted if the CI excludes 0 and
    |diff| > margin; else inconclusive. No interval: inconclusive."""
    if ci is None or diff is None:
        return INCONCLUSIVE
    lo, hi = ci
    significant = lo > 0 or hi < 0
    if claim.kind == "directional":
        if (claim.direction > 0 and lo > 0) or (claim.direction < 0 and hi < 0):
            return REPRODUCED
        if significant:
            return CONTRADICTED
        return INCONCLUSIVE
    if not significant and -margin <= lo and hi <= margin:
        return REPRODUCED
    if significant and abs(diff) > margin:
        return CONTRADICTED
    return INCONCLUSIVE


def rule_text(params: dict) -> str:
    """The decision rules, with the parameters that were used (markdown)."""
    conf = 100 * float(params["confidence"])
    return "\n".join([
        f"- Difference = arm A minus arm B of the named test metric, in percentage points (pp), "
        f"paired by seed; relative change = (mean A - mean B) / mean B. Paired t-interval "
        f"({conf:g} %) and paired t-test (`scipy.stats.ttest_rel`) across seeds (n/a with < 2 seeds).",
        f"- Paired bootstrap over test images ({params['bootstrap']} resamples, seed "
        f"{params['bootstrap_seed']}): image indices are resampled once per draw, jointly for both "
        f"arms and all seeds, and the seed-averaged difference is recomputed; {conf:g} % percentile "
        f"interval. It measures test-set sampling error only, not seed-to-seed variation.",
        f"- Deciding interval (`CI used`): bootstrap when fewer than "
        f"{params['bootstrap_below_seeds']} paired seeds, else the t-interval.",
        "- Directional claims (C1-C4): **reproduced** if the interval excludes 0 on the paper's "
        "side, **contradicted** if it excludes 0 on the opposite side, else **inconclusive**.",
        f"- Equivalence claim (C5): **reproduced** if the interval contains 0 (not significant) and "
        f"lies within +-{params['equivalence_margin_pp']:g} pp (`stats.equivalence_margin_pp`); "
        f"**contradicted** if it excludes 0 and |difference| > {params['equivalence_margin_pp']:g} pp; "
        f"else **inconclusive**.",
        "- Missing arms or seeds: **inconclusive** (the note says what is missing).",
        "- `paper in CI`: magnitude agreement, separate from the verdict; the abstracts do not say "
        "whether their numbers are points or relative change, so both readings are checked "
        "(pp: the paper number in our pp interval; rel: in our relative-change interval).",
    ])


def _by_seed(records: Sequence[dict], model: str, arm: str) -> dict[int, dict]:
    return {int(r["case"]["seed"]): r for r in records
            if r["status"] == "ok" and r["case"]["model"] == model and r["case"]["arm"] == arm}


def _bootstrap(claim: Claim, ra: list[dict], rb: list[dict], params: dict) -> tuple[dict | None, str]:
    """Bootstrap on per-sample predictions, after checking both arms saw the same test images."""
    outs_a = [outcomes(r) for r in ra]
    outs_b = [outcomes(r) for r in rb]
    ref = sorted(outs_a[0]["ids"])
    aligned = []
    for o in outs_a + outs_b:
        if sorted(o["ids"]) != ref or len(set(o["ids"])) != len(o["ids"]):
            return None, "bootstrap skipped: test image ids differ between seeds/arms"
        idx = np.argsort(o["ids"], kind="stable")
        aligned.append({k: np.asarray(o[k])[idx] for k in ("labels", "correct", "positive")})
    if any(not np.array_equal(a["labels"], aligned[0]["labels"]) for a in aligned):
        return None, "bootstrap skipped: test labels differ between seeds/arms"
    if claim.metric == "accuracy":
        den = np.ones(len(ref))
        num = [a["correct"] for a in aligned]
    elif claim.metric == "recall":
        den = aligned[0]["positive"].astype(float)
        num = [a["correct"] & a["positive"] for a in aligned]
    else:
        return None, f"bootstrap not defined for {claim.metric}"
    k = len(ra)
    boot = intervals.bootstrap_paired(np.array(num[:k]), np.array(num[k:]), den,
                                  n_boot=int(params["bootstrap"]), seed=int(params["bootstrap_seed"]),
                                  confidence=float(params["confidence"]))
    return boot, ""


def _inside(value: float | None, ci: Sequence[float] | None) -> bool | None:
    if value is None or ci is None:
        return None
    return bool(ci[0] <= value <= ci[1])


def evaluate_one(claim: Claim, model: str, records: Sequence[dict], params: dict) -> dict:
    a, b = _by_seed(records, model, claim.arm_a), _by_seed(records, model, claim.arm_b)
    seeds = sorted(s for s in set(a) & set(b)
                   if a[s]["metrics"]["test"].get(claim.metric) is not None
                   and b[s]["metrics"]["test"].get(claim.metric) is not None)
    out = {
        "id": claim.id, "model": model, "text": claim.text, "arm_a": claim.arm_a, "arm_b": claim.arm_b,
        "metric": claim.metric, "kind": claim.kind, "direction": claim.direction,
        "paper_value_pp": claim.paper.get(base_model(model)),
        "paper_says": claim.paper_says.get(base_model(model)),
        "seeds": seeds, "n_pairs": len(seeds),
        "mean_a": None, "mean_b": None, "diff_pp": None, "rel_pct": None,
        "t_ci_pp": None, "t_rel_ci_pct": None, "p_value": None,
        "boot_ci_pp": None, "boot_rel_ci_pct": None, "boot_diff_pp": None,
        "ci_used": None, "ci_pp": None, "rel_ci_pct": None,
        "verdict": INCONCLUSIVE, "paper_in_ci": {"pp": None, "rel": None}, "note": "",
    }
    if not seeds:
        missing = [arm for arm, d in ((claim.arm_a, a), (claim.arm_b, b)) if not d]
        out["note"] = (f"no ok records for {', '.join(missing)}" if missing
                       else "no seed has both arms with a defined metric")
        return out
    conf = float(params["confidence"])
    va = np.array([a[s]["metrics"]["test"][claim.metric] for s in seeds], float)
    vb = np.array([b[s]["metrics"]["test"][claim.metric] for s in seeds], float)
    pt = intervals.paired(100 * va, 100 * vb, conf)
    out.update(mean_a=float(va.mean()), mean_b=float(vb.mean()), diff_pp=pt["mean"], p_value=pt["p"])
    if vb.mean() > 0:
        out["rel_pct"] = 100.0 * (va.mean() - vb.mean()) / vb.mean()
    if pt["ci_low"] is not None:
        out["t_ci_pp"] = [pt["ci_low"], pt["ci_high"]]
        if np.all(vb > 0):
            rt = intervals.t_interval(100 * (va - vb) / vb, conf)
            out["t_rel_ci_pct"] = [rt["ci_low"], rt["ci_high"]]
    boot, note = _bootstrap(claim, [a[s] for s in seeds], [b[s] for s in seeds], params)
    if boot:
        out.update(boot_ci_pp=boot["ci_pp"], boot_rel_ci_pct=boot["rel_ci_pct"], boot_diff_pp=boot["diff_pp"])
    use_boot = out["boot_ci_pp"] is not None and (len(seeds) < int(params["bootstrap_below_seeds"])
                                                  or out["t_ci_pp"] is None)
    if use_boot:
        out.update(ci_used="bootstrap", ci_pp=out["boot_ci_pp"], rel_ci_pct=out["boot_rel_ci_pct"])
    elif out["t_ci_pp"] is not None:
        out.update(ci_used="t", ci_pp=out["t_ci_pp"], rel_ci_pct=out["t_rel_ci_pct"])
    out["verdict"] = verdict(claim, out["diff_pp"], out["ci_pp"], float(params["equivalence_margin_pp"]))
    out["paper_in_ci"] = {"pp": _inside(out["paper_value_pp"], out["ci_pp"]),
                          "rel": _inside(out["paper_value_pp"], out["rel_ci_pct"])}
    notes = [note] if note else []
    if out["ci_used"] is None:
        notes.append("one seed and no bootstrap: no interval")
    out["note"] = "; ".join(notes)
    return out


def evaluate(records: Sequence[dict], cfg: dict, order: dict | None = None) -> list[dict]:
    """All claims for every model with at least one ok record, claims first, then models."""
    params = cfg["stats"]
    models = canonical_order("models", [r["case"]["model"] for r in records if r["status"] == "ok"],
                                   order)
    return [evaluate_one(c, m, records, params) for c in CLAIMS for m in models]


# ----------------------------------------------------------------------------- table

def _pp(x: float | None, signed: bool = True) -> str:
    return "n/a" if x is None else (f"{x:+.1f}" if signed else f"{x:.1f}")


def _ci(ci: Sequence[float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def _yes(x: bool | None) -> str:
    return "n/a" if x is None else ("yes" if x else "no")


def table_rows(results: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["claim", "model", "A - B (metric)", "diff pp", "rel %", "t CI pp", "p (paired t)",
               "bootstrap CI pp", "CI used", "paper", "verdict", "paper in CI (pp / rel)", "note"]
    rows = []
    for r in results:
        paper = (_pp(r["paper_value_pp"]) if r["paper_value_pp"] is not None
                 else (r["paper_says"] or "-"))
        rows.append([
            r["id"], r["model"], f"{r['arm_a']} - {r['arm_b']} ({r['metric']})",
            _pp(r["diff_pp"]), _pp(r["rel_pct"]), _ci(r["t_ci_pp"]),
            "n/a" if r["p_value"] is None else f"{r['p_value']:.3g}",
            _ci(r["boot_ci_pp"]), r["ci_used"] or "none", paper, r["verdict"],
            f"{_yes(r['paper_in_ci']['pp'])} / {_yes(r['paper_in_ci']['rel'])}"
            if r["paper_value_pp"] is not None else "-",
            r["note"] or "",
        ])
    return headers, rows


def table(results: Sequence[dict]) -> str:
    """The claims table as GitHub markdown (REPORT.md and the golden test use this text)."""
    from tabulate import tabulate

    headers, rows = table_rows(results)
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
