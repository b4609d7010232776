"""Transferability scores and domain distances for ranking intermediate domains (numpy, scipy, sklearn).

The running side extracts, from the step-1 network (ImageNet -> intermediate domain), its outputs on
the TARGET (larynx) training split and calls the pure functions here; nothing is trained:

- features ``(N, D)`` (penultimate layer, after global pooling) -> `logme`, `hscore`;
- source-task softmax ``(N, Z)`` over the intermediate domain's classes -> `leep`; its argmax -> `nce`;
- ImageNet-feature sets of intermediate and target images -> `frechet_distance`, `mmd`;
- per (domain, model) score vs measured THTL gain: `analysis.rankcorr.kendall_tau`.

Every score is "higher = more transferable"; every distance is "lower = closer" (`SCORES`,
`DISTANCES`). No torch import: the reporting side imports this module too.

Where a maintained implementation exists it was read and used as the test reference (numbers only,
tests/test_transferability.py): thuml/LogME (LogME, LEEP, NCE), thuml/Transfer-Learning-Library
``tllib/ranking`` (H-score, regularised H-score), mseitzer/pytorch-fid (Fréchet distance). The
Ledoit-Wolf shrinkage is scikit-learn's own (``sklearn.covariance.ledoit_wolf_shrinkage``). No
maintained PyPI package offers the scores as numpy functions: LogME and tllib are not on PyPI (its
``logme`` is a logging package) and need numba; pytorch-fid 0.3.0 (2023) and torch-fidelity import
torch, and pytorch-fid calls ``sqrtm(disp=False)``, deprecated in scipy 1.16 and due to go in 1.18.
So those formulas are here.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import linalg

from thtl_bench.errors import UserError

# ----------------------------------------------------------------------------- input checks


def _matrix(x: Any, name: str, *, min_rows: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise UserError(f"{name}: expected a 2-D array (N, D), got shape {a.shape}; "
                        "flatten the pooled features to one row per image")
    if a.shape[0] < min_rows or a.shape[1] < 1:
        raise UserError(f"{name}: needs at least {min_rows} rows and 1 column, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise UserError(f"{name}: contains NaN or inf; check the feature extraction (mixed precision "
                        "overflow?) before scoring")
    return a


def _labels(y: Any, n: int, name: str = "labels", *, min_classes: int = 2) -> tuple[np.ndarray, int]:
    """Integer labels of any values -> codes 0..C-1 (sorted order) and C."""
    a = np.asarray(y)
    if a.ndim != 1 or len(a) != n:
        raise UserError(f"{name}: expected shape ({n},) (one label per row), got {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise UserError(f"{name}: labels must be integers (class indices), got non-integer values")
    elif a.dtype.kind not in "iub":
        raise UserError(f"{name}: labels must be integers (class indices), got dtype {a.dtype}")
    classes, codes = np.unique(a, return_inverse=True)
    if len(classes) < min_classes:
        raise UserError(f"{name}: needs at least {min_classes} distinct classes, got {len(classes)}; "
                        "score on a split that holds every target class")
    return codes.reshape(-1), len(classes)


def _rank_tol(s: np.ndarray, shape: tuple[int, int]) -> float:
    """numpy.linalg.matrix_rank's default tolerance on singular values."""
    return float(s.max(initial=0.0)) * max(shape) * np.finfo(np.float64).eps


# ----------------------------------------------------------------------------- LogME


