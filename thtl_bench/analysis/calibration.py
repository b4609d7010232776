"""The claim rule's calibration and power at a run's own design, from its own records.

For each primary claim (the `stats.primary_claims` x `stats.primary_models` family, in the
primary intermediate domain) the records give the claim's variance components
(thtl_bench.analysis.components); the simulation model fitted to them (`estimated`) and the same
with every standard deviation scaled by `stats.calibration.pessimistic_scale` (`pessimistic`)
drive simulated studies at

- the run's own design (its data set, test splits and number of split units) and at 3 and 20
  units (`stats.calibration.replicates`), under the null: the rate of false decisions at the
  nominal level (two-sided 5 %) and the coverage of the 95 % interval, each with its
  Clopper-Pearson interval, beside what a plain replicate t without the shared-patient term
  would do;
- the run's own design with the paper's effect (the abstract's ResNet18 figure where the model has
  none of its own; capped where the measured base rate leaves no room for it, and said so),
  judged at the strictest level Holm can give a member of the family (alpha / m): the power, and
  the coverage of the true effect.

Results are written to report/calibration.json by `thtl-bench calibrate` (and the benchmark
session) and reused while the records, the plan and this code are unchanged (`key`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from thtl_bench.analysis import claims as claims_mod
from thtl_bench.analysis import components, fit, rules
from thtl_bench.analysis import replicates as reps_mod
from thtl_bench.analysis import simulate as sim
from thtl_bench.config import digest

SCHEMA = "thtl-bench/calibration/v1"
CODE = ("inference.py", "simulate.py", "components.py", "calibration.py", "rules.py", "fit.py")


def code_fingerprint() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in CODE:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()[:16]


def settings(stats: dict) -> dict:
    c = stats.get("calibration") or {}
    return {"n_sim": int(c.get("n_sim", 2000)), "replicates": [int(x) for x in c.get("replicates", [3, 20])],
            "pessimistic_scale": float(c.get("pessimistic_scale", 1.5)), "seed": int(c.get("seed", 0)),
            "min_power": float(c.get("min_power", 0.8)), "level": 1.0 - float(stats["confidence"])}


def _rates(cell: dict) -> tuple[float, float]:
    """(specificity, malignant recall) of a cell: means over its replicates."""
    t = [r["metrics"]["test"] for r in cell.values()]
    return float(np.mean([x["specificity"] for x in t])), float(np.mean([x["recall"] for x in t]))


def design_of(reps: Sequence, records: Sequence[dict]) -> sim.Design:
    """The design the claim's replicates show: the data set's patients per class (the pool), test
    patients per class, images per patient, split units and seeds per unit."""
    rec = records[0]
    s = reps_mod.samples(rec)
    groups, labels = np.asarray(s["patients"]), np.asarray(s["labels"]) == s["positive"]
    pats, first, counts = np.unique(groups, return_index=True, return_counts=True)
    pos = int(labels[first].sum())
    test = (len(pats) - pos, pos)
    pool = reps[0].pool
    pool_pos = int(round(pool * pos / len(pats)))
    every = [np.unique(np.asarray(reps_mod.samples(r)["patients"]), return_counts=True)[1] for r in records]
    lo, hi = int(min(c.min() for c in every)), int(max(c.max() for c in every))
    units = len({r.split for r in reps})
    seeds = max(1, round(len(reps) / units))
    med = float(np.median(np.concatenate(every)))
    return sim.Design(pool=(pool - pool_pos, pool_pos), test=test, images=(lo, hi), splits=units, seeds=seeds,
                      images_median=None if hi - lo <= 3 else med)


def paper_effect(claim: claims_mod.Claim, model: str) -> tuple[float | None, str]:
    """The abstract's figure for the model, else its ResNet18 figure (labelled), else the effect
    registered with the claim (`design_effect_pp`), else None."""
    base = claims_mod.base_model(model)
    if base in claim.paper:
        return float(claim.paper[base]), f"the paper's {base} figure"
    if "resnet18" in claim.paper:
        return float(claim.paper["resnet18"]), "the paper's ResNet18 figure"
    if claim.design_effect_pp is not None:
        return float(claim.design_effect_pp), "the effect registered with the claim (no published figure)"
    return None, "no published effect size"


def inputs(records: Sequence[dict], cfg: dict) -> list[dict]:
    """Per primary claim with paired records: its replicates, rates, design and paper effect."""
    st = cfg["stats"]
    index = reps_mod.index(records, fit.Gate.of(st))
    dom = str(st["primary_domain"])
    out = []
    for cid, model in claims_mod.family(st):
        claim = claims_mod.BY_ID.get(cid)
        if claim is None or claim.kind != "directional":
            continue

        def cell(side, claim=claim, model=model):
            d = dom if side.domain == claims_mod.ANY else side.domain
            return index.get((model, side.arm, d, 1.0, 1.0), {})

        cells = [cell(x) for x in claim.sides]
        try:
            reps = reps_mod.contrast_replicates(cells, claim.metric, claim.weights) if all(cells) else []
        except ValueError:
            reps = []
        if len({r.split for r in reps}) < 2 or reps[0].pool is None:
            continue
        effect, source = paper_effect(claim, model)
        kept = reps_mod.shared_all(cells)
        base_b = float(np.mean([r["metrics"]["test"][claim.metric] for r in kept[-1].values()]))
        out.append({"id": cid, "model": model, "domain": dom, "metric": claim.metric, "direction": claim.direction,
                    "weights": claim.weights or (1.0, -1.0), "replicates": reps,
                    "rates": [_rates(c) for c in kept], "base_b": base_b,
                    "design": design_of(reps, [kept[0][k] for k in sorted(kept[0])]),
                    "paper_effect_pp": effect, "effect_source": source})
    return out


def _cell(task: tuple) -> dict:
    design, comp, metric, effect, direction, level, n_sim, seed, weights = task
    return sim.rates(design, comp, metric=metric, effect_pp=effect, direction=direction, level=level,
                     n_sim=n_sim, seed=seed, weights=weights)


def _scaled(c: sim.Components, k: float) -> sim.Components:
    return sim.Components(c.patient * k, c.patient_arm * k, c.image_arm * k, c.train * k, c.run_patient * k,
                          c.identical, c.base, "pessimistic")


def key(items: list[dict], st: dict) -> str:
    """What the artefact depends on: the claims' replicates (values and patient contributions),
    rates, designs, the plan's settings and this code."""
    payload = {"code": code_fingerprint(), "settings": settings(st), "family": claims_mod.family(st),
               "gate": fit.Gate.of(st).as_dict(),
               "claims": [{"id": i["id"], "model": i["model"], "metric": i["metric"],
                           "values": [round(r.value(), 9) for r in i["replicates"]],
                           "contrib": [round(float(x), 6) for r in i["replicates"] for x in r.contributions()],
                           "rates": i["rates"], "design": i["design"].as_dict()} for i in items]}
    return digest(payload, 16)


