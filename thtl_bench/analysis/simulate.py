"""Simulated studies at the real design, for calibrating the claim rule (numpy/scipy only).

A simulated study is what the suite does, with a known truth: a data set of N patients is drawn
from a population (the *pool*: each patient's class, image count and random effects); each
split seed draws its own stratified test set from the pool (test sets of different splits share
patients, as real repeated splits of one data set do); each replicate trains "arms" whose
per-image correctness follows a hierarchical logistic model. For class c of patient j, image i,
run r (a training seed on a split) and arm X:

    logit P(correct) = mu_Xc + u_j + v_jX + h_iX + t_rX + w_rjX

    u_j    ~ N(0, patient^2)      patient difficulty, shared by both arms and every run
    v_jX   ~ N(0, patient_arm^2)  what arm X systematically finds hard in patient j
    h_iX   ~ N(0, image_arm^2)    what arm X systematically finds hard in image i (every run of
                                  an arm errs on much the same images: a trained network is a
                                  deterministic function of the image)
    t_rX   ~ N(0, train^2)        a training run: one value per run and arm
    w_rjX  ~ N(0, run_patient^2)  a run's own errors on a patient

With probability `identical` a replicate's arm A repeats arm B exactly (SWFT that selected its
head-only step is THTL last-layer retrained: the same predictions). The truth of a claim is the
*population* difference of the arms' metrics (marginal over every random effect: Gauss-Hermite
quadrature), not the difference on this data set: the rule must cover what a fresh data set
would show. Components come from a run's own records (thtl_bench.analysis.components).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

from thtl_bench.analysis import inference, rules

METRICS = ("accuracy", "recall")
BATCH = 250  # simulated studies per numpy batch (rates)


@dataclass(frozen=True)
class Components:
    """Standard deviations on the logit scale, the share of replicates where arm A repeats arm B,
    and the arms' per-class accuracy (class 0 = specificity, class 1 = recall of arm B; arm A
    equals B under the null, shifted for an effect)."""

    patient: float
    patient_arm: float
    image_arm: float
    train: float
    run_patient: float = 0.0
    identical: float = 0.0
    base: tuple[float, float] = (0.9, 0.6)  # arm B: accuracy on class 0 and on class 1
    label: str = ""  # "estimated" | "pessimistic" | "assumed"

    def total(self) -> float:
        return math.sqrt(self.patient**2 + self.patient_arm**2 + self.image_arm**2 + self.train**2
                         + self.run_patient**2)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Design:
    """A study's layout: the data set's patients per class (the pool), the test patients per
    class of each split, images per patient (inclusive range, uniform, or log-normal around
    `images_median`), and the replicates: `seeds` training seeds on each of `splits` splits."""

    pool: tuple[int, int]
    test: tuple[int, int]
    images: tuple[int, int]
    splits: int
    seeds: int = 1
    images_median: float | None = None
    images_log_sd: float = 0.5

    @property
    def replicates(self) -> int:
        return self.splits * self.seeds

    def image_counts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        lo, hi = self.images
        if self.images_median is None:
            return rng.integers(lo, hi + 1, n)
        x = np.exp(math.log(self.images_median) + self.images_log_sd * rng.standard_normal(n))
        return np.clip(np.rint(x), lo, hi).astype(np.int64)

    def with_splits(self, splits: int) -> Design:
        return Design(self.pool, self.test, self.images, splits, self.seeds, self.images_median, self.images_log_sd)

    def as_dict(self) -> dict:
        return {**asdict(self), "replicates": self.replicates}


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(80)
_GH_W = _GH_W / _GH_W.sum()


def marginal(mu: float, sd: float) -> float:
    """E[expit(mu + sd * Z)], Z standard normal."""
    return float(np.dot(_GH_W, special.expit(mu + sd * _GH_X)))


def logit_for(p: float, sd: float) -> float:
    """The mu whose marginal() is p."""
    p = min(max(float(p), 1e-4), 1 - 1e-4)
    span = 40.0 + 10.0 * sd
    return float(optimize.brentq(lambda m: marginal(m, sd) - p, -span, span, xtol=1e-13))


@dataclass(frozen=True)
class Truth:
    """Logit means per arm and class, the claim's contrast over the arms (A - B: (1, -1); an
    interaction: (1, -1, -1, 1)) and its population value (pp)."""

    mu: np.ndarray  # (arms, 2 classes)
    effect_pp: float
    weights: tuple[float, ...] = (1.0, -1.0)


def _metric_of(mu: np.ndarray, sd: float, design: Design, metric: str) -> float:
    per_class = np.array([marginal(m, sd) for m in mu])
    share = np.array(design.pool, float) / sum(design.pool)
    return float(per_class[1]) if metric == "recall" else float(share @ per_class)


def truth_at(c: Components, design: Design, metric: str, rates: Sequence[tuple[float, float]],
             weights: Sequence[float] = (1.0, -1.0)) -> Truth:
    """Each arm at its own per-class rates (what the records show: the model fitted to them)."""
    sd = c.total()
    mu = np.array([[logit_for(p, sd) for p in r] for r in rates])
    w = tuple(float(x) for x in weights)
    return Truth(mu, 100.0 * float(np.dot(w, [_metric_of(m, sd, design, metric) for m in mu])), w)


def truth(c: Components, design: Design, metric: str, effect_pp: float,
          weights: Sequence[float] = (1.0, -1.0)) -> Truth:
    """Every arm at the base rates, arm A (weight +1) shifted by one logit offset (both classes)
    so that the contrast's population value is `effect_pp` (0: the null). An effect the base
    leaves no room for raises ValueError."""
    sd = c.total()
    w = tuple(float(x) for x in weights)
    mu_b = np.array([logit_for(c.base[0], sd), logit_for(c.base[1], sd)])

    def metric_of(mu: np.ndarray) -> float:
        return _metric_of(mu, sd, design, metric)

    base = metric_of(mu_b)
    if effect_pp == 0:
        return Truth(np.stack([mu_b] * len(w)), 0.0, w)
    target = base + effect_pp / 100.0 / w[0]
    if not 0.0 < target < 1.0:
        raise ValueError(f"an effect of {effect_pp:+.1f} pp on a base {metric} of {100 * base:.1f} % leaves [0, 100]")
    span = 40.0 + 10.0 * sd
    shift = optimize.brentq(lambda s: metric_of(mu_b + s) - target, -span, span, xtol=1e-12)
    return Truth(np.stack([mu_b + shift] + [mu_b] * (len(w) - 1)), 100.0 * w[0] * (metric_of(mu_b + shift) - base), w)


@dataclass
class Study:
    """One simulated study as the rule's arrays (inference.from_arrays): per replicate its value
    (pp), split and per-patient contributions with patient ids; the truth; and, for tests, the
    per-patient sums (`replicates()` rebuilds inference.Replicate objects from them)."""

    values: np.ndarray
    splits: np.ndarray
    contrib: np.ndarray
    patients: np.ndarray
    pool: int
    effect_pp: float
    identical: np.ndarray
    weights: tuple[float, ...] = (1.0, -1.0)
    sums: list = field(default_factory=list)  # (key, split, patient ids, num (K, n), den (K, n), classes)

    def evidence(self) -> inference.Evidence:
        n = len(self.contrib) // len(self.values)  # every replicate holds the same number of test patients
        return inference.from_arrays(self.values, self.splits, self.contrib, self.patients, self.pool,
                                     identical=self.identical, owner=np.repeat(np.arange(len(self.values)), n))

    def replicates(self) -> list[inference.Replicate]:
        w = None if self.weights == (1.0, -1.0) else self.weights
        return [inference.Replicate(k, sp, ids, num, den, self.pool, y, w) for k, sp, ids, num, den, y in self.sums]


def _draw(rng: np.random.Generator, items: np.ndarray, n: int) -> np.ndarray:
    """n of `items` without replacement (argpartition of uniforms: rng.choice is slower)."""
    if n <= 0:
        return items[:0]
    return items[np.argpartition(rng.random(len(items)), n - 1)[:n]]


def study(design: Design, c: Components, tr: Truth, metric: str, rng: np.random.Generator,
          keep_sums: bool = False) -> Study:
    """Draw a data set (the pool) and run the design's replicates on it (module docstring);
    `keep_sums` keeps the per-patient sums (Study.replicates)."""
    labels = np.repeat([0, 1], design.pool)
    n_pool = len(labels)
    arms = len(tr.weights)
    w_arr = np.asarray(tr.weights)
    counts = design.image_counts(rng, n_pool)
    u = c.patient * rng.standard_normal(n_pool)
    v = c.patient_arm * rng.standard_normal((arms, n_pool))
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # each patient's first image in the pool
    h = c.image_arm * rng.standard_normal((arms, int(counts.sum())))
    by_class = [np.flatnonzero(labels == k) for k in (0, 1)]
    values, splits, contrib, pids, sums, same = [], [], [], [], [], []
    for k in range(design.splits):
        # a stratified draw without replacement (argpartition of uniforms: rng.choice is slow here)
        test = np.sort(np.concatenate([_draw(rng, by_class[cl], design.test[cl]) for cl in (0, 1)]))
        cnt, y = counts[test], labels[test]
        starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        # per patient, the metric's denominator: accuracy its images, recall its images if positive
        den = cnt.astype(np.float64) if metric == "accuracy" else cnt * (y == 1).astype(np.float64)
        # the test images (pool indices) in test-patient order, and their systematic effects
        images = np.repeat(first[test] - starts, cnt) + np.arange(int(cnt.sum()))
        base_eta = np.repeat(tr.mu[:, y] + u[test] + v[:, test], cnt, axis=1) + h[:, images]  # (arms, images)
        for s in range(design.seeds):
            run = c.train * rng.standard_normal((arms, 1)) + c.run_patient * rng.standard_normal((arms, len(test)))
            correct = rng.random(base_eta.shape) < special.expit(base_eta + np.repeat(run, cnt, axis=1))
            if arms == 2 and c.identical and rng.random() < c.identical:
                correct[0] = correct[1]
            hits = np.add.reduceat(correct.astype(np.float64), starts, axis=1)  # correct images per patient
            num = hits if metric == "accuracy" else hits * (y == 1)
            tot_d = den.sum()
            m = num.sum(1) / tot_d  # (arms,)
            z = 100.0 * (num - m[:, None] * den) / (tot_d / len(test))  # inference.Replicate.contributions
            values.append(100.0 * float(w_arr @ m))
            splits.append(k)
            contrib.append(inference.centre_within(w_arr @ z, y))
            same.append(arms == 2 and bool(np.array_equal(num[0], num[1])))
            pids.append(test)
            if keep_sums:
                sums.append(((s, k), k, test, num, np.stack([den] * arms), y))
    return Study(np.asarray(values), np.asarray(splits), np.concatenate(contrib), np.concatenate(pids), n_pool,
                 tr.effect_pp, np.asarray(same), tr.weights, sums)


@dataclass
class Batch:
    """Many simulated studies of one layout as the rule's arrays (inference.rule_batch)."""

    values: np.ndarray  # (B, R)
    unit_of: np.ndarray  # (R,)
    contrib: np.ndarray  # (B, M)
    pid: np.ndarray  # (B, M) patient index in the pool
    identical: np.ndarray  # (B, R)
    owner: np.ndarray  # (M,)
    pool: int
    effect_pp: float

    def rule(self) -> dict[str, np.ndarray]:
        return inference.rule_batch(self.values, self.unit_of, self.contrib, self.pid, self.pool, self.pool,
                                    self.identical, self.owner)