def logme(features: Any, labels: Any, *, tol: float = 1e-10, max_iter: int = 1000,
          t_range: float = 1e12) -> float:
    r"""LogME: mean over classes of the per-sample log maximum evidence (You et al., ICML 2021).

    For each class c, with the one-vs-rest target y = 1[label = c] and the Bayesian linear model
    y = F w + e, w ~ N(0, alpha^-1 I_D), e ~ N(0, beta^-1 I_N) (F the raw N x D features, no bias,
    as in the paper), the evidence is the Gaussian marginal likelihood

        log p(y | alpha, beta) = log N(y | 0, beta^-1 I + alpha^-1 F F^T)
          = D/2 log alpha + N/2 log beta - 1/2 log|A| - beta/2 ||y - F m||^2 - alpha/2 m^T m
            - N/2 log 2 pi,    A = alpha I + beta F^T F,  m = beta A^-1 F^T y,

    maximised over (alpha, beta) by MacKay's fixed point (the paper's Algorithm 1, started at
    alpha = beta = 1): gamma = sum_i sigma_i / (sigma_i + t), alpha = gamma / m^T m,
    beta = (N - gamma) / ||y - F m||^2, t = alpha / beta, until |dt| <= tol t. LogME =
    mean_c (max evidence / N); higher = more transferable.

    Computation: one thin SVD F = U diag(s) V^T (sigma = s^2 > the numpy rank tolerance, k of
    them), x = U^T y, res0 = ||y - U x||^2; each iteration is O(k) in r = sigma / (sigma + t)
    and q = t / (sigma + t), which neither overflow nor cancel. The D - k zero eigenvalues of
    F^T F add log alpha each to log|A|, so the evidence is
    N/2 log beta - 1/2 sum_i log(1 + sigma_i / t) - beta/2 (sum_i x_i^2 q_i + res0) - N/2 log 2 pi,
    algebraically the formula above and right for N < D, where thuml/LogME's ``_fit_fixed_point``
    (You et al., JMLR 2022) is not (its issue #23). Its ``_fit_icml`` (full D x D SVD), run to
    |d lambda| / lambda < 1e-13 without its 1e-5 epsilon, agrees with this function to 1e-10
    where the maximum is interior; with its defaults (at most 11 steps, stop at 1 % change) it can
    stop well short (0.607 vs 0.681 on a test case). No epsilon is added here.
    The evidence is evaluated at the final t with the best beta for it, N / Q(t) (Q(t) =
    y^T (I + F F^T / t)^-1 y), which is MacKay's beta at a fixed point and never below it.

    Two guards for the N < D regime of this study, where the evidence can be multimodal in t and
    its maximum can lie on a boundary (alpha -> inf: the features explain nothing beyond noise;
    beta -> inf: exact interpolation, possible when k = N): t is held within
    [min sigma / t_range, max sigma * t_range], where the evidence is at its limit to ~1/t_range;
    and the profile evidence is also evaluated on a log grid of t (2 points a decade), and if a
    grid point beats the fixed point reached from the paper's start the iteration is restarted
    there, so a local maximum is not reported as the maximum evidence.

    Args: features (N, D) float, labels (N,) integer class indices (>= 2 classes).
    Returns: LogME; comparable across networks only on the same images and labels.
    """
    f = _matrix(features, "features")
    codes, n_classes = _labels(labels, f.shape[0])
    if max_iter < 1 or tol <= 0 or t_range <= 1:
        raise UserError(f"logme: need max_iter >= 1, tol > 0 and t_range > 1, got {max_iter}, {tol}, "
                        f"{t_range}")
    n = f.shape[0]
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > _rank_tol(s, f.shape)
    if not keep.any():
        raise UserError("features: all zero (rank 0); LogME needs informative features")
    u, sigma = u[:, keep], s[keep] ** 2
    k = len(sigma)
    t_lo, t_hi = float(sigma.min()) / t_range, float(sigma.max()) * t_range
    grid = np.geomspace(t_lo, t_hi, 2 * math.ceil(math.log10(t_hi / t_lo)) + 1)  # 2 points a decade
    evidences = []
    for c in range(n_classes):
        y = (codes == c).astype(np.float64)
        x = u.T @ y
        x2 = x**2
        # ||y||^2 outside span(U), from the residual vector (not ||y||^2 - ||x||^2, whose rounding
        # would put a false floor under the residual and stop the beta -> inf climb); 0 if k = N.
        res0 = 0.0 if k == n else float(((y - u @ x) ** 2).sum())

        def profile(t: np.ndarray, x2: np.ndarray = x2, res0: float = res0) -> np.ndarray:
            """Evidence / N at t = alpha / beta and the best beta for it, N / Q(t)."""
            t = np.asarray(t, dtype=np.float64)[..., None]
            quad = (x2 / (1 + sigma / t)).sum(axis=-1) + res0  # Q(t) = y^T (I + F F^T / t)^-1 y
            return (n / 2 * np.log(n / quad) - 0.5 * np.log1p(sigma / t).sum(axis=-1)
                    - n / 2 * (1 + math.log(2 * math.pi))) / n

        def climb(t: float, x2: np.ndarray = x2, res0: float = res0) -> float:
            """MacKay's fixed point in t = alpha / beta, from t."""
            for _ in range(max_iter):
                r, q = sigma / (sigma + t), t / (sigma + t)
                gamma, rest = float(r.sum()), float(q.sum()) + (n - k)  # gamma and N - gamma
                m2 = float((x2 * r**2 / sigma).sum())  # m^T m
                res2 = float((x2 * q**2).sum()) + res0  # ||y - F m||^2
                with np.errstate(divide="ignore", invalid="ignore"):
                    t_new = np.float64(gamma * res2) / np.float64(rest * m2)
                t_new = t_hi if not np.isfinite(t_new) else min(max(float(t_new), t_lo), t_hi)
                done = abs(t_new - t) <= tol * t
                t = t_new
                if done:
                    break
            return t

        best = float(profile(climb(1.0)))  # the paper's start, alpha = beta = 1
        on_grid = profile(grid)
        if on_grid.max() > best:  # the evidence has another, higher maximum: climb from there too
            best = max(best, float(profile(climb(float(grid[np.argmax(on_grid)])))))
        evidences.append(best)
    return float(np.mean(evidences))