def run(records: Sequence[dict], cfg: dict, *, workers: int | None = None, previous: dict | None = None) -> dict:
    """The calibration artefact (module docstring); `previous` is reused when its key matches."""
    st = cfg["stats"]
    s = settings(st)
    items = inputs(records, cfg)
    k = key(items, st)
    if previous and previous.get("schema") == SCHEMA and previous.get("key") == k:
        return previous
    m = max(1, len(claims_mod.family(st)))
    out_claims, tasks, where = [], [], []
    for n, it in enumerate(items):
        mom = components.moments(it["replicates"], it["rates"])
        est, match = components.fit(mom, it["design"], it["metric"], seed=s["seed"] + n)
        pess = _scaled(est, s["pessimistic_scale"])
        entry = {k2: it[k2] for k2 in ("id", "model", "domain", "metric", "direction", "weights", "paper_effect_pp",
                                       "effect_source", "rates")}
        entry.update(design=it["design"].as_dict(), moments=mom.as_dict(), fit=match,
                     components={"estimated": est.as_dict(), "pessimistic": pess.as_dict()},
                     calibration=[], power=[])
        # the power world: arm B at its measured rates, arm A shifted by the paper's effect; SWFT
        # unfreezes in it (no replicate repeats THTL last-layer: that is the null's picture)
        effect, note = it["paper_effect_pp"], ""
        if effect is not None:
            base = 100 * it["base_b"]
            room = (99.0 - base) if effect > 0 else (1.0 - base)
            if abs(effect) > abs(room):
                note = f"capped at {room:+.1f} pp: arm B's measured {it['metric']} ({base:.1f} %) leaves no room for the paper's {effect:+.1f}"
                effect = room
        entry["power_effect_pp"], entry["power_note"] = effect, note
        for label, comp in (("estimated", est), ("pessimistic", pess)):
            for units in dict.fromkeys([it["design"].splits] + s["replicates"]):  # the run's own design once
                d = it["design"].with_splits(units)
                tasks.append((d, comp, it["metric"], 0.0, it["direction"], s["level"], s["n_sim"],
                              s["seed"] + 1000 * n + units, it["weights"]))
                where.append((len(out_claims), "calibration", label, units))
            if effect is not None:
                alt = sim.Components(comp.patient, comp.patient_arm, comp.image_arm, comp.train, comp.run_patient,
                                     0.0, it["rates"][-1], label)
                tasks.append((it["design"], alt, it["metric"], effect, it["direction"], s["level"] / m, s["n_sim"],
                              s["seed"] + 1000 * n + 999, it["weights"]))
                where.append((len(out_claims), "power", label, it["design"].splits))
        out_claims.append(entry)
    workers = workers or min(2, os.cpu_count() or 1)
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_cell, tasks))
    else:
        results = [_cell(t) for t in tasks]
    for (i, kind, label, units), r in zip(where, results, strict=True):
        r = {k2: v for k2, v in r.items() if k2 not in ("design", "components")}
        out_claims[i][kind].append({"setting": label, "units": units, **r})
    return {"schema": SCHEMA, "key": k, "settings": s, "family_size": m, "code": code_fingerprint(),
            "claims": out_claims, "rule": rules.INTERVAL}


