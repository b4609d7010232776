"""The claims of docs/study.md, decided on the records with the replicate-level rules.

Each claim is a paired difference of one test metric between two cells (arm A minus arm B of
one model, paired on the replicates both have: the same seed on the same patient split), in
percentage points. The evidence is `inference.paired` (a t over the split units that counts
training, test-patient and shared-patient variance once each); the verdict is `rules.decide`'s
(Holm over the primary family, TOST for the equivalence claim, tolerance, "not decided:
under-trained" when a compared arm fails the plan's fit gate, analysis.fit, unless few enough
replicates fail for `rules.decide_gated` to decide on the others), and each row also carries the
verdict with the gate off. The plan (rules, margins, family, fit gate) is hashed.

Claims whose sides name the domain "*" are evaluated once per intermediate domain present in
the records (C1-C4 go through THTL); the paper's numbers belong to its own intermediate domain
(`stats.primary_domain`).

C6 is the mechanism as a 2 x 2 factorial (thtl_bench.domains.factorial): what step 1 sees (radial
vs tortuous vessel trees) x what it must learn (lesion-graded vs vessel-graded labels of the same
images). The paper's explanation (radial fundus vessels keep the network from learning the
tortuous malignant vessels) predicts an *interaction*: swapping radial for tortuous trees helps
THTL last-layer more when step 1 must learn the vessels than when it grades lesions and can
ignore them. C6 = (vessel-graded: tortuous - radial) - (lesion-graded: tortuous - radial), a
contrast of four cells on the same replicates (weights +1, -1, -1, +1), direction +, registered
before the run with the effect its power is stated at (`design_effect_pp`); C6r is the same on
malignant recall, C6v and C6l the two simple effects (exploratory). The one-step arm C1
subtracts is common to every cell, so C6 reads as C1's drop shrinking more when step 1 learned
tortuous vessels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from thtl_bench.analysis import fit, inference, rules
from thtl_bench.analysis import replicates as reps_mod
from thtl_bench.analysis.summary import canonical_order

ANY = "*"  # a side's domain: the intermediate domain the claim is evaluated for


@dataclass(frozen=True)
class Side:
    arm: str
    domain: str | None = None  # None: a target-only arm; ANY: the evaluated domain; else fixed


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    a: Side
    b: Side
    metric: str  # a ratio metric of inference.metric_parts
    kind: str  # "directional" | "equivalence"
    direction: int = 0
    paper: dict = field(default_factory=dict)  # model -> the abstract's number (pp)
    paper_says: dict = field(default_factory=dict)  # model -> statement for claims without a number
    c: Side | None = None  # an interaction: (a - b) - (c - d)
    d: Side | None = None
    design_effect_pp: float | None = None  # registered effect its power is stated at (no paper number)

    @property
    def sides(self) -> tuple[Side, ...]:
        return (self.a, self.b) if self.c is None else (self.a, self.b, self.c, self.d)

    @property
    def weights(self) -> tuple[float, ...] | None:
        """The contrast over `sides`: None for A - B, (1, -1, -1, 1) for an interaction."""
        return None if self.c is None else (1.0, -1.0, -1.0, 1.0)

    @property
    def per_domain(self) -> bool:
        return any(x.domain == ANY for x in self.sides)


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "THTL last-layer accuracy minus one-step last-layer accuracy",
          Side("thtl_last", ANY), Side("onestep_last"), "accuracy", "directional", -1,
          paper={"resnet18": -14.7, "resnet50": -14.8}),
    Claim("C2", "SWFT accuracy minus THTL last-layer accuracy",
          Side("swft", ANY), Side("thtl_last", ANY), "accuracy", "directional", +1,
          paper={"resnet18": 26.1, "resnet50": 20.4}),
    Claim("C3", "SWFT malignant recall minus THTL last-layer malignant recall",
          Side("swft", ANY), Side("thtl_last", ANY), "recall", "directional", +1,
          paper={"resnet18": 79.8, "resnet50": 62.2}),
    Claim("C4", "SWFT accuracy is higher than THTL all-layers accuracy",
          Side("swft", ANY), Side("thtl_all", ANY), "accuracy", "directional", +1,
          paper_says={"resnet18": "yes", "resnet50": "yes"}),
    Claim("C5", "one-step (ImageNet, all layers) vs scratch: a small, non-significant accuracy difference",
          Side("onestep_all"), Side("scratch"), "accuracy", "equivalence",
          paper_says={"resnet18": "yes", "resnet50": "yes"}),
    Claim("C6", "mechanism (interaction): THTL last-layer accuracy gain of tortuous over radial step-1 trees when "
                "step 1 learns vessel signs, minus the same gain when it learns lesions",
          Side("thtl_last", "fundus_vessel_tortuous"), Side("thtl_last", "fundus_vessel"), "accuracy", "directional",
          +1, paper_says={"resnet18": "implied", "resnet50": "implied"},
          c=Side("thtl_last", "fundus_lesion_tortuous"), d=Side("thtl_last", "fundus_lesion"),
          design_effect_pp=10.0),
    Claim("C6r", "mechanism (interaction) on malignant recall", Side("thtl_last", "fundus_vessel_tortuous"),
          Side("thtl_last", "fundus_vessel"), "recall", "directional", +1,
          paper_says={"resnet18": "implied", "resnet50": "implied"},
          c=Side("thtl_last", "fundus_lesion_tortuous"), d=Side("thtl_last", "fundus_lesion")),
    Claim("C6v", "simple effect: THTL last-layer accuracy via tortuous minus via radial trees, step 1 learning vessel signs",
          Side("thtl_last", "fundus_vessel_tortuous"), Side("thtl_last", "fundus_vessel"), "accuracy", "directional",
          +1, paper_says={"resnet18": "implied", "resnet50": "implied"}),
    Claim("C6l", "simple effect: THTL last-layer accuracy via tortuous minus via radial trees, step 1 learning lesions",
          Side("thtl_last", "fundus_lesion_tortuous"), Side("thtl_last", "fundus_lesion"), "accuracy", "directional",
          +1, paper_says={"resnet18": "implied", "resnet50": "implied"}),
)
BY_ID = {c.id: c for c in CLAIMS}


def base_model(name: str) -> str:
    """Registry prefixes (tv:/timm:) do not change which paper number applies."""
    return name.split(":", 1)[-1]


def family(params: dict) -> list[tuple[str, str]]:
    """The primary family: every (claim, model) of stats.primary_claims x stats.primary_models."""
    return [(c, m) for c in params["primary_claims"] for m in params["primary_models"]]


def plan(params: dict) -> dict:
    """The analysis plan (rules.plan) with the claims' definitions, from the `stats:` section."""
    return rules.plan(alpha=1.0 - float(params["confidence"]), margin_pp=float(params["equivalence_margin_pp"]),
                      tolerance_pp=float(params["tolerance_pp"]), family=family(params),
                      min_replicates=int(params["min_replicates"]), fit_gate=fit.Gate.of(params).as_dict(),
                      claims=[{"id": c.id, "sides": [asdict(x) for x in c.sides], "weights": c.weights,
                               "metric": c.metric, "kind": c.kind, "direction": c.direction,
                               "design_effect_pp": c.design_effect_pp} for c in CLAIMS]
                      + [{"primary_domain": params["primary_domain"]}],
                      amendments=params.get("amendments") or ())