# ----------------------------------------------------------------------------- LEEP and NCE


def leep(source_probs: Any, labels: Any, *, atol: float = 1e-4) -> float:
    r"""LEEP (Nguyen et al., ICML 2020): log expected empirical prediction.

    With theta(x_i) the source-task softmax (rows of ``source_probs``, Z source classes):
    empirical joint P(y, z) = 1/N sum_{i: y_i = y} theta(x_i)_z, P(z) = sum_y P(y, z),
    conditional P(y | z) = P(y, z) / P(z), and

        LEEP = 1/N sum_i log( sum_z P(y_i | z) theta(x_i)_z )   (<= 0; higher = more transferable).

    A source class with P(z) = 0 has theta_z = 0 for every image and drops out. Equal to
    thuml/LogME ``LEEP.py``. Rows must be probabilities (softmax, not logits): sum to 1 within
    ``atol``.
    """
    p = _matrix(source_probs, "source_probs", min_rows=1)
    codes, n_classes = _labels(labels, p.shape[0], min_classes=1)
    if (p < 0).any() or np.abs(p.sum(axis=1) - 1.0).max() > atol:
        raise UserError("source_probs: rows must be probabilities that sum to 1 (apply softmax to the "
                        "step-1 network's source-task logits)")
    n = p.shape[0]
    joint = np.zeros((n_classes, p.shape[1]))
    np.add.at(joint, codes, p / n)
    pz = joint.sum(axis=0)
    cond = np.divide(joint, pz, out=np.zeros_like(joint), where=pz > 0)  # P(y | z), (C_t, Z)
    eep = np.einsum("iz,iz->i", p, cond[codes])
    return float(np.mean(np.log(eep)))


def nce(source_pred: Any, labels: Any) -> float:
    r"""NCE (Tran et al., ICCV 2019): negative conditional entropy -H(Y | Z).

    Z = the source-task label predicted for each target image (argmax of the step-1 softmax),
    Y = its target label; with the empirical joint P(y, z) = #{i: y_i = y, z_i = z} / N,

        NCE = sum_{y,z} P(y, z) log P(y | z)    (<= 0, 0 log 0 = 0; higher = more transferable).

    Equal to thuml/LogME ``NCE.py`` (which adds 1e-20 inside the log).
    """
    z = np.asarray(source_pred)
    if z.ndim != 1 or len(z) < 1:
        raise UserError(f"source_pred: expected shape (N,) (argmax of the source softmax), got {z.shape}")
    zc, n_source = _labels(z, len(z), "source_pred", min_classes=1)
    yc, n_classes = _labels(labels, len(zc), min_classes=1)
    joint = np.zeros((n_classes, n_source))
    np.add.at(joint, (yc, zc), 1.0 / len(zc))
    pz = joint.sum(axis=0)
    cond = np.divide(joint, pz, out=np.ones_like(joint), where=joint > 0)
    return float((joint * np.log(cond)).sum())


