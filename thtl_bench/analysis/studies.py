"""The study-level analyses beside the claims, from records (and running-side artefacts) only:

- `sizes`: the THTL gain (thtl_last minus onestep_last, test accuracy, pp) against the target
  and the intermediate training shares, per model and intermediate domain, each point with the
  same replicate-level paired interval as the claims;
- `transfer`: transferability scores of each step-1 network (an artefact the running side
  writes) beside the measured THTL gain, with Kendall's tau across (domain, model) pairs and its
  exact permutation p.
The rule's calibration and power at the run's design are thtl_bench.analysis.calibration's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thtl_bench import transferability
from thtl_bench.analysis import fit, inference, rankcorr, replicates
from thtl_bench.analysis import summary as summary_mod

GAIN = ("thtl_last", "onestep_last", "accuracy")  # the THTL gain the size axes and scores are about


def _gain(index: dict, model: str, domain: str, tf: float, inf: float, params: dict) -> dict | None:
    a = index.get((model, GAIN[0], domain, tf, inf), {})
    b = index.get((model, GAIN[1], None, tf, 1.0), {})
    try:
        pairs = replicates.paired_replicates(a, b, GAIN[2]) if a and b else []
        if not pairs:
            return None
        ev = inference.paired(pairs)
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
    index = replicates.index(records, fit.Gate.of(params))
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


def transfer(records: Sequence[dict], scores: dict | None, params: dict) -> dict | None:
    """Each step-1 network's transferability scores (artefact `scores`: entries {model, domain,
    replicate, scores: {name: value}, distances: {name: value}}) beside the measured THTL gain of
    its (model, domain), and Kendall's tau between each score and the gain over the (model,
    domain) pairs (compared within a model when there are several), with its permutation p and,
    over enough domains, a bootstrap interval."""
    if not scores or not scores.get("entries"):
        return None
    index = replicates.index(records, fit.Gate.of(params))
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
        pts = [(r[n], r["gain"], r["domain"], r["model"]) for r in rows
               if r.get(n) is not None and r.get("gain") is not None]
        if not pts:
            continue
        sign = 1.0 if n in transferability.SCORES else -1.0  # distances: lower = closer = expected gain
        # several models: pairs compared within a model only (each model's scores, distances and
        # baseline are on its own scale; across models tau would rank the models: analysis.rankcorr)
        strata = [m for *_, m in pts] if len({m for *_, m in pts}) > 1 else None
        taus[n] = rankcorr.kendall_tau([sign * p[0] for p in pts], [p[1] for p in pts],
                                       n_boot=int(params["bootstrap"]), seed=int(params["bootstrap_seed"]),
                                       confidence=float(params["confidence"]), groups=[p[2] for p in pts],
                                       strata=strata)
    return {"rows": rows, "kendall": taus, "note": scores.get("note")}