def study_batch(design: Design, c: Components, tr: Truth, metric: str, rng: np.random.Generator, n: int) -> Batch:
    """`n` studies at once, each as `study` draws it (a data set, stratified test splits, runs),
    for designs with the same number of images per patient (the smoke and domains data): numpy
    over the studies instead of a Python loop. Same model, other draws of the random stream."""
    lo, hi = design.images
    if lo != hi or design.images_median is not None:
        raise ValueError("study_batch needs a constant number of images per patient")
    labels = np.repeat([0, 1], design.pool)
    n_pool = len(labels)
    arms = len(tr.weights)
    w_arr = np.asarray(tr.weights)
    img = lo
    u = c.patient * rng.standard_normal((n, n_pool))
    v = c.patient_arm * rng.standard_normal((n, arms, n_pool))
    h = c.image_arm * rng.standard_normal((n, arms, n_pool, img))
    by_class = [np.flatnonzero(labels == k) for k in (0, 1)]
    values, contrib, pids, same, unit_of = [], [], [], [], []
    for k in range(design.splits):
        parts = []
        for cl in (0, 1):
            t = design.test[cl]
            pick = np.argpartition(rng.random((n, len(by_class[cl]))), t - 1, axis=1)[:, :t] if t else \
                np.zeros((n, 0), np.int64)
            parts.append(by_class[cl][pick])
        test = np.sort(np.concatenate(parts, axis=1), axis=1)  # (n, T) pool indices
        y = labels[test]  # (n, T)
        rows = np.arange(n)[:, None]
        den = np.full(test.shape, float(img)) if metric == "accuracy" else img * (y == 1).astype(np.float64)
        mu = tr.mu[:, y].transpose(1, 0, 2)  # (n, arms, T)
        base = mu + u[rows, test][:, None, :] + v[rows[:, :, None], np.arange(arms)[None, :, None], test[:, None, :]]
        himg = h[rows[:, :, None], np.arange(arms)[None, :, None], test[:, None, :]]  # (n, arms, T, img)
        for _s in range(design.seeds):
            run = (c.train * rng.standard_normal((n, arms, 1))
                   + c.run_patient * rng.standard_normal((n, arms, test.shape[1])))
            eta = (base + run)[..., None] + himg
            correct = rng.random(eta.shape) < special.expit(eta)
            if arms == 2 and c.identical:
                copy = rng.random(n) < c.identical
                correct[copy, 0] = correct[copy, 1]
            hits = correct.sum(-1).astype(np.float64)  # (n, arms, T)
            num = hits if metric == "accuracy" else hits * (y == 1)[:, None, :]
            tot = den.sum(1)  # (n,)
            m = num.sum(-1) / tot[:, None]  # (n, arms)
            z = 100.0 * (num - m[..., None] * den[:, None, :]) / (tot / test.shape[1])[:, None, None]
            zc = np.einsum("k,nkt->nt", w_arr, z)
            # centred within class strata (the fixed test counts per class), as Replicate.centred
            for cl in (0, 1):
                sel = y == cl
                cnt = sel.sum(1, keepdims=True)
                mean = np.where(sel, zc, 0.0).sum(1, keepdims=True) / np.maximum(cnt, 1)
                scale = np.where(cnt > 1, np.sqrt(cnt / np.maximum(cnt - 1, 1)), 0.0)
                zc = np.where(sel, (zc - mean) * scale, zc)
            values.append(100.0 * (m @ w_arr))
            contrib.append(zc)
            pids.append(test)
            same.append(np.all(num[:, 0] == num[:, 1], axis=1) if arms == 2 else np.zeros(n, bool))
            unit_of.append(k)
    t_n = pids[0].shape[1]
    return Batch(np.stack(values, 1), np.asarray(unit_of), np.concatenate(contrib, 1), np.concatenate(pids, 1),
                 np.stack(same, 1), np.repeat(np.arange(len(values)), t_n), n_pool, tr.effect_pp)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def _rate(k: int, n: int) -> dict:
    return {"rate": k / n, "ci95": clopper_pearson(k, n), "count": k}