# ----------------------------------------------------------------------------- H-score


def ledoit_wolf_shrinkage(features: Any) -> float:
    """Ledoit-Wolf (J. Multivariate Anal. 2004) shrinkage of the ML covariance towards mu I:
    scikit-learn's ``sklearn.covariance.ledoit_wolf_shrinkage`` on the features (centred there),
    so the coefficient is the library's, in [0, 1] (0 when the covariance is already mu I).
    Imported here, not at the top: the reporting side imports this module and never calls it."""
    from sklearn.covariance import ledoit_wolf_shrinkage as sk_shrinkage

    return float(sk_shrinkage(_matrix(features, "features")))


def hscore(features: Any, labels: Any, *, shrinkage: str | float | None = "ledoit-wolf") -> float:
    r"""H-score (Bao et al., ICIP 2019) and its shrinkage form (Ibrahim, Ponomareva & Mazumder,
    "Newer is not always better: rethinking transferability metrics, their peculiarities,
    stability and performance", arXiv:2110.06893).

        H = tr( cov(f)^-1 cov(E[f | y]) ),      H_a = tr( cov_a(f)^-1 (1 - a) cov(E[f | y]) ),
        cov_a(f) = (1 - a) cov(f) + a mu I,   mu = tr cov(f) / D,

    cov = maximum-likelihood covariance (1/N), E[f | y] = the class mean of each image's class.
    Computed as (1 - a) sum_c p_c mu_c^T cov_a^-1 mu_c over the centred class means mu_c (priors
    p_c), in the SVD basis of the centred features (the mu_c lie in their row space), O(N D k).

    ``shrinkage``: "ledoit-wolf" (default; a = `ledoit_wolf_shrinkage`), a float a in [0, 1], or
    None (a = 0: Bao's H-score, cov(f)^-1 read as the pseudo-inverse on the numerical rank).
    The default is shrinkage because the step-1 features have D = 1280-2048 dimensions and the
    larynx training split N of a few hundred images: cov(f) has rank <= N - 1 < D, and when the
    centred features span all N - 1 directions Bao's H-score is exactly C - 1 whatever the features
    (the pseudo-inverse then whitens the centring projection), so it cannot rank anything; Ibrahim et
    al. show the unregularised score is unstable in this regime. Ledoit-Wolf needs no tuning.

    References: a = 0 equals tllib ``h_score`` (where its pinv is well conditioned); the
    Ledoit-Wolf form equals tllib ``regularized_h_score`` x (N - 1) / N, as tllib takes the 1/N
    covariance for cov_a(f) but the 1/(N - 1) one for cov(E[f | y]).
    """
    f = _matrix(features, "features")
    codes, n_classes = _labels(labels, f.shape[0])
    n, d = f.shape
    x = f - f.mean(axis=0)
    if shrinkage == "ledoit-wolf":
        a = ledoit_wolf_shrinkage(f)
    elif shrinkage is None:
        a = 0.0
    elif isinstance(shrinkage, (int, float)) and not isinstance(shrinkage, bool) and 0 <= shrinkage <= 1:
        a = float(shrinkage)
    else:
        raise UserError(f"hscore: shrinkage must be 'ledoit-wolf', None or a number in [0, 1], "
                        f"got {shrinkage!r}")
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    keep = s > _rank_tol(s, x.shape)
    if not keep.any():
        raise UserError("features: constant over images (zero covariance); H-score is undefined")
    u, lam = u[:, keep], s[keep] ** 2 / n  # eigenvalues of cov(f) on its range
    mu = float(lam.sum()) / d
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), codes] = 1.0
    counts = onehot.sum(axis=0)
    # Coordinates of the centred class means in the eigenbasis: v_i^T mu_c = s_i (U^T 1_c)_i / n_c.
    coords = (u.T @ onehot) * s[keep][:, None] / counts
    quad = (coords**2 / ((1 - a) * lam + a * mu)[:, None]).sum(axis=0)  # mu_c^T cov_a^-1 mu_c
    return float((1 - a) * (counts / n * quad).sum())


