"""Variance components of a claim, estimated from a run's own records, and the simulation model
(thtl_bench.analysis.simulate) fitted to them (numpy/scipy only).

From the paired replicates of a claim (its two arms on the same seeds and splits) the records
give, on the scale the rule works on (pp):

- `within`: the per-patient variance of a patient's contribution to the difference, with the
  trained models held fixed (mean over replicates of n_r x the replicate's patient-cluster
  variance, inference.Replicate.within_var);
- `systematic`: the part of it every run shares (inference.shared_patient_variance, from the
  patients found in two replicates' test sets);
- `train`: what training adds between replicates: the units' spread minus what the test
  patients explain (method of moments, clipped at 0);
- `identical`: the share of replicates in which the two arms predict alike (SWFT that selected
  its head-only step is THTL last-layer retrained);
- `icc`: the intra-patient correlation of correctness (images of one patient), per arm, pooled;
- the base rates of each arm per class (specificity, malignant recall) from the records' metrics.

`fit` finds the logit-scale standard deviations of the simulation model whose simulated
records show the same moments in expectation (common random numbers, Nelder-Mead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize

from thtl_bench.analysis import inference
from thtl_bench.analysis import simulate as sim

DEFAULT_ICC = 0.3  # used (and labelled assumed) when no patient has two images of a class


@dataclass(frozen=True)
class Moments:
    replicates: int
    units: int
    seeds_per_unit: float
    test_patients: float
    pool: int
    within: float  # pp^2 per patient
    systematic: float  # pp^2 per patient
    systematic_pairs: int
    unit_var: float  # pp^2: spread of the unit values
    train: float  # pp^2 per replicate
    identical: float
    icc: float | None
    rates: tuple[tuple[float, float], ...]  # per arm of the contrast: specificity, malignant recall
    weights: tuple[float, ...] = (1.0, -1.0)

    @property
    def null_base(self) -> tuple[float, float]:
        """The rates of every arm under the null: the mean of the arms'."""
        return (float(np.mean([r[0] for r in self.rates])), float(np.mean([r[1] for r in self.rates])))

    def as_dict(self) -> dict:
        return asdict(self)


def _icc(num: np.ndarray, den: np.ndarray) -> float | None:
    """ANOVA intra-class correlation of binary outcomes from per-patient successes / trials
    (patients with no trial left out); None when it is not estimable."""
    keep = den > 0
    num, den = num[keep], den[keep]
    j, total = len(den), den.sum()
    if j < 2 or total - j <= 0:
        return None
    p = num / den
    pbar = num.sum() / total
    msb = float((den * (p - pbar) ** 2).sum() / (j - 1))
    msw = float((den * p * (1 - p)).sum() / (total - j))
    n0 = float((total - (den**2).sum() / total) / (j - 1))
    if msb + (n0 - 1) * msw <= 0:
        return None
    return (msb - msw) / (msb + (n0 - 1) * msw)


def moments(reps: list[inference.Replicate], rates: Sequence[tuple[float, float]],
            pool: int | None = None) -> Moments:
    """The claim's moments from its replicates (two arms, or a contrast of more; see the module
    docstring); `rates`: each arm's (specificity, malignant recall)."""
    reps = [r for r in reps if math.isfinite(r.value())]
    if len(reps) < 2:
        raise ValueError("components need at least two replicates with a defined difference")
    pool = int(pool or reps[0].pool or 0)
    if pool <= 0:
        raise ValueError("components need the data set's patient count (record data.patients)")
    n = np.array([r.num.shape[1] for r in reps], float)
    v = np.array([r.within_var() for r in reps])
    within = float(np.nanmean(n * v))
    contrib = np.concatenate([r.centred() for r in reps])
    pids = np.concatenate([np.asarray(r.patients) for r in reps])
    sys2, pairs, _, _ = inference.shared_patient_variance(contrib, pids)
    sys2 = min(sys2, within)
    splits = [repr(r.split) for r in reps]
    keys = sorted(set(splits))
    units = np.array([np.mean([r.value() for r, s in zip(reps, splits, strict=True) if s == k]) for k in keys])
    seeds = len(reps) / len(keys)
    n_test = float(n.mean())
    unit_var = float(units.var(ddof=1)) if len(units) > 1 else 0.0
    # Var(unit) = sys (1/n - 1/N) + (within - sys) / (n S) + train / S
    patient_part = sys2 * (1 / n_test - 1 / pool) + (within - sys2) / (n_test * seeds)
    train = max(0.0, seeds * (unit_var - patient_part))
    ident = float(np.mean([np.array_equal(r.num[0], r.num[1]) and np.array_equal(r.den[0], r.den[1])
                           for r in reps]))
    iccs = [x for r in reps for k in range(r.num.shape[0]) if (x := _icc(r.num[k], r.den[k])) is not None]
    return Moments(len(reps), len(keys), seeds, n_test, pool, within, float(sys2), pairs, unit_var, train, ident,
                   float(np.mean(iccs)) if iccs else None, tuple((float(a), float(b)) for a, b in rates),
                   tuple(float(x) for x in reps[0].w))