def rates(design: Design, c: Components, *, metric: str = "accuracy", effect_pp: float = 0.0, direction: int = 1,
          level: float = 0.05, n_sim: int = 2000, seed: int = 0, tol: float = 1e-9,
          min_replicates: int = 2, coverage_level: float = 0.05, weights: Sequence[float] = (1.0, -1.0)) -> dict:
    """The production rule on `n_sim` simulated studies with a true difference `effect_pp`.

    Returns the share of decisions (the (1 - level) interval excludes 0: reproduced or
    contradicted), of "reproduced" (on the side `direction`), the coverage of the true difference
    by the (1 - coverage_level) interval among the studies that gave one (`with_interval`: fewer
    than two split units where the arms differ give none), each with its Clopper-Pearson interval
    (Monte-Carlo error), and
    the same decision share for a plain replicate-level t that leaves out the shared-patient term
    (what the rule would do without it). Deterministic for `seed`.
    """
    rng = np.random.default_rng(seed)
    tr = truth(c, design, metric, effect_pp, weights)
    conf = 1.0 - coverage_level
    if design.images[0] == design.images[1] and design.images_median is None:
        decided = reproduced = covered = plain = intervals = 0
        for start in range(0, n_sim, BATCH):
            r = study_batch(design, c, tr, metric, rng, min(BATCH, n_sim - start)).rule()
            rep, con = rules.judge_batch(direction, r["estimate"], r["se"], r["df"], r["decidable"], level, tol)
            decided += int((rep | con).sum())
            reproduced += int(rep.sum())
            ok = r["decidable"]
            hw = np.where(ok & (r["se"] > 0), special.stdtrit(np.where(ok, r["df"], 1.0), 1 - coverage_level / 2)
                          * np.where(ok, r["se"], 0.0), 0.0)
            intervals += int(ok.sum())
            covered += int((ok & (np.abs(r["estimate"] - tr.effect_pp) <= hw)).sum())
            u = design.splits
            hp = np.where(r["se_units"] > 0, special.stdtrit(max(u - 1, 1), 1 - level / 2) * r["se_units"], 0.0)
            plain += int((ok & (np.abs(r["estimate"]) > hp + tol)).sum())
    else:  # images per patient vary: one study at a time
        decided = reproduced = covered = plain = intervals = 0
        for _ in range(n_sim):
            ev = study(design, c, tr, metric, rng).evidence()
            verdict = rules.judge(rules.Hypothesis("sim", "sim", "directional", direction, ev), level, margin=5.0,
                                  tol=tol, min_replicates=min_replicates)
            decided += verdict in rules.DECISIVE
            reproduced += verdict == rules.REPRODUCED
            iv = ev.interval(conf)
            intervals += iv is not None
            covered += iv is not None and iv[0] <= tr.effect_pp <= iv[1]
            if ev.se_units is not None and ev.df is not None:
                u = ev.units
                h_plain = float(special.stdtrit(u - 1, 1 - level / 2)) * ev.se_units if ev.se_units > 0 else 0.0
                plain += abs(ev.estimate) > h_plain + tol
    return {"metric": metric, "effect_pp": tr.effect_pp, "weights": list(tr.weights), "direction": direction,
            "level": level,
            "coverage_confidence": conf, "n_sim": n_sim,
            "seed": seed, "design": design.as_dict(), "components": c.as_dict(),
            "decisions": _rate(decided, n_sim), "reproduced": _rate(reproduced, n_sim),
            "coverage": _rate(covered, max(intervals, 1)), "with_interval": intervals,
            "plain_t_decisions": _rate(plain, n_sim)}
