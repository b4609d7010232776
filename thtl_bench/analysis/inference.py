"""Replicate-level inference for claims and compare (numpy/scipy only).

A *replicate* is one training run on one split: a (seed, split_seed) pair. On its test split each
sample has a patient id and, per arm, a numerator and a denominator (accuracy: correct / 1;
malignant recall: correct & malignant / malignant; see `metric_parts`). The metric of an arm in
a replicate is sum(num) / sum(den) over its test samples; a paired claim's statistic is the mean
over replicates of (metric_A - metric_B), in percentage points (pp).

Two parts, and the decision uses their hull (the union, never narrower than the wider one):
- a two-level bootstrap: replicates are resampled with replacement, and the test patients of
  each split are resampled with replacement (patients are the clusters; images of a patient
  move together). One patient draw per split per resample is shared by every replicate that
  was evaluated on that split and by both arms: replicates on one split saw the same patients,
  so drawing them independently per replicate would treat one test set as several and shrink
  the patient variance. Percentile interval.
- a Student-t interval of the mean over replicates (paired: the per-replicate differences,
  df = R - 1; unpaired: Welch df) whose standard error is the LARGER of the replicate-level
  SE and the bootstrap SE. Either alone is too narrow (measured in simulation, see
  tests/analysis/test_calibration.py): the replicate SE misses the patient variance that the
  replicates of one split share; the bootstrap SE from a few replicates is biased low and its
  percentile interval ignores that it is itself estimated from R replicates. It needs >= 2
  replicates (per side).
With one replicate the bootstrap only resamples patients, i.e. it holds the trained models fixed
and measures test-set sampling alone: `Evidence.decidable` is then False and no verdict may rest
on it. P-values are dual to the intervals: the c-level hull excludes theta exactly when the
two-sided p for theta is below 1 - c (for the bootstrap part this uses the inverse of numpy's
linear percentile, so the duality is exact, not approximate).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

RATIO_METRICS = ("accuracy", "recall", "specificity", "precision", "f1")


# ----------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Replicate:
    """One (seed, split_seed) run reduced to per-patient sums.

    `num`, `den`: (arms, patients) sums over each patient's test samples; 2 arms for a paired
    claim (value = metric_0 - metric_1), 1 arm for a single cell metric (value = metric_0).
    `split` names the test split: replicates with the same split share their patients' draws.
    """

    key: tuple
    split: Hashable
    patients: tuple[str, ...]
    num: np.ndarray
    den: np.ndarray

    def value(self) -> float:
        """The replicate's metric (1 arm) or metric difference (2 arms) in pp; NaN if undefined."""
        n, d = self.num.sum(1), self.den.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = 100.0 * n / d
        return float(m[0] - m[1]) if len(m) == 2 else float(m[0])


def replicate(key: tuple, groups: Sequence, num, den, split: Hashable | None = None) -> Replicate:
    """A Replicate from per-sample arrays: `groups` (n,) patient ids (str or int; kept as str),
    `num` (n,) or (arms, n), `den` (n,) shared by the arms or (arms, n). `split` names the test
    split and defaults to key[1] (the split seed)."""
    groups = np.asarray(groups)
    num = np.atleast_2d(np.asarray(num, np.float64))
    den = np.asarray(den, np.float64)
    den = np.broadcast_to(den, num.shape) if den.ndim == 1 else np.atleast_2d(den)
    if num.shape[1] != len(groups) or den.shape != num.shape:
        raise ValueError(f"replicate {key}: {len(groups)} patient ids but num {num.shape}, den {den.shape}")
    patients, inv = np.unique(groups, return_inverse=True)
    sums = np.zeros((2, num.shape[0], len(patients)))
    for k in range(num.shape[0]):
        sums[0, k] = np.bincount(inv, weights=num[k], minlength=len(patients))
        sums[1, k] = np.bincount(inv, weights=den[k], minlength=len(patients))
    return Replicate(tuple(key), key[1] if split is None else split, tuple(str(p) for p in patients.tolist()),
                     sums[0], sums[1])