# ----------------------------------------------------------------------------- domain distances


def _cov_root_trace(a: np.ndarray, b: np.ndarray) -> float:
    """tr (S_a^1/2 S_b S_a^1/2)^1/2 for the 1/(N-1) sample covariances of the centred rows a, b.

    With S_a = A^T A and S_b = B^T B (A, B the centred rows over sqrt(N - 1)), the eigenvalues of
    S_a S_b are the squared singular values of A B^T, so the trace is its nuclear norm. When the
    smaller set has fewer rows than D, A B^T (n x m) is formed directly; otherwise both sets are
    reduced to their D x D R factors first (A B^T = Q_a R_a R_b^T Q_b^T, same singular values).
    """
    if min(len(a), len(b)) >= a.shape[1]:
        a, b = np.linalg.qr(a, mode="r"), np.linalg.qr(b, mode="r")
    return float(linalg.svdvals(a @ b.T, check_finite=False).sum())


def frechet_distance(a: Any, b: Any) -> float:
    r"""Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

        d^2 = ||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr( (S_a^1/2 S_b S_a^1/2)^1/2 )

    (Dowson & Landau 1982; Heusel et al., NeurIPS 2017), S = sample covariance (1/(N-1)), as
    pytorch-fid's ``calculate_activation_statistics``. The trace of the square root is computed
    exactly from the data, not with sqrtm: it is the nuclear norm of A B^T (A, B the centred rows
    over sqrt(N - 1); `_cov_root_trace`). That is real and stable when N < D (singular covariances:
    the ImageNet features of a few hundred images), where pytorch-fid's sqrtm of S_a S_b loses
    digits (2e-7 relative in the tests) and may need its eps offset or return complex parts;
    `frechet_distance_stats` is that algorithm, for stored statistics.
    """
    x = _matrix(a, "a")
    y = _matrix(b, "b")
    if x.shape[1] != y.shape[1]:
        raise UserError(f"frechet_distance: feature dimensions differ ({x.shape[1]} vs {y.shape[1]}); "
                        "extract both sets with the same network and layer")
    mx, my = x.mean(axis=0), y.mean(axis=0)
    ax, ay = (x - mx) / math.sqrt(len(x) - 1), (y - my) / math.sqrt(len(y) - 1)
    diff = mx - my
    return float(diff @ diff + (ax**2).sum() + (ay**2).sum() - 2 * _cov_root_trace(ax, ay))