def _cell(index: dict, model: str, side: Side, domain: str | None) -> dict:
    d = domain if side.domain == ANY else side.domain
    return index.get((model, side.arm, d, 1.0, 1.0), {})


def _hid(claim: Claim, domain: str | None, primary_domain: str) -> str:
    return claim.id if not claim.per_domain or domain == primary_domain else f"{claim.id}@{domain}"


def evaluate(records: Sequence[dict], cfg: dict, order: dict | None = None) -> list[dict]:
    """Every claim for every model with ok records (per intermediate domain where the claim has
    one), claims first, then models, then domains; decided together (one Holm family)."""
    params = cfg["stats"]
    gate = fit.Gate.of(params)
    index = reps_mod.index(records, gate)
    models = canonical_order("models", [k[0] for k in index], order)
    doms = [d for d in dict.fromkeys(k[2] for k in index if k[2] is not None)]
    primary_domain = str(params["primary_domain"])
    doms = sorted(doms, key=lambda d: (d != primary_domain, d))
    hyps, extra, passing, n_passing = [], [], [], []
    for claim in CLAIMS:
        for model in models:
            for d in (doms if claim.per_domain else [None]):
                fixed = {x.domain for x in claim.sides if x.domain not in (None, ANY)}
                if fixed - {k[2] for k in index if k[0] == model}:
                    continue  # a claim about domains this model's records do not go through
                cells = [_cell(index, model, x, d) for x in claim.sides]
                hid = _hid(claim, d, primary_domain)
                info = _describe(claim, model, d, cells)
                ev, note = None, ""
                try:
                    pairs = reps_mod.contrast_replicates(cells, claim.metric, claim.weights) if all(cells) else []
                    if pairs:
                        ev = inference.paired(pairs)
                except ValueError as exc:  # arms of a replicate on other test samples; every replicate undefined
                    pairs, note = None, str(exc)
                if pairs == []:
                    missing = [f"{x.arm}" + (f"[{d if x.domain == ANY else x.domain}]" if x.domain else "")
                               for x, cell in zip(claim.sides, cells, strict=True) if not cell]
                    note = f"no ok records for {', '.join(missing)}" if missing else "no replicate has every arm"
                kept = reps_mod.shared_all(cells)  # only the replicates the estimate pairs can block it
                under = tuple(sorted({u for cell in kept for u in reps_mod.undertrained_arms(cell)}))
                hyps.append(rules.Hypothesis(hid, model, claim.kind, claim.direction, ev, note, under))
                extra.append({**info, **_swft_head_only(claim, kept)})
                p_ev, p_n = _passing(kept, claim) if under else (ev, None)
                p_note = note if p_ev is ev else "" if p_ev is not None else "no split unit where every arm passes"
                passing.append(rules.Hypothesis(hid, model, claim.kind, claim.direction, p_ev, p_note, ()))
                n_passing.append(p_n)
    kw = dict(family=family(params), alpha=1.0 - float(params["confidence"]),
              margin=float(params["equivalence_margin_pp"]), tol=float(params["tolerance_pp"]),
              min_replicates=int(params["min_replicates"]))
    rows, ungated = rules.decide_gated(hyps, passing, max_excluded_share=gate.max_excluded_share, **kw)
    kept_only = rules.decide(passing, **kw)
    out = []
    for i, (row, free, ok) in enumerate(zip(rows, ungated, kept_only, strict=True)):
        row = {**row, "verdict_ungated": free["verdict"], "interval_ungated_pp": free["interval_pp"],
               "level_ungated": free["level"]}
        if i < len(n_passing) and n_passing[i] is not None:
            # a sensitivity reading, not the plan's verdict: the split units where every arm passes
            row.update(verdict_passing=ok["verdict"], interval_passing_pp=ok["interval_pp"],
                       estimate_passing_pp=ok["estimate_pp"], n_passing=n_passing[i])
        if i < len(extra):
            info = extra[i]
        else:  # a member of the primary family with no records at all
            claim = BY_ID[row["id"].split("@")[0]]
            info = _describe(claim, row["model"], primary_domain if claim.per_domain else None,
                             [{} for _ in claim.sides])
        out.append(_finish({**info, **row}, params))
    return out