def aligned_replicate(key: tuple, metric: str, arms: Sequence[dict], positive: int = 1,
                      split: Hashable | None = None) -> Replicate:
    """The Replicate of one (seed, split_seed) from each arm's per-sample test predictions.

    `arms`: one dict per arm (1 for a cell, 2 for a claim: A then B) with equal-length "ids",
    "patients", "labels" and "preds" (arg-max class). The arms must hold the same test samples
    (ids, each once) with the same labels and patients; they are aligned by id.
    """
    ref = None
    nums, dens = [], []
    for arm in arms:
        ids = [str(i) for i in arm["ids"]]
        if len(set(ids)) != len(ids):
            raise ValueError(f"replicate {key}: a test sample id occurs twice")
        order = np.argsort(np.asarray(ids), kind="stable")
        cur = {"ids": np.asarray(ids)[order], "patients": np.asarray([str(p) for p in arm["patients"]])[order],
               "labels": np.asarray(arm["labels"])[order]}
        if ref is None:
            ref = cur
        elif any(not np.array_equal(ref[k], cur[k]) for k in ("ids", "patients", "labels")):
            raise ValueError(f"replicate {key}: the arms differ in test samples, their labels or patients")
        num, den = metric_parts(metric, cur["labels"], np.asarray(arm["preds"])[order], positive)
        nums.append(num)
        dens.append(den)
    den = dens[0] if all(np.array_equal(d, dens[0]) for d in dens) else np.stack(dens)
    return replicate(key, ref["patients"], np.stack(nums), den, split=split)