def frechet_distance_stats(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, *, eps: float = 1e-6,
                           imag_atol: float = 1e-3) -> float:
    r"""The FID formula from means and covariances, as pytorch-fid's ``calculate_frechet_distance``.

    d^2 = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr sqrtm(sigma1 sigma2), with
    scipy.linalg.sqrtm; when the product is singular (non-finite root) eps I is added to both
    covariances, and an imaginary part from rounding is dropped unless a diagonal entry's exceeds
    ``imag_atol`` (then UserError). Follows mseitzer/pytorch-fid (D. J. Sutherland's stable
    version); prefer `frechet_distance` when the features themselves are at hand.
    """
    m1, m2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (len(m1), len(m1)):
        raise UserError(f"frechet_distance_stats: shapes mu {m1.shape}, {m2.shape}, sigma {s1.shape}, "
                        f"{s2.shape} do not match; pass (D,) means and (D, D) covariances")
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"frechet_distance_stats: singular product; adding {eps} to the diagonal of both "
                      "covariances", RuntimeWarning, stacklevel=2)
        offset = np.eye(len(m1)) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=imag_atol):
            raise UserError(f"frechet_distance_stats: sqrtm has an imaginary part of "
                            f"{np.abs(covmean.imag).max():.3g}; the covariances are too singular, use "
                            "frechet_distance on the features")
        covmean = covmean.real
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _sqdist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances by BLAS, ||x||^2 + ||y||^2 - 2 x.y, clipped at 0.

    Much faster than scipy's cdist for D in the thousands; the cancellation costs digits only
    for pairs much closer than the feature norms, which the median and the kernel do not see.
    """
    d = (x**2).sum(axis=1)[:, None] + (y**2).sum(axis=1)[None, :] - 2 * (x @ y.T)
    return np.maximum(d, 0.0)


def median_bandwidth(a: Any, b: Any) -> float:
    """Median heuristic: the median Euclidean distance over distinct pairs of the pooled sample."""
    z = np.vstack([_matrix(a, "a"), _matrix(b, "b")])
    iu = np.triu_indices(len(z), k=1)
    h = float(np.sqrt(np.median(_sqdist(z, z)[iu])))
    if h <= 0:
        raise UserError("mmd: the median pairwise distance is 0 (over half the pairs are identical "
                        "points); pass an explicit bandwidth")
    return h


def mmd(a: Any, b: Any, *, kernel: str = "rbf", bandwidth: str | float = "median") -> float:
    r"""Unbiased squared maximum mean discrepancy MMD^2_u (Gretton et al., JMLR 2012, eq. 3).

        MMD^2_u = 1/(m(m-1)) sum_{i != j} k(a_i, a_j) + 1/(n(n-1)) sum_{i != j} k(b_i, b_j)
                  - 2/(m n) sum_{i, j} k(a_i, b_j)

    (may be slightly negative when the distributions agree). ``kernel``: "rbf",
    k(x, y) = exp(-||x - y||^2 / (2 h^2)), with h = ``bandwidth`` or, for "median",
    `median_bandwidth` (Gretton et al. 2012, sec. 8) over the pooled sample; or "linear",
    k(x, y) = x . y (then MMD^2_u is the unbiased ||mu_a - mu_b||^2). Memory is O((m + n)^2):
    subsample (seeded) sets of more than a few thousand images before calling.
    """
    x = _matrix(a, "a")
    y = _matrix(b, "b")
    if x.shape[1] != y.shape[1]:
        raise UserError(f"mmd: feature dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    if kernel == "linear":
        kxx, kyy, kxy = x @ x.T, y @ y.T, x @ y.T
    elif kernel == "rbf":
        if bandwidth == "median":
            h = median_bandwidth(x, y)
        elif isinstance(bandwidth, (int, float)) and not isinstance(bandwidth, bool) and bandwidth > 0:
            h = float(bandwidth)
        else:
            raise UserError(f"mmd: bandwidth must be 'median' or a positive number, got {bandwidth!r}")
        g = -0.5 / h**2
        kxx, kyy, kxy = np.exp(g * _sqdist(x, x)), np.exp(g * _sqdist(y, y)), np.exp(g * _sqdist(x, y))
    else:
        raise UserError(f"mmd: kernel must be 'rbf' or 'linear', got {kernel!r}")
    m, n = len(x), len(y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


# ----------------------------------------------------------------------------- registries

# What each score reads from the step-1 network on the target training split; row order of tables.
SCORES: dict[str, dict[str, Any]] = {
    "logme": {"fn": logme, "input": "features", "higher_is_better": True},
    "hscore": {"fn": hscore, "input": "features", "higher_is_better": True},
    "leep": {"fn": leep, "input": "source_probs", "higher_is_better": True},
    "nce": {"fn": nce, "input": "source_pred", "higher_is_better": True},
}
# Distances between ImageNet-feature sets of intermediate and target images; lower = closer.
DISTANCES: dict[str, dict[str, Any]] = {
    "frechet": {"fn": frechet_distance, "higher_is_better": False},
    "mmd": {"fn": mmd, "higher_is_better": False},
}