def _passing(kept: list[dict], claim: Claim) -> tuple[inference.Evidence | None, int]:
    """The claim's evidence on the split units where every compared arm (and each THTL arm's step
    1) passes the fit gate, and how many units that is: what the verdict would rest on if the
    failing units were dropped (shown beside the plan's gated verdict, never instead of it)."""
    ok = [k for k in (kept[0] if kept else {}) if all((c[k].get("gate") or {}).get("ok", True) for c in kept)]
    if not ok:
        return None, 0
    try:
        pairs = reps_mod.contrast_replicates([{k: c[k] for k in ok} for c in kept], claim.metric, claim.weights)
    except ValueError:
        return None, len(ok)
    return (inference.paired(pairs) if pairs else None), len(ok)


def _swft_head_only(claim: Claim, cells: list[dict]) -> dict:
    """For a claim with a SWFT side: how many of its paired replicates selected SWFT's head-only
    step (there SWFT is THTL last-layer retrained, so a SWFT - THTL last-layer difference is 0 by
    construction)."""
    for side, cell in zip(claim.sides, cells, strict=True):
        if side.arm == "swft":
            flags = [bool((r.get("gate") or {}).get("head_only")) for r in cell.values()]
            return {"swft_head_only": sum(flags), "swft_replicates": len(flags)}
    return {}


