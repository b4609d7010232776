"""The claim verdict rules, in one place: the rule, Holm over the primary family, their text in
words (`rules_markdown`) and a hash of the analysis plan (`plan_hash`), so that a change of the
rules or of their numbers after results were seen shows.

Every verdict is read off an interval of `inference.Evidence` (a t-interval over the replicate
units whose variance holds each component once: training and test-patient sampling through the
units' spread, the data set's shared patients through a separate term), never off a point
estimate:
- directional (C1-C4, arm A minus arm B with a sign the paper states): **reproduced** when the
  interval lies beyond 0 on the paper's side by more than `tol` pp, **contradicted** when it lies
  beyond 0 on the other side by more than `tol`, else **inconclusive**. An interval ending at
  -4.4e-16 does not exclude 0.
- equivalence (C5, "a small, non-significant difference"): TOST with margin m: at level a the
  (1 - 2a) interval inside (-m + tol, m - tol) -> **reproduced**; the same interval entirely
  beyond +-(m + tol) -> **contradicted** (significantly outside the band); wider than 2m ->
  **underpowered** (no outcome could reproduce it); else **inconclusive**.
- Holm over the primary family (planned pairs of claim and model), step-down, in the order of
  the decision p-values (dual to the intervals: directional two-sided p for 0; C5 the smaller
  of the TOST p and the outside-the-band p). The hypothesis at rank i is judged at level
  a / (m - j + 1) with j = min(i, k), k the rank of the first hypothesis not rejected: this is
  exactly Holm's step-down decision, read off an interval (see `decide`). Exploratory pairs
  (outside the family) are judged at a, unadjusted, and labelled so.
- no evidence (missing arm or replicates), one replicate, or fewer than `min_replicates`:
  **inconclusive** with a note; an arm that fails the plan's fit gate (analysis.fit):
  **not decided: under-trained** (with `max_excluded_share`: unless few replicates fail, see
  `decide_gated`). Such a family member keeps its place in m (p = 1). Every
  verdict is also computed with the gate off (`decide(..., gate=False)`), so what the gate hides
  is shown.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from thtl_bench.analysis.inference import Evidence

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
UNDERPOWERED, UNDERTRAINED = "underpowered", "not decided: under-trained"
DECISIVE = (REPRODUCED, CONTRADICTED)
RULES_VERSION = 4  # bump with any change of the rules below (the plan hash changes anyway)
# 4: t over split units with the shared-patient term (no bootstrap); the fit gate in the plan


@dataclass(frozen=True)
class Hypothesis:
    """One claim on one model. `direction`: +1 / -1 (directional claims). `undertrained`:
    arms of this claim that did not reach their training fit (the caller decides that)."""

    id: str
    model: str
    kind: str  # "directional" | "equivalence"
    direction: int = 0
    evidence: Evidence | None = None
    note: str = ""
    undertrained: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- the rule

def interval_confidence(kind: str, level: float) -> float:
    """The confidence of the interval that decides at level `level`."""
    return 1.0 - 2.0 * level if kind == "equivalence" else 1.0 - level


def interval_verdict(kind: str, direction: int, interval: Sequence[float], margin: float, tol: float) -> str:
    """The verdict an interval (pp) gives; see the module docstring."""
    lo, hi = float(interval[0]), float(interval[1])
    if kind == "directional":
        if direction not in (-1, 1):
            raise ValueError(f"a directional claim needs direction +1 or -1, got {direction}")
        if (direction > 0 and lo > tol) or (direction < 0 and hi < -tol):
            return REPRODUCED
        if (direction > 0 and hi < -tol) or (direction < 0 and lo > tol):
            return CONTRADICTED
        return INCONCLUSIVE
    if kind == "equivalence":
        if lo > -margin + tol and hi < margin - tol:
            return REPRODUCED
        if lo > margin + tol or hi < -margin - tol:
            return CONTRADICTED
        if hi - lo > 2.0 * margin:
            return UNDERPOWERED
        return INCONCLUSIVE
    raise ValueError(f"unknown claim kind {kind!r} (directional | equivalence)")


def judge_batch(direction: int, estimate, se, df, decidable, level: float, tol: float):
    """`judge` of many directional hypotheses at once (arrays): (reproduced, contradicted) boolean
    arrays at `level`, read off the same (1 - level) t-interval with the same tolerance. The
    calibration simulations use it; tests/analysis/test_rules.py checks it against `judge`."""
    import numpy as np
    from scipy import special

    est, se, df = (np.asarray(x, np.float64) for x in (estimate, se, df))
    ok = np.asarray(decidable, bool)
    h = np.where(ok & (se > 0), special.stdtrit(np.where(ok, df, 1.0), 1.0 - level / 2.0) * np.where(ok, se, 0.0), 0.0)
    lo, hi = est - h, est + h
    if direction > 0:
        rep, con = lo > tol, hi < -tol
    elif direction < 0:
        rep, con = hi < -tol, lo > tol
    else:
        raise ValueError(f"a directional claim needs direction +1 or -1, got {direction}")
    return ok & rep, ok & con


def decision_p(h: Hypothesis, margin: float) -> float:
    """The p-value that orders h in Holm's step-down (dual to its deciding interval)."""
    ev = h.evidence
    if h.kind == "directional":
        return ev.p_two_sided(0.0)
    tost = max(ev.p_above(-margin), ev.p_below(margin))
    outside = min(ev.p_above(margin), ev.p_below(-margin))
    return min(tost, outside)