def verdict(cal: dict | None) -> dict:
    """Whether the calibration met its targets, at every design (the run's own, 3 and 20 units)
    and setting (estimated, pessimistic) under the null: false decisions in [2.5, 7.5] % and
    coverage of the 95 % interval in [92, 98] %; and power >= min_power at the paper's effect
    (estimated setting, each primary claim). The coverage of the true effect in the power runs is
    reported beside it (`coverage_at_effect`), not judged: near a metric's ceiling (a recall effect
    capped at 99 %) a t-interval on a proportion is expected to cover less."""
    if not cal or not cal.get("claims"):
        return {"calibrated": None, "powered": None}
    fd = [c["decisions"]["rate"] for x in cal["claims"] for c in x["calibration"]]
    cov = [c["coverage"]["rate"] for x in cal["claims"] for c in x["calibration"]]
    alt = [c["coverage"]["rate"] for x in cal["claims"] for c in x["power"]]
    pw = [p["reproduced"]["rate"] for x in cal["claims"] for p in x["power"] if p["setting"] == "estimated"]
    return {"calibrated": all(0.025 <= f <= 0.075 for f in fd) and all(0.92 <= c <= 0.98 for c in cov),
            "powered": (all(p >= cal["settings"]["min_power"] for p in pw) and len(pw) == len(cal["claims"]))
            if pw else None,
            "false_decisions": [min(fd), max(fd)] if fd else None, "coverage": [min(cov), max(cov)] if cov else None,
            "coverage_at_effect": [min(alt), max(alt)] if alt else None,
            "power": [min(pw), max(pw)] if pw else None}


def text(cal: dict) -> str:
    """A few lines per claim: components, false decisions and coverage per design, power."""
    lines = []
    for c in cal.get("claims") or []:
        lines.append(f"{c['id']} {c['model']} ({c['metric']}): {c['moments']['units']} split units; "
                     f"effect for power {c['power_effect_pp']} pp ({c['effect_source']}{'; ' + c['power_note'] if c['power_note'] else ''})")
        for r in c["calibration"]:
            lines.append(f"  null  {r['setting']:<11} U={r['units']:<3} false decisions {100 * r['decisions']['rate']:5.1f} % "
                         f"coverage {100 * r['coverage']['rate']:5.1f} %  (plain t: {100 * r['plain_t_decisions']['rate']:.1f} %)")
        for r in c["power"]:
            lines.append(f"  power {r['setting']:<11} U={r['units']:<3} {100 * r['reproduced']['rate']:5.1f} % at level "
                         f"{r['level']:.4g}; coverage {100 * r['coverage']['rate']:.1f} %")
    v = verdict(cal)
    lines.append(f"calibrated: {v['calibrated']}; powered: {v['powered']}")
    return "\n".join(lines)