def metric_parts(metric: str, labels, preds, positive: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (num, den) whose ratio of sums is `metric` (one of RATIO_METRICS).

    precision and f1 have prediction-dependent denominators, so two arms then need (arms, n)
    denominators (`replicate` accepts them). ROC AUC and kappa are not ratios of sums.
    """
    labels, preds = np.asarray(labels), np.asarray(preds)
    pos, hit = labels == positive, preds == labels
    pred_pos = preds == positive
    parts = {
        "accuracy": (hit, np.ones(len(labels))),
        "recall": (hit & pos, pos),
        "specificity": (hit & ~pos, ~pos),
        "precision": (hit & pos, pred_pos),
        "f1": (2.0 * (hit & pos), pred_pos.astype(float) + pos),  # sums: 2TP / (2TP + FP + FN)
    }
    if metric not in parts:
        raise ValueError(f"{metric!r} is not a ratio of per-sample sums; use one of {RATIO_METRICS}")
    num, den = parts[metric]
    return np.asarray(num, np.float64), np.asarray(den, np.float64)


# ----------------------------------------------------------------------------- evidence

def _inv_percentile(x: np.ndarray, theta: float) -> tuple[float, float]:
    """(F_lo, F_hi): the quantile levels q at which numpy's linear percentile of sorted `x`
    equals theta (an interval when values tie at theta); 0/1 outside the range."""
    n = len(x)
    left, right = int(np.searchsorted(x, theta, "left")), int(np.searchsorted(x, theta, "right"))
    if n == 1:
        return (0.0, 1.0) if left < right else ((1.0, 1.0) if left == 1 else (0.0, 0.0))
    if left < right:
        return left / (n - 1), (right - 1) / (n - 1)
    if left == 0:
        return 0.0, 0.0
    if left == n:
        return 1.0, 1.0
    pos = left - 1 + (theta - x[left - 1]) / (x[left] - x[left - 1])
    return pos / (n - 1), pos / (n - 1)


@dataclass(frozen=True)
class Evidence:
    """What a decision may rest on: a point estimate (pp), the sorted bootstrap statistics and
    a t part (mean, se, df). Intervals and p-values are the hull of the available parts."""

    estimate: float
    n: tuple[int, ...]  # replicates per side (paired: one side)
    boot: np.ndarray | None  # sorted valid bootstrap statistics, pp
    n_boot: int
    t: tuple[float, float, float] | None  # (mean, se, df); se = max(se_replicates, se_bootstrap)
    decidable: bool
    values: tuple[tuple[float, ...], ...] = ()  # replicate-level values per side (pp)
    improve: float | None = None  # paired: P(A > B) over replicates, ties one half
    boot_improve: np.ndarray | None = field(default=None, repr=False)
    dropped: tuple = ()  # replicate keys left out (undefined metric)
    se_replicates: float | None = None  # replicate-level SE (paired t / Welch)
    se_bootstrap: float | None = None  # sd of the bootstrap statistics
    stratified: bool = False  # unpaired: resampled and tested within splits

    # -- the parts
    def _boot_interval(self, c: float) -> tuple[float, float] | None:
        if self.boot is None or not len(self.boot):
            return None
        lo, hi = np.percentile(self.boot, [50 * (1 - c), 50 * (1 + c)])
        return float(lo), float(hi)

    def _t_interval(self, c: float) -> tuple[float, float] | None:
        if self.t is None:
            return None
        m, se, df = self.t
        h = float(sps.t.ppf(0.5 + c / 2, df)) * se if se > 0 else 0.0
        return m - h, m + h

    def interval(self, confidence: float) -> tuple[float, float] | None:
        """Two-sided hull interval at `confidence` (pp); None without any part."""
        parts = [p for p in (self._boot_interval(confidence), self._t_interval(confidence)) if p]
        if not parts:
            return None
        return min(p[0] for p in parts), max(p[1] for p in parts)

    def _one_sided(self, theta: float) -> tuple[float, float]:
        """(p_above, p_below): p for "d > theta" and for "d < theta", each the larger over the
        parts. The c-level hull's lower end is above theta iff p_above < (1 - c) / 2."""
        above, below = [], []
        if self.boot is not None and len(self.boot):
            f_lo, f_hi = _inv_percentile(self.boot, theta)
            above.append(f_hi)
            below.append(1.0 - f_lo)
        if self.t is not None:
            m, se, df = self.t
            if se > 0:
                z = (m - theta) / se
                above.append(float(sps.t.sf(z, df)))
                below.append(float(sps.t.cdf(z, df)))
            else:
                above.append(0.0 if m > theta else 1.0)
                below.append(0.0 if m < theta else 1.0)
        if not above:
            return 1.0, 1.0
        return max(above), max(below)

    def p_above(self, theta: float = 0.0) -> float:
        return self._one_sided(theta)[0]

    def p_below(self, theta: float = 0.0) -> float:
        return self._one_sided(theta)[1]

    def p_two_sided(self, theta: float = 0.0) -> float:
        a, b = self._one_sided(theta)
        return min(1.0, 2.0 * min(a, b))

    def summary(self, confidence: float) -> dict:
        """JSON-able figures at `confidence` (unadjusted): the parts and their hull."""
        ti, bi = self._t_interval(confidence), self._boot_interval(confidence)
        out = {
            "estimate_pp": self.estimate, "n_replicates": list(self.n), "decidable": self.decidable,
            "confidence": confidence, "ci_pp": _list(self.interval(confidence)),
            "t_ci_pp": _list(ti), "boot_ci_pp": _list(bi), "p": self.p_two_sided(0.0),
            "n_boot": self.n_boot, "n_boot_valid": 0 if self.boot is None else len(self.boot),
            "se_replicates_pp": self.se_replicates, "se_bootstrap_pp": self.se_bootstrap,
            "t_df": None if self.t is None else self.t[2],
            "deciding_part": None if ti is None or bi is None else ("t" if ti[1] - ti[0] >= bi[1] - bi[0] else "bootstrap"),
            "values_pp": [list(v) for v in self.values], "p_improve": self.improve,
            "p_improve_ci": None, "dropped": [list(k) for k in self.dropped],
        }
        if self.boot_improve is not None and len(self.boot_improve):
            out["p_improve_ci"] = [float(v) for v in np.percentile(self.boot_improve,
                                                                   [50 * (1 - confidence), 50 * (1 + confidence)])]
        return out


def _list(x):
    return None if x is None else [float(v) for v in x]


# ----------------------------------------------------------------------------- bootstrap core

def _counts(rng: np.random.Generator, n_boot: int, k: int) -> np.ndarray:
    """(n_boot, k) multinomial counts of k draws with replacement from k items."""
    idx = rng.integers(0, k, size=(n_boot, k)) + k * np.arange(n_boot)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * k).reshape(n_boot, k).astype(np.float64)