def _blocker(h: Hypothesis, min_replicates: int, gate: bool = True) -> tuple[str, str] | None:
    """(verdict, note) when h cannot be decided from its evidence, else None."""
    if h.evidence is None:  # nothing to decide on: a missing arm is not an under-trained one
        return INCONCLUSIVE, h.note or "no evidence"
    if gate and h.undertrained:
        return UNDERTRAINED, f"arm(s) {', '.join(h.undertrained)} failed the fit gate"
    if not h.evidence.decidable or min(h.evidence.n) < min_replicates:
        return INCONCLUSIVE, (f"{h.evidence.units} split(s) of {min(h.evidence.n)} replicate(s); at least "
                              f"{max(2, min_replicates)} are needed: one split holds the trained models and the "
                              "patients fixed")
    return None


def judge(h: Hypothesis, level: float, *, margin: float, tol: float, min_replicates: int = 2,
          gate: bool = True) -> str:
    """The verdict of one hypothesis judged alone at `level` (a family of one): what `decide`
    gives it with family=[(h.id, h.model)] and alpha=level, without the bookkeeping (the
    calibration simulations call this millions of times)."""
    blocked = _blocker(h, min_replicates, gate)
    if blocked:
        return blocked[0]
    iv = h.evidence.interval(interval_confidence(h.kind, level))
    return INCONCLUSIVE if iv is None else interval_verdict(h.kind, h.direction, iv, margin, tol)


