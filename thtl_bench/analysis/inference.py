"""Replicate-level inference for claims, cells and compare (numpy/scipy only).

A *replicate* is one training run evaluated on one patient split: a (seed, split seed) pair. On
its test split each sample has a patient id and, per arm, a numerator and a denominator
(accuracy: correct / 1; malignant recall: correct & malignant / malignant; `metric_parts`). The
metric of an arm in a replicate is sum(num) / sum(den) over its test samples; a paired claim's
per-replicate value d_r is metric_A - metric_B in percentage points (pp).

**The rule** (docs/study.md gives the reasons; `Evidence` carries every part):

- *Units.* Replicates are grouped by their split: a unit is one patient split, its value the mean
  of its replicates' d_r. The estimate is the mean over the U units (the diagonal designs run one
  seed per split, so a unit is a replicate).
- *Variance, each component once.* Var(estimate) = s_u^2 / U + sigma_sys^2 / N.
  - s_u^2, the sample variance of the unit values. Every unit was trained and tested on its own
    split, so its value already carries the training noise *and* the test-patient sampling
    within the data set: nothing is resampled a second time.
  - sigma_sys^2 / N, what repeated splits of one data set of N patients share and their spread
    cannot show (Nadeau & Bengio 2003): the systematic part of each patient's contribution
    (the part a patient brings whatever the run: hard for arm A, easy for B) averages over the N
    patients of the data set, not over fresh ones. A patient's linearised contribution a_jr to
    d_r (delta method for a ratio of sums) is the same systematic part plus run noise, and run
    noise is independent between runs, so the mean of a_jr * a_jr' over patients found in the
    test sets of two replicates r != r' estimates sigma_sys^2 (method of moments, clipped at 0).
    It matters little for 3 replicates and decides the precision for 20: without it, a mean over
    many splits of one data set claims a precision the data set does not have.
- *Interval and tests.* estimate +- t(df) * se with the Welch-Satterthwaite df of the two terms
  (U - 1 for the first; the number of patients whose pairs estimate the second, minus 1, for the
  second: 2 s^4 / Var(s^2) of its moment estimate, the patients as clusters). P-values are the
  same t's, so an interval and its test never disagree. At least two
  units are needed (`decidable`): one split holds the trained models and the patients fixed.

The calibration of this rule (false decisions near the nominal rate, coverage, power) is
measured by simulation at the real design in benchmarks/test_calibration.py
(thtl_bench.analysis.calibration), not assumed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

RATIO_METRICS = ("accuracy", "recall", "specificity", "precision", "f1")


# ----------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Replicate:
    """One (seed, split_seed) run reduced to per-patient sums.

    `num`, `den`: (arms, patients) sums over each patient's test samples; 2 arms for a paired
    claim (value = metric_0 - metric_1), 1 arm for a single cell metric (value = metric_0), or
    any number of arms with contrast `weights` (value = sum_k w_k metric_k; e.g. (1, -1, -1, 1)
    for an interaction: a difference of two differences).
    `patients`: the patient ids (strings from records; any sortable ids, e.g. integers in
    simulations), one per column.
    `split` names the test split (replicates with the same split form one unit); `pool` is the
    number of patients in the data set the split was drawn from (None: unknown, then the shared
    patient term is left out and `Evidence.note` says so).
    """

    key: tuple
    split: Hashable
    patients: Sequence
    num: np.ndarray
    den: np.ndarray
    pool: int | None = None
    strata: np.ndarray | None = None  # per patient: its class (splits are stratified by class)
    weights: tuple[float, ...] | None = None  # contrast over the arms; None: (1,) or (1, -1)

    @property
    def w(self) -> np.ndarray:
        if self.weights is not None:
            return np.asarray(self.weights, np.float64)
        return np.array([1.0]) if self.num.shape[0] == 1 else np.array([1.0, -1.0])

    def value(self) -> float:
        """The replicate's metric (1 arm) or metric difference (2 arms) in pp; NaN if undefined."""
        return self._value

    @functools.cached_property
    def _value(self) -> float:
        n, d = self.num.sum(1), self.den.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = 100.0 * n / d
        return float(self.w @ m) if np.all(np.isfinite(m)) else math.nan

    def contributions(self) -> np.ndarray:
        return self._contributions

    @functools.cached_property
    def _contributions(self) -> np.ndarray:
        """Per patient, the linearised contribution (pp) to `value()` minus its mean: for a ratio
        of sums m = sum(num) / sum(den) over n patients, (num_j - m den_j) / mean(den) (delta
        method); for two arms, arm 0's minus arm 1's. They sum to 0; their variance / n is the
        patient-sampling variance of the value with the trained models held fixed."""
        n = self.num.shape[1]
        tot_n, tot_d = self.num.sum(1), self.den.sum(1)
        m = tot_n / tot_d
        z = 100.0 * (self.num - m[:, None] * self.den) / (tot_d[:, None] / n)
        return self.w @ z

    def centred(self) -> np.ndarray:
        """`contributions()` centred within each class stratum: the splits are stratified, so the
        classes' mean contributions never vary between splits and are no patient-sampling noise."""
        z = self.contributions()
        return centre_within(z, np.zeros(len(z)) if self.strata is None else np.asarray(self.strata))

    def identical(self) -> bool:
        """Whether the two arms made the same predictions (per patient the same sums): a
        structural zero, no sampling draw (SWFT that selected its head-only step is THTL
        last-layer retrained)."""
        return self.num.shape[0] == 2 and self.weights is None and bool(
            np.array_equal(self.num[0], self.num[1]) and np.array_equal(self.den[0], self.den[1]))

    def within_var(self) -> float:
        """Patient-cluster variance of `value()` given the trained models (pp^2)."""
        z = self.contributions()
        n = len(z)
        return float((z**2).sum() / (n * (n - 1))) if n > 1 else math.nan