SD_MAX = 6.0  # logit-scale bound of each fitted SD


def _sds(x: np.ndarray) -> np.ndarray:
    """Unconstrained optimiser coordinates -> SDs in (0, SD_MAX)."""
    return SD_MAX / (1.0 + np.exp(-np.asarray(x, float)))


def _expected(sd: np.ndarray, m: Moments, design: sim.Design, metric: str, seed: int, pools: int) -> Moments:
    """The moments `moments()` would show, in expectation over the per-image Bernoulli draws, on
    `pools` data sets drawn with common random numbers (`seed`): smooth in the SDs, so the fit's
    optimiser can follow them. Given the latent probabilities p of each test image, a patient's
    contribution has mean from the p's and variance from p (1 - p) (the arms are independent given
    them); products across runs take the means only (the draws of two runs are independent)."""
    c = sim.Components(*[float(x) for x in sd], identical=m.identical, base=m.rates[-1])
    tr = sim.truth_at(c, design, metric, m.rates, m.weights)
    arms = len(m.weights)
    w_arr = np.asarray(m.weights)
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], design.pool)
    n_pool = len(labels)
    by_class = [np.flatnonzero(labels == k) for k in (0, 1)]
    n_same = int(round(m.identical * design.splits))
    out = {"within": [], "systematic": [], "unit": [], "icc": []}
    for _ in range(pools):
        counts = design.image_counts(rng, n_pool)
        u = c.patient * rng.standard_normal(n_pool)
        v = c.patient_arm * rng.standard_normal((arms, n_pool))
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        h = c.image_arm * rng.standard_normal((arms, int(counts.sum())))
        within, means, pids, d_mean, d_var = [], [], [], [], []
        for k in range(design.splits):
            test = np.sort(np.concatenate([sim._draw(rng, by_class[cl], design.test[cl]) for cl in (0, 1)]))
            cnt, y = counts[test], labels[test]
            starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
            images = np.repeat(first[test] - starts, cnt) + np.arange(int(cnt.sum()))
            run = c.train * rng.standard_normal((arms, 1)) + c.run_patient * rng.standard_normal((arms, len(test)))
            eta = np.repeat(tr.mu[:, y] + u[test] + v[:, test] + run, cnt, axis=1) + h[:, images]
            p = 1.0 / (1.0 + np.exp(-eta))
            if arms == 2 and k < n_same:
                p[0] = p[1]  # this replicate's arm A repeats arm B
            keep = np.ones(len(test)) if metric == "accuracy" else (y == 1).astype(float)
            den = cnt * keep
            e_num = np.add.reduceat(p, starts, axis=1) * keep
            v_num = np.add.reduceat(p * (1 - p), starts, axis=1) * keep
            tot = den.sum()
            mm = e_num.sum(1) / tot
            scale = 100.0 / (tot / len(test))
            ez = scale * (w_arr @ (e_num - mm[:, None] * den))
            vz = np.zeros(len(test)) if (arms == 2 and k < n_same) else scale**2 * ((w_arr**2) @ v_num)
            n = len(test)
            within.append(float(((ez**2 + vz).sum()) / (n - 1)))
            means.append(inference.centre_within(ez, y))
            pids.append(test)
            d_mean.append(100.0 * float(w_arr @ mm))
            d_var.append(float(vz.sum()) / n**2)
            # intra-patient correlation of arm B's correctness: pairs of one patient's images
            owner = np.repeat(np.arange(n), cnt)
            sel = np.ones(len(owner), bool) if metric == "accuracy" else np.repeat(y == 1, cnt)
            q, grp = p[-1][sel], owner[sel]
            s1 = np.bincount(grp, weights=q, minlength=n)
            s2 = np.bincount(grp, weights=q * q, minlength=n)
            k_i = np.bincount(grp, minlength=n)
            ok = k_i >= 2
            if ok.any():
                pair_mean = float(((s1**2 - s2)[ok]).sum() / (k_i * (k_i - 1))[ok].sum())
                pbar = float(q.mean())
                if 0 < pbar < 1:
                    out["icc"].append((pair_mean - pbar**2) / (pbar * (1 - pbar)))
        sys2, _, _, _ = inference.shared_patient_variance(np.concatenate(means), np.concatenate(pids))
        out["within"].append(float(np.mean(within)))
        out["systematic"].append(min(sys2, float(np.mean(within))))
        out["unit"].append(float(np.var(d_mean, ddof=1) + np.mean(d_var)))
    within, sys2, unit_var = (float(np.mean(out[k])) for k in ("within", "systematic", "unit"))
    n_test = float(sum(design.test))
    patient_part = sys2 * (1 / n_test - 1 / n_pool) + (within - sys2) / n_test
    train = max(0.0, unit_var - patient_part)
    icc = float(np.mean(out["icc"])) if out["icc"] else None
    return Moments(m.replicates, m.units, m.seeds_per_unit, m.test_patients, m.pool, within, sys2, 0, unit_var,
                   train, m.identical, icc, m.rates, m.weights)


