"""The study-level analyses beside the claims, from records (and running-side artefacts) only:

- `sizes`: the THTL gain (thtl_last minus onestep_last, test accuracy, pp) against the target
  and the intermediate training shares, per model and intermediate domain, each point with the
  same replicate-level paired interval as the claims;
- `power`: the measured power of the claim rule for a C1-sized effect at this run's own design
  (replicates, test patients, images per patient read from the records), by simulation;
- `transfer`: transferability scores of each step-1 network (an artefact the running side
  writes) beside the measured THTL gain, with Kendall's tau across (domain, model) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thtl_bench import transferability
from thtl_bench.analysis import claims as claims_mod
from thtl_bench.analysis import inference, replicates, simulate
from thtl_bench.analysis import summary as summary_mod

GAIN = ("thtl_last", "onestep_last", "accuracy")  # the THTL gain the size axes and scores are about


def _gain(index: dict, model: str, domain: str, tf: float, inf: float, params: dict) -> dict | None:
    a = index.get((model, GAIN[0], domain, tf, inf), {})
    b = index.get((model, GAIN[1], None, tf, 1.0), {})
    try:
        pairs = replicates.paired_replicates(a, b, GAIN[2]) if a and b else []
        if not pairs:
            return None
        ev = inference.paired(pairs, n_boot=int(params["bootstrap"]), seed=int(params["bootstrap_seed"]))
    except ValueError:  # arms of a replicate on different test samples, or every replicate undefined
        return None
    iv = ev.interval(float(params["confidence"])) if ev.decidable else None
    sa, sb = replicates.shared(a, b)  # the paired replicates the gain is estimated on, of either arm
    under = len(replicates.undertrained(sa)) + len(replicates.undertrained(sb))
    return {"gain": ev.estimate, "lo": None if iv is None else iv[0], "hi": None if iv is None else iv[1],
            "n": ev.n[0], "p_improve": ev.improve, "undertrained": under}


def sizes(records: Sequence[dict], params: dict) -> list[dict]:
    """THTL gain per (model, domain, axis, fraction); axis "target" at the full intermediate
    share, axis "intermediate" at the full target share (the grid varies one axis at a time)."""
    index = replicates.index(records)
    out = []
    keys = sorted({(k[0], k[2]) for k in index if k[1] == GAIN[0]})
    for model, domain in keys:
        tfs = sorted({k[3] for k in index if k[:3] == (model, GAIN[0], domain) and k[4] == 1.0})
        ifs = sorted({k[4] for k in index if k[:3] == (model, GAIN[0], domain) and k[3] == 1.0})
        for axis, fracs in (("target", tfs), ("intermediate", ifs)):
            if len(fracs) < 2:
                continue  # one share: no curve
            for f in fracs:
                g = _gain(index, model, domain, f if axis == "target" else 1.0, f if axis == "intermediate" else 1.0,
                          params)
                if g:
                    out.append({"model": model, "domain": domain, "axis": axis, "fraction": f, **g})
    return out


def design_of(records: Sequence[dict]) -> simulate.Design | None:
    """The default design of the target cells: replicates (seeds x splits), test patients and
    images per patient, malignant share, as the records show them."""
    target = [r for r in records if r["status"] == "ok" and r["case"].get("domain") is None
              and (r.get("predictions") or {}).get("test", {}).get("groups")]
    if not target:
        return None
    # Design crosses seeds x splits: the seeds it needs are those trained on each split (the
    # diagonal replicates 0/0, 1/1, 2/2 are 1 seed on each of 3 splits, not 3 x 3 = 9 runs)
    by_split: dict[int, set] = {}
    for r in target:
        by_split.setdefault(r["case"]["split"], set()).add(r["case"]["seed"])
    seeds_per_split = min(len(v) for v in by_split.values())
    per, pos = [], []
    for r in target:
        t = r["predictions"]["test"]
        groups, labels = np.asarray(t["groups"]), np.asarray(t["labels"])
        _, counts = np.unique(groups, return_counts=True)
        per.append((len(counts), int(counts.min()), int(counts.max())))
        s = replicates.samples(r)
        pos.append(np.mean([labels[groups == g][0] == s["positive"] for g in np.unique(groups)]))
    patients = int(np.median([p[0] for p in per]))
    return simulate.Design(seeds=seeds_per_split, splits=len(by_split), patients=patients,
                           images=(min(p[1] for p in per), max(p[2] for p in per)),
                           positive_fraction=float(np.mean(pos)))


def power(records: Sequence[dict], params: dict) -> dict | None:
    """The rule's power for the paper's C1 effect at this run's design (stats.power settings),
    judged at the lowest level Holm can give a member of the primary family (alpha / m)."""
    design = design_of(records)
    p = params.get("power") or {}
    if design is None or not p:
        return None
    alpha = 1.0 - float(params["confidence"])
    m = max(1, len(claims_mod.family(params)))
    out = simulate.power(float(p["effect_pp"]), design, base_accuracy=float(p["base_accuracy"]), kind="directional",
                         direction=-1 if float(p["effect_pp"]) < 0 else 1, alpha=alpha, family_size=m,
                         tol=float(params["tolerance_pp"]), n_sim=int(p["n_sim"]), n_boot=int(p["n_boot"]),
                         seed=int(p["seed"]))
    null = simulate.power(0.0, design, base_accuracy=float(p["base_accuracy"]), kind="directional", direction=-1,
                          alpha=alpha, family_size=m, tol=float(params["tolerance_pp"]), n_sim=int(p["n_sim"]),
                          n_boot=int(p["n_boot"]), seed=int(p["seed"]) + 1)
    return {"effect_pp": out["effect_pp"], "level": out["level"], "family_size": m, "design": out["design"],
            "power": out["rates"]["reproduced"], "false_decisions": null["decisive"], "n_sim": out["n_sim"],
            "n_boot": out["n_boot"], "components": out["components"], "base_accuracy": out["base_accuracy"]}


def transfer(records: Sequence[dict], scores: dict | None, params: dict) -> dict | None:
    """Each step-1 network's transferability scores (artefact `scores`: entries {model, domain,
    replicate, scores: {name: value}, distances: {name: value}}) beside the measured THTL gain of
    its (model, domain), and Kendall's tau between each score and the gain across (model,
    domain) pairs, with a bootstrap interval over domains."""
    if not scores or not scores.get("entries"):
        return None
    index = replicates.index(records)
    rows = []
    pairs = {(e["model"], e["domain"]) for e in scores["entries"]}
    models = summary_mod.canonical_order("models", sorted(m for m, _ in pairs))
    doms = summary_mod.canonical_order("domains", sorted(d for _, d in pairs))
    for key in sorted(pairs, key=lambda k: (models.index(k[0]), doms.index(k[1]))):  # the tables' order
        es = [e for e in scores["entries"] if (e["model"], e["domain"]) == key]
        g = _gain(index, key[0], key[1], 1.0, 1.0, params)
        names = sorted({n for e in es for n in (e.get("scores") or {})} | {n for e in es for n in (e.get("distances") or {})})
        vals = {n: float(np.mean([(e.get("scores") or {}).get(n, (e.get("distances") or {}).get(n)) for e in es
                                  if (e.get("scores") or {}).get(n, (e.get("distances") or {}).get(n)) is not None]))
                for n in names}
        rows.append({"model": key[0], "domain": key[1], "n_replicates": len(es), **vals,
                     "gain": None if g is None else g["gain"], "gain_lo": None if g is None else g["lo"],
                     "gain_hi": None if g is None else g["hi"]})
    taus = {}
    score_names = [n for n in transferability.SCORES] + [n for n in transferability.DISTANCES]
    for n in score_names:
        pts = [(r[n], r["gain"], r["domain"]) for r in rows if r.get(n) is not None and r.get("gain") is not None]
        if not pts:
            continue
        sign = 1.0 if n in transferability.SCORES else -1.0  # distances: lower = closer = expected gain
        taus[n] = transferability.kendall_tau([sign * x for x, _, _ in pts], [g for _, g, _ in pts],
                                              n_boot=int(params["bootstrap"]), seed=int(params["bootstrap_seed"]),
                                              confidence=float(params["confidence"]), groups=[d for _, _, d in pts])
    return {"rows": rows, "kendall": taus, "note": scores.get("note")}
