"""Simulated studies for calibrating the verdict rules: false-positive rate, power, stability.

Per-sample correctness of two arms A and B from a hierarchical logistic model. For split k,
patient j (test set of split k), seed s, arm X and each image of j:

    logit P(correct) = mu_X + u_j + v_jX + t_skX + w_skjX,   correct ~ Bernoulli

    u_j   ~ N(0, patient^2)      patient difficulty, shared by both arms and all seeds
    v_jX  ~ N(0, patient_arm^2)  what arm X finds hard in patient j, shared by its seeds
    t_skX ~ N(0, train^2)        training run: one value per (seed, split, arm)
    w_skjX~ N(0, run_patient^2)  run-specific errors on a patient (a run's quirks)

Images of a patient share its probability (they move together: clusters). Each split draws its
own test patients, their image counts and labels (real repeated splits of one data set overlap;
the simulation, like the bootstrap, treats splits as independent samples of patients). mu_B is set so arm B's marginal accuracy (over all random
effects) is `base_accuracy`, mu_A so A - B is `effect_pp` on that scale (Gauss-Hermite
quadrature, exact to ~1e-12). A rerun (`World.run` with a fresh generator) keeps splits,
patients, labels, u and v and draws fresh t, w and Bernoulli outcomes: what the same study
on another CPU gives.

The variance components are assumptions, not measurements (the records we have are tiny
smoke runs): see `Components`. `power` states a rule's rates for a design with exact
Clopper-Pearson intervals for the Monte-Carlo error.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

from thtl_bench.analysis import inference, rules


@dataclass(frozen=True)
class Components:
    """Standard deviations on the logit scale (assumed; pass measured ones where known).

    patient 1.0: a latent intra-patient correlation of 1 / (1 + pi^2 / 3) = 0.23 for images of
      one patient (images of one patient look alike; no per-patient figure of CE-NBI is public);
    patient_arm 0.5: arms with different features find partly different patients hard;
    train 0.3 and run_patient 0.3: training-run spread. Checked against the committed smoke
      records (records/smoke, phantom data, 3 seeds per cell, 76 test images of 15 patients):
      their seed sd of test accuracy is 2.7-12.4 pp over 8 cells (median ~6 pp); this model at
      15 patients x 3-7 images gives a median seed sd of 4.9 pp at 80 % and 6.5 pp at 60 %
      accuracy (10th-90th percentile 1.9-11.7 pp). Bouthillier et al. 2021 report 1-2 pp on
      large benchmarks; small medical test sets spread more.
    """

    patient: float = 1.0
    patient_arm: float = 0.5
    train: float = 0.3
    run_patient: float = 0.3

    def total(self) -> float:
        return math.sqrt(self.patient**2 + self.patient_arm**2 + self.train**2 + self.run_patient**2)


@dataclass(frozen=True)
class Design:
    """Replicates = seeds x splits; `patients` test patients per split; images per patient
    uniform on `images` (inclusive) or, with `images_median`, log-normal (median, `images_log_sd`)
    clipped to `images`; `positive_fraction` of patients are malignant."""

    seeds: int
    splits: int
    patients: int
    images: tuple[int, int]
    images_median: float | None = None
    images_log_sd: float = 0.5
    positive_fraction: float = 0.5

    def image_counts(self, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.images
        if self.images_median is None:
            return rng.integers(lo, hi + 1, self.patients)
        x = np.exp(math.log(self.images_median) + self.images_log_sd * rng.standard_normal(self.patients))
        return np.clip(np.rint(x), lo, hi).astype(np.int64)


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(80)
_GH_W = _GH_W / _GH_W.sum()


def marginal_accuracy(mu: float, sd: float) -> float:
    """E[expit(mu + sd * Z)], Z standard normal."""
    return float(np.dot(_GH_W, special.expit(mu + sd * _GH_X)))


def _mu(accuracy: float, sd: float) -> float:
    if not 0.0 < accuracy < 1.0:
        raise ValueError(f"accuracy {accuracy} must lie strictly between 0 and 1")
    return float(optimize.brentq(lambda m: marginal_accuracy(m, sd) - accuracy, -40.0, 40.0, xtol=1e-13))


@dataclass(frozen=True)
class World:
    """Everything a rerun of the study keeps: splits, patients, their labels and effects."""

    design: Design
    components: Components
    mu: tuple[float, float]  # arm A, arm B
    counts: tuple[np.ndarray, ...]  # per split: images per patient
    labels: tuple[np.ndarray, ...]  # per split: 1 = positive patient
    u: tuple[np.ndarray, ...]  # per split: (patients,)
    v: tuple[np.ndarray, ...]  # per split: (2, patients)

    def with_effect(self, effect_pp: float, base_accuracy: float) -> World:
        """The same patients and effects with other arm means (a code change that moved A - B)."""
        sd = self.components.total()
        mu = (_mu(base_accuracy + effect_pp / 100.0, sd), _mu(base_accuracy, sd))
        return World(self.design, self.components, mu, self.counts, self.labels, self.u, self.v)

    def run(self, rng: np.random.Generator, metric: str = "accuracy") -> list[inference.Replicate]:
        """One run of the study: replicates (seed, split) of the two arms, from per-sample outcomes."""
        c = self.components
        reps = []
        for k in range(self.design.splits):
            counts, lab = self.counts[k], self.labels[k]
            patient = np.repeat(np.arange(len(counts)), counts)  # patient ids: 0..P-1 within the split
            labels = lab[patient]
            for s in range(self.design.seeds):
                t = c.train * rng.standard_normal((2, 1))
                w = c.run_patient * rng.standard_normal((2, len(counts)))
                p = special.expit(np.asarray(self.mu)[:, None] + self.u[k] + self.v[k] + t + w)
                correct = rng.random((2, len(labels))) < p[:, patient]
                preds = np.where(correct, labels, 1 - labels)
                parts = [inference.metric_parts(metric, labels, preds[x]) for x in range(2)]
                reps.append(inference.replicate((s, k), patient, np.stack([parts[0][0], parts[1][0]]),
                                                np.stack([parts[0][1], parts[1][1]])))
        return reps


def world(design: Design, components: Components, *, base_accuracy: float, effect_pp: float,
          rng: np.random.Generator) -> World:
    """Draw the fixed part of a study (see the module docstring)."""
    sd = components.total()
    mu_b = _mu(base_accuracy, sd)
    mu_a = _mu(base_accuracy + effect_pp / 100.0, sd)
    counts, labels, us, vs = [], [], [], []
    for _ in range(design.splits):
        n = design.image_counts(rng)
        counts.append(n)
        labels.append((rng.random(design.patients) < design.positive_fraction).astype(np.int64))
        us.append(components.patient * rng.standard_normal(design.patients))
        vs.append(components.patient_arm * rng.standard_normal((2, design.patients)))
    return World(design, components, (mu_a, mu_b), tuple(counts), tuple(labels), tuple(us), tuple(vs))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def verdict_of(reps: list[inference.Replicate], *, kind: str, direction: int, level: float, margin: float,
               tol: float, n_boot: int, seed: int, min_replicates: int = 2) -> dict:
    """The production rule (`rules.decide`, a family of one at `level`) on one simulated run."""
    ev = inference.paired(reps, n_boot=n_boot, seed=seed)
    h = rules.Hypothesis("sim", "sim", kind, direction, ev)
    return rules.decide([h], family=[("sim", "sim")], alpha=level, margin=margin, tol=tol,
                        min_replicates=min_replicates)[0]


def power(effect_pp: float, design: Design, *, components: Components = Components(), base_accuracy: float = 0.8,
          kind: str = "directional", direction: int = -1, alpha: float = 0.05, family_size: int = 1,
          margin: float = 5.0, tol: float = 1e-9, n_sim: int = 200, n_boot: int = 500, seed: int = 0,
          metric: str = "accuracy") -> dict:
    """Rates of each verdict over `n_sim` simulated studies with a true A - B of `effect_pp`.

    The claim is judged at alpha / family_size: the level Holm gives the first-ranked member of
    a family of that size, the lowest it can give, so the returned "reproduced" rate is a lower
    bound of the power inside the family. With effect_pp = 0 (directional) the "reproduced" +
    "contradicted" rate is the false-positive rate. Each rate comes with its 95 % Clopper-Pearson
    interval (Monte-Carlo error). Deterministic for `seed`.
    """
    rng = np.random.default_rng(seed)
    level = alpha / family_size
    tally: dict[str, int] = {}
    for i in range(n_sim):
        w = world(design, components, base_accuracy=base_accuracy, effect_pp=effect_pp, rng=rng)
        row = verdict_of(w.run(rng, metric), kind=kind, direction=direction, level=level, margin=margin,
                         tol=tol, n_boot=n_boot, seed=i)
        tally[row["verdict"]] = tally.get(row["verdict"], 0) + 1
    out = {"effect_pp": effect_pp, "n_sim": n_sim, "level": level, "n_boot": n_boot, "seed": seed,
           "base_accuracy": base_accuracy, "kind": kind, "metric": metric, "design": asdict(design),
           "components": asdict(components), "counts": dict(sorted(tally.items())), "rates": {}}
    for v in (rules.REPRODUCED, rules.CONTRADICTED, rules.INCONCLUSIVE, rules.UNDERPOWERED):
        k = tally.get(v, 0)
        out["rates"][v] = {"rate": k / n_sim, "ci95": clopper_pearson(k, n_sim)}
    false = tally.get(rules.REPRODUCED, 0) + tally.get(rules.CONTRADICTED, 0)
    out["decisive"] = {"rate": false / n_sim, "ci95": clopper_pearson(false, n_sim)}
    return out


def _arm(reps: list[inference.Replicate], k: int) -> list[inference.Replicate]:
    """The single-arm replicates (a compare cell) of arm k of two-arm replicates."""
    return [inference.Replicate(r.key, r.split, r.patients, r.num[k:k + 1], r.den[k:k + 1]) for r in reps]


def compare_flag(reps_a: list[inference.Replicate], reps_b: list[inference.Replicate], *, alpha: float,
                 n_boot: int, seed: int) -> tuple[bool, float]:
    """What compare says of a claim between run A and run B: (flagged, noise half-width pp).

    Three tests, Benjamini-Hochberg adjusted together: the claim difference (2-arm replicates)
    and the two cells (each arm's metric); flagged when any adjusted p < alpha. The noise is the
    half-width of the claim difference's (1 - alpha) interval (`rules.borderline`'s shift).
    """
    tests = [inference.unpaired(reps_a, reps_b, n_boot=n_boot, seed=seed)]
    tests += [inference.unpaired(_arm(reps_a, k), _arm(reps_b, k), n_boot=n_boot, seed=seed) for k in (0, 1)]
    q = inference.bh([t.p_two_sided(0.0) for t in tests])
    lo, hi = tests[0].interval(1.0 - alpha)
    return min(q) < alpha, (hi - lo) / 2.0


def stability(effect_pp: float, design: Design, *, effect_b_pp: float | None = None,
              components: Components = Components(), base_accuracy: float = 0.8, kind: str = "directional",
              direction: int = -1, alpha: float = 0.05, margin: float = 5.0, tol: float = 1e-9, n_sim: int = 200,
              n_boot: int = 300, seed: int = 0, use_borderline: bool = True) -> dict:
    """Run A and run B of the same simulated study (same splits, patients and patient effects;
    fresh training noise), judged like claims and compared like `compare`; the label of each
    verdict change (`rules.explain_change`). `effect_b_pp` plants a real change in run B.
    `use_borderline=False` drops the borderline label (the negative control of the test).
    Returns counts of labels, the changed and UNEXPLAINED counts with Clopper-Pearson intervals,
    and the share of run-A verdicts that are borderline."""
    rng = np.random.default_rng(seed)
    labels: Counter = Counter()
    borderline_a = 0
    for i in range(n_sim):
        w = world(design, components, base_accuracy=base_accuracy, effect_pp=effect_pp, rng=rng)
        wb = w if effect_b_pp is None else w.with_effect(effect_b_pp, base_accuracy)
        ra, rb = w.run(rng), wb.run(rng)
        va, vb = (verdict_of(r, kind=kind, direction=direction, level=alpha, margin=margin, tol=tol,
                             n_boot=n_boot, seed=i) for r in (ra, rb))
        flagged, shift = compare_flag(ra, rb, alpha=alpha, n_boot=n_boot, seed=i)
        label = rules.explain_change(va, vb, flagged=flagged, shift_pp=shift if use_borderline else None,
                                     margin=margin, tol=tol)
        labels[label or "unchanged"] += 1
        borderline_a += rules.borderline(va, shift, margin, tol)
    changed = n_sim - labels["unchanged"]
    return {"n_sim": n_sim, "labels": dict(sorted(labels.items())), "changed": changed,
            "unexplained": labels["UNEXPLAINED"],
            "unexplained_ci95": clopper_pearson(labels["UNEXPLAINED"], n_sim),
            "changed_ci95": clopper_pearson(changed, n_sim), "borderline_share_a": borderline_a / n_sim}