def fit(m: Moments, design: sim.Design, metric: str, *, label: str = "estimated", seed: int = 0,
        fit_splits: int = 25, pools: int = 6, maxiter: int = 150) -> tuple[sim.Components, dict]:
    """The simulation model's components whose simulated records show the moments `m` in
    expectation (`_expected` on `pools` simulated data sets of `fit_splits` splits each, common
    random numbers: a smooth objective). Returns the components and a report of the match (target
    and fitted moments on the fit's own draws)."""
    d = design.with_splits(fit_splits)
    icc = m.icc if m.icc is not None else DEFAULT_ICC
    scale_v = max(m.within, 1e-6)
    scale_t = max(m.within / max(m.test_patients, 1.0), 1e-6)

    def loss(x: np.ndarray) -> float:
        s = _expected(_sds(x), m, d, metric, seed, pools)
        r = [(s.within - m.within) / scale_v, (s.systematic - m.systematic) / scale_v,
             (s.train - m.train) / scale_t, ((s.icc or 0.0) - icc) / 0.1]
        return float(np.dot(r, r))

    start = np.array([1.0, 0.5, 1.5, 0.3])  # patient, patient_arm, image_arm, train
    x0 = -np.log(SD_MAX / start - 1.0)
    res = optimize.minimize(loss, x0, method="Nelder-Mead",
                            options={"maxiter": maxiter, "xatol": 1e-3, "fatol": 1e-5,
                                     "initial_simplex": np.vstack([x0, x0 + 0.5 * np.eye(4)])})
    sd = _sds(res.x)
    c = sim.Components(*[float(x) for x in sd], identical=m.identical, base=m.null_base, label=label)
    got = _expected(sd, m, d, metric, seed, pools)
    match = {k: {"target": t, "fitted": g} for k, t, g in (("within", m.within, got.within),
                                                            ("systematic", m.systematic, got.systematic),
                                                            ("train", m.train, got.train),
                                                            ("icc", icc, got.icc))}
    return c, {"loss": float(res.fun), "iterations": int(res.nit), "match": match,
               "icc_assumed": m.icc is None}