def holm_adjusted(pvalues: Sequence[float]) -> list[float]:
    """Holm adjusted p-values: max over ranks j <= i of min(1, (m - j + 1) p_(j))."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (pvalues[i], i))
    out, run = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = run
    return out


def _row(h: Hypothesis, level: float, margin: float, tol: float, alpha: float) -> dict:
    ev = h.evidence
    conf = interval_confidence(h.kind, level)
    row = {"id": h.id, "model": h.model, "kind": h.kind, "direction": h.direction, "level": level,
           "confidence": conf, "interval_pp": None, "estimate_pp": None, "p": None, "verdict": INCONCLUSIVE,
           "note": h.note, "unadjusted": None}
    if ev is not None:
        iv = ev.interval(conf)
        row.update(interval_pp=None if iv is None else [iv[0], iv[1]], estimate_pp=ev.estimate,
                   p=decision_p(h, margin), unadjusted=ev.summary(1.0 - alpha))
    return row


def decide(hyps: Sequence[Hypothesis], *, family: Sequence[Sequence[str]], alpha: float, margin: float,
           tol: float, min_replicates: int = 2, gate: bool = True) -> list[dict]:
    """Verdicts of `hyps` (in their order): Holm step-down over the (id, model) pairs in
    `family` (m = len(family), whether or not each pair has evidence), the others unadjusted.

    Each row: id, model, kind, direction, family ("primary" | "exploratory"), m, rank (Holm
    rank, primary only), level, confidence and interval_pp of the deciding interval,
    estimate_pp, p (decision p), p_adjusted (Holm; exploratory: = p), verdict, basis
    ("interval" when the verdict was read off the interval, else "none"), note and the
    unadjusted evidence summary at 1 - alpha. Family pairs without a hypothesis get a row too.
    `gate=False` decides as if every arm had passed the fit gate (the ungated verdicts).
    """
    fam = [(str(a), str(b)) for a, b in family]
    if len(set(fam)) != len(fam):
        raise ValueError("the primary family lists a (claim, model) pair twice")
    hyps = list(hyps) + [Hypothesis(c, m, "", 0, None, "not evaluated: no records")
                         for c, m in fam if (c, m) not in {(h.id, h.model) for h in hyps}]
    primary = [i for i, h in enumerate(hyps) if (h.id, h.model) in fam]
    blocked = {i: _blocker(h, min_replicates, gate) for i, h in enumerate(hyps)}
    p = {i: 1.0 if blocked[i] else decision_p(hyps[i], margin) for i in range(len(hyps))}
    m = len(fam)
    rows: dict[int, dict] = {}
    adj = dict(zip(primary, holm_adjusted([p[i] for i in primary]), strict=True))
    stop = None  # rank of the first primary hypothesis not rejected
    for rank, i in enumerate(sorted(primary, key=lambda i: (p[i], i)), 1):
        level = alpha / (m - (rank if stop is None else stop) + 1)
        row = _row(hyps[i], level, margin, tol, alpha)
        row.update(family="primary", m=m, rank=rank, p=p[i], p_adjusted=adj[i])
        verdict = _verdict(hyps[i], row, blocked[i], margin, tol)
        if stop is None and verdict not in DECISIVE:
            stop = rank
        elif stop is not None and verdict in DECISIVE:
            # Only through the tolerance or tied p-values: Holm stopped earlier, so no decision.
            row["note"] = _join(row["note"], f"Holm stopped at rank {stop}")
            verdict = INCONCLUSIVE
        row["verdict"] = verdict
        rows[i] = row
    for i, h in enumerate(hyps):
        if i not in rows:
            row = _row(h, alpha, margin, tol, alpha)
            row.update(family="exploratory", m=1, rank=None, p=p[i], p_adjusted=p[i])
            row["verdict"] = _verdict(h, row, blocked[i], margin, tol)
            row["note"] = _join(row["note"], "exploratory: not adjusted for multiplicity")
            rows[i] = row
    return [rows[i] for i in range(len(hyps))]


def decide_gated(hyps: Sequence[Hypothesis], passing: Sequence[Hypothesis | None], *,
                 max_excluded_share: float | None, **kw) -> tuple[list[dict], list[dict]]:
    """The plan's verdicts and the ungated ones: `decide` with the fit gate, where a hypothesis
    with failing replicates (`undertrained`) whose failing share of its paired replicates is at
    most `max_excluded_share` is decided on its gate-passing replicates instead (`passing[i]`:
    the same claim on those replicates, None where it has none). That verdict stands only where
    the verdict without the gate is the same; elsewhere the claim stays **not decided:
    under-trained** (it would hang on how the failing replicates are handled). Each row of a
    claim so decided has `per_protocol` = {kept, of, stands}. kw: those of `decide`."""
    hyps = list(hyps)
    ungated = decide(hyps, **kw, gate=False)
    plan_hyps, pp = list(hyps), {}
    for i, (h, p) in enumerate(zip(hyps, passing, strict=True)):
        if (max_excluded_share is None or not h.undertrained or h.evidence is None or p is None
                or p.evidence is None):
            continue
        of, kept = int(h.evidence.n[0]), int(p.evidence.n[0])
        if of - kept <= math.floor(max_excluded_share * of + 1e-9):
            pp[i] = {"kept": kept, "of": of, "stands": True}
            plan_hyps[i] = replace(h, evidence=p.evidence, undertrained=(), note=_join(
                p.note, f"decided on the {kept} of {of} replicates where every arm passes the fit gate (at most "
                f"{100 * max_excluded_share:g} % may fail; failing: {', '.join(h.undertrained)}); the same "
                "verdict without the gate"))
    rows = decide(plan_hyps, **kw)
    for _ in range(len(pp)):  # blocking one can move Holm's levels for the others: until none flips
        flips = [i for i, x in pp.items() if x["stands"] and rows[i]["verdict"] != ungated[i]["verdict"]]
        if not flips:
            break
        for i in flips:
            pp[i]["stands"] = False
            plan_hyps[i] = replace(hyps[i], note=_join(hyps[i].note, (
                f"on the {pp[i]['kept']} of {pp[i]['of']} gate-passing replicates {rows[i]['verdict']}, without "
                f"the gate {ungated[i]['verdict']}: the verdict hangs on the failing replicates")))
        rows = decide(plan_hyps, **kw)
    for i, x in pp.items():
        rows[i]["per_protocol"] = dict(x)
    return rows, ungated


def _verdict(h: Hypothesis, row: dict, blocked: tuple[str, str] | None, margin: float, tol: float) -> str:
    """The verdict; sets row["basis"]: "interval" when it was read off the interval, else "none"."""
    row["basis"] = "none"
    if blocked:
        row["note"] = _join(row["note"], blocked[1]) if blocked[1] != row["note"] else row["note"]
        return blocked[0]
    if row["interval_pp"] is None:
        row["note"] = _join(row["note"], "no interval")
        return INCONCLUSIVE
    row["basis"] = "interval"
    return interval_verdict(h.kind, h.direction, row["interval_pp"], margin, tol)


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


# ----------------------------------------------------------------------------- plan and text

INTERVAL = ("t-interval over the replicate units (one unit per patient split: the mean of its replicates) "
            "with variance s_u^2 / U (training and test-patient sampling, once) + sigma_sys^2 / N (the data "
            "set's N patients, shared by every split), Welch-Satterthwaite df")


def plan(*, alpha: float, margin_pp: float, tolerance_pp: float, family: Sequence[Sequence[str]],
         min_replicates: int, fit_gate: dict, claims: Sequence[dict] = (),
         amendments: Sequence[str] = ()) -> dict:
    """The analysis plan: every number and definition a verdict depends on, the fit gate included,
    with its amendments after results were seen (dated, in words: `stats.amendments`), so a change
    made after the results shows in REPORT.md and not only as another hash."""
    extra = {"amendments": [str(a) for a in amendments]} if amendments else {}
    return {**extra,
        "rules_version": RULES_VERSION, "alpha": float(alpha), "equivalence_margin_pp": float(margin_pp),
        "tolerance_pp": float(tolerance_pp), "family": [list(x) for x in family],
        "min_replicates": int(min_replicates), "interval": INTERVAL, "fit_gate": dict(sorted(fit_gate.items())),
        "claims": [dict(sorted(c.items())) for c in claims],
    }


def plan_hash(p: dict, n: int = 12) -> str:
    """Short sha256 of the plan and of the rule text it produces (canonical JSON)."""
    text = json.dumps({"plan": p, "rules": _rule_lines(p)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def gate_text(g: dict) -> str:
    """When an arm passes the fit gate `g` (the plan's `fit_gate`), in words with its numbers."""
    conv = (" and stopped by the convergence rule (validation loss not improved for `patience` epochs; a stop at "
            "the epoch cap is not convergence)") if g.get("require_convergence") else ""
    fitted = (f" (or a lowest epoch-mean training loss at least {100 * g['min_fit_gain']:g} % below the null loss, "
              "the cross-entropy of the training split's class shares: the optimiser fitted the training split, "
              "whichever epoch validation kept)") if g.get("min_fit_gain") is not None else ""
    return (f"training accuracy >= {g['min_train_accuracy']:g}, or a gain (acc - majority) / (1 - majority) >= "
            f"{g['min_kappa']:g} over the training split's majority rate{fitted}{conv}")


def _excluded_text(g: dict) -> str:
    share = g.get("max_excluded_share")
    if share is None:
        return ""
    return (f", unless the replicates where a compared arm (or its step 1) fails are at most {100 * share:g} % of "
            "the claim's paired replicates: then the claim is decided on the others, and that verdict stands only "
            "when the verdict on all replicates without the gate is the same (else it stays not decided)")


def rules_markdown(p: dict) -> str:
    """The verdict rules in words, with the plan's numbers and its hash (markdown list)."""
    return "\n".join([*_rule_lines(p),
                      f"- Analysis plan hash: `{plan_hash(p)}` (rules version {p['rules_version']})."])


def _rule_lines(p: dict) -> list[str]:
    a, mg, tol = p["alpha"], p["equivalence_margin_pp"], p["tolerance_pp"]
    fam = ", ".join(f"{c}/{m}" for c, m in p["family"]) or "none"
    return [
        "- Statistic: mean over replicates (one training run on one split: a seed x split-seed pair) of "
        "arm A minus arm B of the claim's test metric, in percentage points (pp); each replicate's metric "
        "is a ratio of sums over its test images.",
        f"- Interval: {p['interval']}. A unit's value already carries its training run and its own test "
        "patients, so nothing is resampled a second time; sigma_sys^2 (the part of a patient's contribution "
        "every run shares) is estimated from the patients found in the test sets of two replicates, and "
        "N is the number of patients in the data set (docs/study.md). p-values are the same t's.",
        f"- At least {max(2, p['min_replicates'])} splits are needed for any verdict; with fewer, or with "
        "a missing arm, the verdict is **inconclusive** (the note says why).",
        f"- Fit gate (part of this plan): an arm is judged on the stage it selected (SWFT: the selected step); it "
        f"passes with {gate_text(p['fit_gate'])}; a THTL child of a step 1 that fails, fails. A claim "
        f"on an arm that fails is **not decided: under-trained**{_excluded_text(p['fit_gate'])}; every verdict is "
        "also shown without the gate.",
        f"- Directional claims (C1-C4): at level a, the (1 - a) interval beyond 0 on the paper's side by more "
        f"than {tol:g} pp: **reproduced**; beyond 0 on the other side by more than {tol:g} pp: "
        "**contradicted**; else **inconclusive**.",
        f"- Equivalence claim (C5), margin {mg:g} pp, TOST: at level a, the (1 - 2a) interval inside "
        f"(-{mg:g}, +{mg:g}) pp: **reproduced**; entirely outside the band: **contradicted**; wider than "
        f"{2 * mg:g} pp: **underpowered**; else **inconclusive**. A significant difference inside the band "
        "does not stop it being reproduced.",
        f"- Multiplicity: Holm step-down at family-wise a = {a:g} over the primary family ({fam}; "
        f"m = {len(p['family'])}, members without data keep their place with p = 1). Ordered by the "
        "decision p (directional: two-sided for 0; C5: the smaller of the TOST p and the outside-the-band "
        "p), the claim at rank i is judged at level a / (m - j + 1), j = min(i, k), k the rank of the "
        "first claim not decided: the intervals shown for primary claims are at these levels. Every other "
        f"(claim, model) pair is exploratory: judged at a = {a:g} unadjusted, and labelled so.",
        "- P(A > B): share of replicates in which arm A beat arm B (ties count one half); descriptive, "
        "not a decision.",
        *[f"- **Amended after results were seen**: {a}" for a in p.get("amendments") or []],
    ]