def centre_within(z: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """`z` minus its mean within each stratum, scaled by sqrt(n_s / (n_s - 1)) (n_s patients in
    the stratum; the usual finite-sample factor of a variance from centred values). Centring on a
    few patients shrinks each value by about 1 - 1/n_s while the overlap of two test sets adds
    back part of it; with this factor the products of two replicates' values estimate the shared
    variance without a visible bias (checked by simulation at the smoke design: docs/study.md)."""
    keys, inv = np.unique(strata, return_inverse=True)
    n = np.bincount(inv, minlength=len(keys)).astype(np.float64)
    means = np.bincount(inv, weights=z, minlength=len(keys)) / n
    scale = np.where(n > 1, np.sqrt(n / np.maximum(n - 1, 1)), 0.0)
    return (z - means[inv]) * scale[inv]


def replicate(key: tuple, groups: Sequence, num, den, split: Hashable | None = None,
              pool: int | None = None, labels: Sequence | None = None) -> Replicate:
    """A Replicate from per-sample arrays: `groups` (n,) patient ids (str or int; kept as str),
    `num` (n,) or (arms, n), `den` (n,) shared by the arms or (arms, n). `split` names the test
    split and defaults to key[1] (the split seed); `pool`: patients in the data set; `labels`
    (n,): each sample's class (a patient's class is its first sample's), the split's strata."""
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
    strata = None
    if labels is not None:
        first = np.zeros(len(patients), np.int64)
        first[inv[::-1]] = np.arange(len(inv))[::-1]
        strata = np.asarray(labels)[first]
    return Replicate(tuple(key), key[1] if split is None else split, tuple(str(p) for p in patients.tolist()),
                     sums[0], sums[1], None if pool is None else int(pool), strata)


def aligned_replicate(key: tuple, metric: str, arms: Sequence[dict], positive: int = 1,
                      split: Hashable | None = None, pool: int | None = None,
                      weights: Sequence[float] | None = None) -> Replicate:
    """The Replicate of one (seed, split_seed) from each arm's per-sample test predictions.

    `arms`: one dict per arm (1 for a cell, 2 for a claim: A then B, or more with contrast
    `weights`) with equal-length "ids",
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
    r = replicate(key, ref["patients"], np.stack(nums), den, split=split, pool=pool, labels=ref["labels"])
    return r if weights is None else dataclasses.replace(r, weights=tuple(float(w) for w in weights))


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

@dataclass(frozen=True)
class Evidence:
    """What a decision rests on: the estimate (pp), its standard error and t degrees of freedom,
    and the parts (see the module docstring). Intervals and p-values are the t's."""

    estimate: float
    n: tuple[int, ...]  # replicates per side (paired and single: one side)
    units: int  # splits (units of the t)
    se: float | None  # None: fewer than 2 units
    df: float | None
    decidable: bool
    values: tuple[tuple[float, ...], ...] = ()  # replicate-level values per side (pp)
    improve: float | None = None  # paired: P(A > B) over replicates, ties one half
    dropped: tuple = ()  # replicate keys left out (undefined metric)
    se_units: float | None = None  # sqrt(s_u^2 / U)
    se_shared: float | None = None  # sqrt(sigma_sys^2 / N): the data set's shared patients
    sigma_sys: float | None = None  # per-patient systematic SD (pp) behind se_shared
    within_se: tuple[float, ...] = ()  # per replicate: patient-sampling SE with the models fixed (pp)
    pool: int | None = None  # N, patients in the data set
    pairs: int = 0  # (patient, replicate pair) products behind sigma_sys
    note: str = ""

    def interval(self, confidence: float) -> tuple[float, float] | None:
        """Two-sided t-interval at `confidence` (pp); None when not decidable."""
        if self.se is None or self.df is None:
            return None
        # scipy.special.stdtrit is scipy.stats.t.ppf without the distribution machinery (the
        # calibration runs this millions of times)
        h = float(special.stdtrit(self.df, 0.5 + confidence / 2)) * self.se if self.se > 0 else 0.0
        return self.estimate - h, self.estimate + h

    def _one_sided(self, theta: float) -> tuple[float, float]:
        """(p for "d > theta", p for "d < theta"); 1, 1 when not decidable."""
        if self.se is None or self.df is None:
            return 1.0, 1.0
        if self.se > 0:
            z = (self.estimate - theta) / self.se
            return float(special.stdtr(self.df, -z)), float(special.stdtr(self.df, z))
        return (0.0 if self.estimate > theta else 1.0), (0.0 if self.estimate < theta else 1.0)

    def p_above(self, theta: float = 0.0) -> float:
        return self._one_sided(theta)[0]

    def p_below(self, theta: float = 0.0) -> float:
        return self._one_sided(theta)[1]

    def p_two_sided(self, theta: float = 0.0) -> float:
        a, b = self._one_sided(theta)
        return min(1.0, 2.0 * min(a, b))

    def summary(self, confidence: float) -> dict:
        """JSON-able figures at `confidence` (unadjusted)."""
        return {
            "estimate_pp": self.estimate, "n_replicates": list(self.n), "units": self.units,
            "decidable": self.decidable, "confidence": confidence, "ci_pp": _list(self.interval(confidence)),
            "se_pp": self.se, "df": self.df, "p": self.p_two_sided(0.0) if self.decidable else None,
            "se_units_pp": self.se_units, "se_shared_pp": self.se_shared, "sigma_sys_pp": self.sigma_sys,
            "within_se_pp": list(self.within_se), "pool_patients": self.pool, "pool_pairs": self.pairs,
            "values_pp": [list(v) for v in self.values], "p_improve": self.improve,
            "dropped": [list(k) for k in self.dropped], "note": self.note,
        }


def _list(x):
    return None if x is None else [float(v) for v in x]


def _usable(reps: Sequence[Replicate]) -> tuple[list[Replicate], tuple]:
    # Input order must not change anything: sort by (split, key).
    reps = sorted(reps, key=lambda r: (repr(r.split), repr(r.key)))
    ok = [r for r in reps if math.isfinite(r.value())]
    return ok, tuple(r.key for r in reps if not math.isfinite(r.value()))


def shared_patient_variance(contrib: np.ndarray, patients: np.ndarray) -> tuple[float, int, int, float]:
    """(sigma_sys^2 in pp^2, products, patients, df) from the flat per-patient contributions of all
    replicates (`Replicate.centred`, concatenated) and their patient ids: the mean over patients j
    found in the test sets of two replicates r != r' of a_jr * a_jr', clipped at 0, and the
    degrees of freedom of that estimate (2 s^4 / Var(s^2), Var from the patients as clusters of
    products, at most patients - 1, at least 1).

    A patient is in a replicate's test set once, so every pair of one patient's entries comes from
    two replicates. Run noise is independent between runs: only the part of a patient's
    contribution that every run shares survives the product. (0, 0, 0, 0) when no patient is in
    two test sets."""
    ids, inv = np.unique(patients, return_inverse=True)
    s1 = np.bincount(inv, weights=contrib, minlength=len(ids))  # per patient: sum over its replicates
    s2 = np.bincount(inv, weights=contrib**2, minlength=len(ids))
    m = np.bincount(inv, minlength=len(ids))  # replicates whose test set holds the patient
    c = m * (m - 1) // 2  # products per patient
    count = int(c.sum())
    if not count:
        return 0.0, 0, 0, 0.0
    # sum over unordered pairs r < r' of a_jr a_jr' = ((sum_r a_jr)^2 - sum_r a_jr^2) / 2
    per = (s1**2 - s2) / 2.0
    est = float(per.sum() / count)
    shared = int((m >= 2).sum())
    var = float(((per - est * c) ** 2).sum()) / count**2  # ratio-estimator variance, patients as clusters
    df = min(max(1.0, 2.0 * est**2 / var), max(1.0, shared - 1.0)) if var > 0 else max(1.0, shared - 1.0)
    return max(0.0, est), count, shared, df


def combine(reps: Sequence[Replicate]) -> Evidence:
    """The rule of the module docstring over replicates of one or two arms (all alike)."""
    reps, dropped = _usable(reps)
    if not reps:
        raise ValueError("no replicate with a defined metric")
    if len({(r.num.shape[0], tuple(r.w)) for r in reps}) != 1:
        raise ValueError("replicates of different arms or contrasts cannot be combined")
    pools = {r.pool for r in reps}
    pool = pools.pop() if len(pools) == 1 else None
    two = reps[0].num.shape[0] >= 2
    ev = from_arrays(np.array([r.value() for r in reps]), [repr(r.split) for r in reps],
                     np.concatenate([r.centred() for r in reps]),
                     np.concatenate([np.asarray(r.patients) for r in reps]), pool, paired=two,
                     identical=np.array([two and r.identical() for r in reps]),
                     owner=np.repeat(np.arange(len(reps)), [len(r.patients) for r in reps]))
    within = tuple(math.sqrt(w) if math.isfinite(w := r.within_var()) else math.nan for r in reps)
    note = ev.note or ("" if pool is not None else "the data set's patient count is not on record (or differs "
                       "between replicates): the shared patient term is left out")
    return dataclasses.replace(ev, dropped=dropped, within_se=within, note=note)


def from_arrays(values: np.ndarray, splits: Sequence, contrib: np.ndarray, patients: np.ndarray,
                pool: int | None, *, paired: bool = True, identical: np.ndarray | None = None,
                owner: np.ndarray | None = None) -> Evidence:
    """The rule on arrays: per replicate its value (pp), split and whether its two arms predicted
    alike; the flat per-patient contributions of all replicates (centred within class strata:
    Replicate.centred) with their patient ids and `owner` (the replicate of each entry; needed
    with `identical`); the data set's patient count. One study of `rule_batch`, the one
    implementation: `combine` (records) and the calibration simulations (thtl_bench.analysis.
    simulate) both come there.

    A unit whose replicates all predicted alike is a structural zero: it enters the estimate as 0
    but no variance (it is no draw of the difference's noise). With U units of which k differ the
    estimate is (k / U) x the mean of the k, and its variance (k / U)^2 x (s_k^2 / k + sigma_sys^2 / N):
    the t conditions on which units predicted alike (fixed by validation, not by the test
    split), so zeros do not make it conservative. At least two differing units are needed."""
    values = np.asarray(values, np.float64)
    keys, unit_of = np.unique(np.asarray(splits), return_inverse=True)
    ids, pid = np.unique(np.asarray(patients), return_inverse=True)
    same = np.zeros(len(values), bool) if identical is None else np.asarray(identical, bool)
    own = np.zeros(len(pid), np.int64) if owner is None else np.asarray(owner)
    r = rule_batch(values[None], unit_of, np.asarray(contrib, np.float64)[None], pid[None], len(ids), pool,
                   same[None], own)
    u, k = len(keys), int(r["k"][0])
    improve = float(np.mean(np.where(values > 0, 1.0, np.where(values == 0, 0.5, 0.0)))) if paired else None
    note = "" if k == u else f"{u - k} of {u} split unit(s) with identical predictions of the two arms: structural zeros"
    if u >= 2 and k == 1:
        note += "; fewer than two split units where the arms differ: no variance to judge the difference by"
    base = dict(estimate=float(r["estimate"][0]), n=(len(values),), units=u, values=(tuple(values.tolist()),),
                improve=improve, pool=pool, note=note)
    if not r["decidable"][0]:
        return Evidence(se=None, df=None, decidable=False, **base)
    return Evidence(se=float(r["se"][0]), df=float(r["df"][0]), decidable=True, se_units=float(r["se_units"][0]),
                    se_shared=float(r["se_shared"][0]), sigma_sys=float(r["sigma_sys"][0]), pairs=int(r["pairs"][0]),
                    **base)


def rule_batch(values: np.ndarray, unit_of: np.ndarray, contrib: np.ndarray, pid: np.ndarray, n_patients: int,
               pool: int | None, identical: np.ndarray, owner: np.ndarray) -> dict[str, np.ndarray]:
    """The rule for B studies of one layout at once (arrays, no Python loop over studies):
    `values` (B, R) per replicate; `unit_of` (R,) each replicate's split unit 0..U-1; `contrib` and
    `pid` (B, M): the flat, stratum-centred per-patient contributions and their patient index in
    0..n_patients-1; `identical` (B, R); `owner` (M,) each entry's replicate. Returns arrays (B,):
    estimate, se, df, decidable, se_units, se_shared, sigma_sys, pairs, k (differing units).
    `from_arrays` is the one-study case; the calibration runs thousands of studies through here."""
    values = np.asarray(values, np.float64)
    b_n, _ = values.shape
    u = int(unit_of.max()) + 1
    onehot = np.zeros((len(unit_of), u))
    onehot[np.arange(len(unit_of)), unit_of] = 1.0
    per_unit = onehot.sum(0)
    units = values @ onehot / per_unit  # (B, U)
    live_count = (~identical).astype(np.float64) @ onehot  # differing replicates per unit
    live = live_count > 0  # (B, U)
    k = live.sum(1)
    estimate = units.mean(1)
    # variance of the differing units' values (ddof 1), per study
    kk = np.maximum(k, 1)
    mean_live = np.where(live, units, 0.0).sum(1) / kk
    ss = np.where(live, (units - mean_live[:, None]) ** 2, 0.0).sum(1)
    var_live = ss / np.maximum(k - 1, 1)
    w = k / u
    a = w * w * var_live / kk
    # the shared-patient term, over the differing replicates' patients
    keep = ~identical[:, owner]  # (B, M)
    x = np.where(keep, contrib, 0.0)
    flat = (np.arange(b_n)[:, None] * n_patients + pid).ravel()
    size = b_n * n_patients
    s1 = np.bincount(flat, weights=x.ravel(), minlength=size).reshape(b_n, n_patients)
    s2 = np.bincount(flat, weights=(x**2).ravel(), minlength=size).reshape(b_n, n_patients)
    m = np.bincount(flat, weights=keep.ravel().astype(np.float64), minlength=size).reshape(b_n, n_patients)
    c = m * (m - 1) / 2.0
    count = c.sum(1)
    per = (s1**2 - s2) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        est_s = np.where(count > 0, per.sum(1) / np.maximum(count, 1), 0.0)
        var_s = ((per - est_s[:, None] * c) ** 2).sum(1) / np.maximum(count, 1) ** 2
        shared = (m >= 2).sum(1)
        cap = np.maximum(1.0, shared - 1.0)
        df_b = np.where(var_s > 0, np.minimum(np.maximum(1.0, 2.0 * est_s**2 / np.where(var_s > 0, var_s, 1.0)), cap),
                        cap)
    sys2 = np.where(count > 0, np.maximum(est_s, 0.0), 0.0) if pool else np.zeros(b_n)
    b = w * w * sys2 / pool if pool else np.zeros(b_n)
    var = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(a > 0, a * a / np.maximum(k - 1, 1), 0.0) + np.where(b > 0, b * b / df_b, 0.0)
        df = np.where(var > 0, var**2 / np.where(terms > 0, terms, 1.0), np.maximum(k - 1, 1).astype(float))
    df = np.where(k == 0, float(u - 1), df)
    decidable = (u >= 2) & (k != 1)
    se = np.where(decidable, np.sqrt(var), np.nan)
    return {"estimate": estimate, "se": se, "df": np.where(decidable, df, np.nan), "decidable": decidable,
            "se_units": np.sqrt(a), "se_shared": np.sqrt(b), "sigma_sys": np.sqrt(sys2),
            "pairs": count.astype(np.int64), "k": k}


def paired(reps: Sequence[Replicate]) -> Evidence:
    """Paired claim evidence (arm 0 minus arm 1, or a contrast of several arms: pp) over
    replicates of two or more arms. Replicates whose metric is undefined (an empty denominator)
    are left out (`dropped`)."""
    if any(r.num.shape[0] < 2 for r in reps):
        raise ValueError("paired evidence needs replicates of two arms or more")
    return combine(reps)


def single(reps: Sequence[Replicate]) -> Evidence:
    """One cell's mean metric (pp) over one-arm replicates, by the same rule."""
    if any(r.num.shape[0] != 1 for r in reps):
        raise ValueError("single-cell evidence needs one-arm replicates")
    return combine(reps)


def paired_values(values_a: Sequence[float | None], values_b: Sequence[float | None]) -> Evidence:
    """Evidence for mean(A - B) (pp) of per-replicate values paired by position (a metric that is
    not a ratio of sums, e.g. ROC AUC, or a side without per-sample predictions): the t over
    replicates; no shared patient term (no patient-level data)."""
    pairs = [(a, b) for a, b in zip(values_a, values_b, strict=True)
             if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    d = np.array([a - b for a, b in pairs], float)
    if not len(d):
        raise ValueError("no replicate has a defined value on both sides")
    base = dict(estimate=float(d.mean()), n=(len(d),), units=len(d), values=(tuple(d.tolist()),),
                improve=float(np.mean(np.where(d > 0, 1.0, np.where(d == 0, 0.5, 0.0)))),
                note="no per-sample predictions: t over replicate values, no shared patient term")
    if len(d) < 2:
        return Evidence(se=None, df=None, decidable=False, **base)
    se = float(d.std(ddof=1)) / math.sqrt(len(d))
    return Evidence(se=se, df=float(len(d) - 1), decidable=True, se_units=se, **base)


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