def _describe(claim: Claim, model: str, domain: str | None, cells: list[dict]) -> dict:
    def mean(cell: dict) -> float | None:
        v = [x for x in reps_mod.values(cell, claim.metric) if x is not None]
        return float(np.mean(v)) if v else None

    out = {"claim": claim.id, "text": claim.text, "domain": domain, "metric": claim.metric,
           "paper_value_pp": claim.paper.get(base_model(model)), "paper_says": claim.paper_says.get(base_model(model)),
           "design_effect_pp": claim.design_effect_pp, "weights": claim.weights}
    for letter, side, cell in zip("abcd", claim.sides, cells, strict=False):
        out.update({f"arm_{letter}": side.arm, f"domain_{letter}": domain if side.domain == ANY else side.domain,
                    f"mean_{letter}": mean(cell), f"n_{letter}": len(cell)})
    return out


def _finish(row: dict, params: dict) -> dict:
    """Convenience fields for tables and figures: the unadjusted 95 % interval, P(A > B), the
    relative change, and whether the paper's number lies in the deciding interval."""
    un = row.get("unadjusted") or {}
    claim = BY_ID[row["claim"]]
    row["kind"], row["direction"] = row.get("kind") or claim.kind, row.get("direction") or claim.direction
    row["ci_pp"] = un.get("ci_pp")
    row["adj_ci_pp"] = row.get("interval_pp")
    row["p_improve"] = un.get("p_improve")
    row["p_improve_ci"] = un.get("p_improve_ci")
    row["n_pairs"] = (un.get("n_replicates") or [0])[0] if un else 0
    row["diff_pp"] = row.get("estimate_pp")
    ma, mb = row.get("mean_a"), row.get("mean_b")
    row["rel_pct"] = 100.0 * (ma - mb) / mb if ma is not None and mb else None
    pv, iv = row.get("paper_value_pp"), row.get("adj_ci_pp")
    row["paper_in_ci"] = None if pv is None or iv is None else bool(iv[0] <= pv <= iv[1])
    row["margin_pp"] = float(params["equivalence_margin_pp"]) if row.get("kind") == "equivalence" else None
    return row


# ----------------------------------------------------------------------------- table

def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def in_grid(r: dict, arms: Sequence[str]) -> bool:
    """Whether a claim row belongs to a grid of `arms`: both its arms trained there, or it is a
    primary-family member (those keep their row, and their place in Holm's m, whatever ran)."""
    return r.get("family") == "primary" or {r.get(f"arm_{x}") for x in "abcd" if r.get(f"arm_{x}")} <= set(arms)


def contrast(r: dict) -> str:
    """"A - B (metric)" of a claim row, "(A - B) - (C - D) (metric)" for an interaction; an arm's
    domain in brackets where it is not the row's own (C6v: thtl_last[fundus_vessel_tortuous] -
    thtl_last[fundus_vessel])."""
    def arm(side: str) -> str:
        d = r.get(f"domain_{side}")
        return r.get(f"arm_{side}", "?") + (f"[{d}]" if d and d != r.get("domain") else "")

    if r.get("arm_c"):
        return f"({arm('a')} - {arm('b')}) - ({arm('c')} - {arm('d')}) ({r.get('metric', '?')})"
    return f"{arm('a')} - {arm('b')} ({r.get('metric', '?')})"


def table_rows(results: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["claim", "model", "domain", "A - B (metric)", "replicates", "diff pp", "95 % CI pp",
               "deciding CI pp (level)", "P(A>B)", "paper", "verdict", "family", "note"]
    rows = []
    for r in results:
        paper = _pp(r["paper_value_pp"]) if r.get("paper_value_pp") is not None else (r.get("paper_says") or "-")
        level = r.get("level")
        rows.append([
            r.get("claim", r["id"]), r["model"], r.get("domain") or "-", contrast(r),
            str(r.get("n_pairs", 0)), _pp(r.get("diff_pp")), _ci(r.get("ci_pp")),
            _ci(r.get("adj_ci_pp")) + ("" if level is None else f" ({level:.3g})"),
            "n/a" if r.get("p_improve") is None else f"{r['p_improve']:.2f}", paper, r["verdict"],
            r.get("family", ""), r.get("note") or "",
        ])
    return headers, rows


def table(results: Sequence[dict]) -> str:
    """The claims table as GitHub markdown (REPORT.md and the golden test use this text)."""
    from tabulate import tabulate

    headers, rows = table_rows(results)
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def rule_text(params: dict) -> str:
    """The decision rules in words with the plan's numbers and hash (markdown list)."""
    return rules.rules_markdown(plan(params))