def _order(reps: Sequence[Replicate]) -> list[Replicate]:
    # Input order must not change the draws: sort by (split, key).
    return sorted(reps, key=lambda r: (repr(r.split), repr(r.key)))


def _replicate_values(sides: list[list[Replicate]], n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per side, (n_boot, R) replicate values (pp) under one patient draw per split per resample."""
    members: dict[Hashable, set[str]] = {}
    for side in sides:
        for r in side:
            members.setdefault(r.split, set()).update(r.patients)
    splits = {s: sorted(members[s]) for s in sorted(members, key=repr)}
    weights = {s: _counts(rng, n_boot, len(p)) for s, p in splits.items()}
    out = []
    for side in sides:
        vals = np.empty((n_boot, len(side)))
        for j, r in enumerate(side):
            pos = {p: i for i, p in enumerate(splits[r.split])}
            w = weights[r.split][:, [pos[p] for p in r.patients]]
            num, den = w @ r.num.T, w @ r.den.T  # (n_boot, arms); integer-valued sums: exact
            with np.errstate(invalid="ignore", divide="ignore"):
                m = 100.0 * num / den
            vals[:, j] = m[:, 0] - m[:, 1] if m.shape[1] == 2 else m[:, 0]
        out.append(vals)
    return out


def _side_mean(vals: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over drawn replicates per resample, and which resamples drew an undefined value."""
    bad = np.isnan(vals)
    invalid = (bad & (counts > 0)).any(1)
    return (np.where(bad, 0.0, vals) * counts).sum(1) / counts.sum(1), invalid


def _sd(boot: np.ndarray) -> float | None:
    return float(boot.std(ddof=1)) if len(boot) >= 2 else None


def _usable(reps: Sequence[Replicate]) -> tuple[list[Replicate], tuple]:
    reps = _order(reps)
    ok = [r for r in reps if math.isfinite(r.value())]
    return ok, tuple(r.key for r in reps if not math.isfinite(r.value()))


def paired(reps: Sequence[Replicate], *, n_boot: int, seed: int) -> Evidence:
    """Paired claim evidence (arm 0 minus arm 1, pp) over replicates of two arms.

    Replicates whose metric is undefined (an empty denominator) are left out (`dropped`).
    Bootstrap resamples that draw an undefined value (a patient draw with no positive, for
    recall) are dropped; `summary` reports how many remained.
    """
    reps, dropped = _usable(reps)
    if any(r.num.shape[0] != 2 for r in reps):
        raise ValueError("paired evidence needs replicates of two arms")
    if not reps:
        raise ValueError("no replicate with a defined metric")
    d = np.array([r.value() for r in reps])
    rng = np.random.default_rng(seed)
    (vals,) = _replicate_values([reps], n_boot, rng)
    counts = _counts(rng, n_boot, len(reps))
    stat, invalid = _side_mean(vals, counts)
    # P(A > B) per resample: the drawn replicates' share of positive differences (ties half).
    win = np.where(vals > 0, 1.0, np.where(vals == 0, 0.5, 0.0))
    share = (win * counts).sum(1) / counts.sum(1)
    keep = ~invalid
    boot = np.sort(stat[keep])
    se_b = _sd(boot)
    t, se_r = None, None
    if len(d) >= 2:
        se_r = float(d.std(ddof=1)) / math.sqrt(len(d))
        t = (float(d.mean()), max(se_r, se_b or 0.0), float(len(d) - 1))
    return Evidence(
        estimate=float(d.mean()), n=(len(d),), boot=boot, n_boot=n_boot, t=t,
        decidable=len(d) >= 2, values=(tuple(float(v) for v in d),),
        improve=float(np.mean(np.where(d > 0, 1.0, np.where(d == 0, 0.5, 0.0)))),
        boot_improve=np.sort(share[keep]), dropped=dropped, se_replicates=se_r, se_bootstrap=se_b)


def single(reps: Sequence[Replicate], *, n_boot: int, seed: int) -> Evidence:
    """One cell's mean metric (pp) over 1-arm replicates, with the same two-level hull interval
    as `paired` (replicates, then patients per split; t over replicates with the larger SE)."""
    reps, dropped = _usable(reps)
    if not reps or any(r.num.shape[0] != 1 for r in reps):
        raise ValueError("single-cell evidence needs 1-arm replicates with a defined metric")
    v = np.array([r.value() for r in reps])
    rng = np.random.default_rng(seed)
    (vals,) = _replicate_values([reps], n_boot, rng)
    stat, invalid = _side_mean(vals, _counts(rng, n_boot, len(reps)))
    boot = np.sort(stat[~invalid])
    se_b = _sd(boot)
    t, se_r = None, None
    if len(v) >= 2:
        se_r = float(v.std(ddof=1)) / math.sqrt(len(v))
        t = (float(v.mean()), max(se_r, se_b or 0.0), float(len(v) - 1))
    return Evidence(estimate=float(v.mean()), n=(len(v),), boot=boot, n_boot=n_boot, t=t, decidable=len(v) >= 2,
                    values=(tuple(float(x) for x in v),), dropped=dropped, se_replicates=se_r, se_bootstrap=se_b)


def unpaired(reps_a: Sequence[Replicate], reps_b: Sequence[Replicate], *, n_boot: int, seed: int) -> Evidence:
    """Two-sample evidence for mean(B) - mean(A) (pp) of independent runs of the same cell or
    claim (1-arm or 2-arm replicates), e.g. the same study on two machines.

    Patients are drawn once per split per resample, shared by both sides where they used the
    same split: the test set is the same, so its sampling error is common to A and B. When both
    sides hold the same number of replicates of each split (and >= 2 of each), the comparison
    is stratified by split: replicates are resampled within their split and the t part is a
    Welch-Satterthwaite over the per-split differences, so split-to-split variation (real, but
    common to A and B) is not taken for noise. Otherwise: one stratum, plain Welch.
    """
    (ra, da), (rb, db) = _usable(reps_a), _usable(reps_b)
    if not ra or not rb:
        raise ValueError("unpaired evidence needs a replicate with a defined metric on each side")
    if len({r.num.shape[0] for r in ra + rb}) != 1:
        raise ValueError("both sides need replicates of the same number of arms")
    va, vb = np.array([r.value() for r in ra]), np.array([r.value() for r in rb])
    per_a, per_b = Counter(repr(r.split) for r in ra), Counter(repr(r.split) for r in rb)
    by_split = per_a == per_b and min(per_a.values()) >= 2
    sa = [repr(r.split) if by_split else "" for r in ra]
    sb = [repr(r.split) if by_split else "" for r in rb]
    rng = np.random.default_rng(seed)
    vals_a, vals_b = _replicate_values([ra, rb], n_boot, rng)
    ca, cb = _strata_counts(rng, n_boot, sa), _strata_counts(rng, n_boot, sb)
    (ma, ia), (mb, ib) = _side_mean(vals_a, ca), _side_mean(vals_b, cb)
    keep = ~(ia | ib)
    boot = np.sort((mb - ma)[keep])
    se_b = _sd(boot)
    t, se_r = None, None
    strata = sorted(set(sa))
    groups_a = [va[[k == s for k in sa]] for s in strata]
    groups_b = [vb[[k == s for k in sb]] for s in strata]
    if min(len(g) for g in groups_a + groups_b) >= 2:
        m, se_r, df = welch_strata(groups_a, groups_b)
        t = (m, max(se_r, se_b or 0.0), df)
    return Evidence(estimate=float(vb.mean() - va.mean()), n=(len(va), len(vb)), boot=boot,
                    n_boot=n_boot, t=t, decidable=t is not None,
                    values=(tuple(float(v) for v in va), tuple(float(v) for v in vb)), dropped=da + db,
                    se_replicates=se_r, se_bootstrap=se_b, stratified=by_split)


def _strata_counts(rng: np.random.Generator, n_boot: int, labels: Sequence[str]) -> np.ndarray:
    """(n_boot, R) counts: each stratum's replicates resampled with replacement among themselves."""
    out = np.zeros((n_boot, len(labels)))
    for s in sorted(set(labels)):
        cols = [i for i, k in enumerate(labels) if k == s]
        out[:, cols] = _counts(rng, n_boot, len(cols))
    return out


def unpaired_values(values_a: Sequence[float], values_b: Sequence[float]) -> Evidence:
    """Welch-only evidence for mean(B) - mean(A) of replicate-level values (pp) of a metric that
    is not a ratio of sums (ROC AUC, kappa): no bootstrap part."""
    va = np.array([v for v in values_a if v is not None and math.isfinite(v)], float)
    vb = np.array([v for v in values_b if v is not None and math.isfinite(v)], float)
    if not len(va) or not len(vb):
        raise ValueError("unpaired evidence needs a defined value on each side")
    t = welch(va, vb) if len(va) >= 2 and len(vb) >= 2 else None
    return Evidence(estimate=float(vb.mean() - va.mean()), n=(len(va), len(vb)), boot=None, n_boot=0,
                    t=t, decidable=t is not None, values=(tuple(va.tolist()), tuple(vb.tolist())),
                    se_replicates=None if t is None else t[1])


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(mean(b) - mean(a), se, Welch-Satterthwaite df); df = n_a + n_b - 2 when se is 0."""
    return welch_strata([np.asarray(a, float)], [np.asarray(b, float)])


def welch_strata(groups_a: Sequence[np.ndarray], groups_b: Sequence[np.ndarray]) -> tuple[float, float, float]:
    """Stratified Welch for mean(B) - mean(A): strata k with n_k replicates on each side (of A
    and of B; n_k may differ between strata), weight w_k = share of all replicates of A;
    se^2 = sum w_k^2 (s2_Ak / n_Ak + s2_Bk / n_Bk), Satterthwaite df (sum of the n - 2 when se is 0).
    One stratum: plain Welch."""
    na = sum(len(g) for g in groups_a)
    est, terms = 0.0, []
    for a, b in zip(groups_a, groups_b, strict=True):
        w = len(a) / na
        est += w * (b.mean() - a.mean())
        terms += [(w * w * a.var(ddof=1) / len(a), len(a) - 1), (w * w * b.var(ddof=1) / len(b), len(b) - 1)]
    var = sum(q for q, _ in terms)
    se = math.sqrt(var)
    df = var**2 / sum(q * q / d for q, d in terms if q > 0) if se > 0 else float(sum(d for _, d in terms))
    return float(est), se, float(df)


def prob_improvement(values_a: Sequence[float], values_b: Sequence[float]) -> float:
    """P(A > B) over paired replicates, ties one half (Bouthillier et al. 2021)."""
    a, b = np.asarray(values_a, float), np.asarray(values_b, float)
    return float(np.mean(np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))))


def bh(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control); None stays
    None and is not counted as a test."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    if idx:
        adj = sps.false_discovery_control([float(pvalues[i]) for i in idx], method="bh")
        for i, q in zip(idx, np.atleast_1d(adj), strict=True):
            out[i] = float(q)
    return out
