"""Transferability scores and domain distances against references, hand arithmetic and properties.

Reference numbers were produced once, in a scratch folder outside the repository, by running the
reference implementations on the deterministic inputs below (built from sin/cos, not from an RNG
stream, so they are the same on every numpy):

- thuml/LogME @ 56551ca (LogME.py ``_fit_icml``, LEEP.py, NCE.py); thuml/Transfer-Learning-Library
  @ c4aa59e (``tllib/ranking/hscore.py``, ``leep.py``); mseitzer/pytorch-fid @ b9c1811
  (``calculate_frechet_distance``); scikit-learn 1.9.1 ``LedoitWolf``; mpmath 1.3.0 (50 digits);
- "direct": scipy Nelder-Mead over (log alpha, log beta) of log N(y | 0, I/beta + F F^T/alpha)
  (slogdet + solve), 16 starts, the best kept: the maximum evidence by brute force.
Only the numbers are committed, never the reference code.
"""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from thtl_bench import transferability as T
from thtl_bench.errors import UserError


def feats(n: int, d: int, c: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic features (N, D) and labels i % c; `shift` moves the classes apart."""
    i, j = np.arange(n)[:, None], np.arange(d)[None, :]
    y = np.arange(n) % c
    f = np.sin(1.3 * i + 0.7 * j**1.5) + np.cos(0.37 * i * (j + 1)) + shift * y[:, None] * np.cos(j)
    return f, y


def probs(n: int, z: int) -> np.ndarray:
    """Deterministic source-task softmax (N, Z)."""
    i, j = np.arange(n)[:, None], np.arange(z)[None, :]
    logits = 2.0 * np.sin(0.9 * i + 1.7 * j) + 0.5 * (j == (i % z))
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def exact_moments(mean: np.ndarray, cov: np.ndarray, n: int) -> np.ndarray:
    """n points whose sample mean and 1/(n-1) covariance are exactly `mean` and `cov`."""
    d = len(mean)
    basis = np.linalg.qr(np.column_stack([np.ones(n), feats(n, d, 1)[0]]))[0][:, 1:d + 1]
    return mean + math.sqrt(n - 1) * basis @ np.linalg.cholesky(cov).T


# ----------------------------------------------------------------------------- LogME

# (N, D, classes, shift): direct maximum evidence; the last two also thuml _fit_icml run to
# |d lambda| / lambda < 1e-13 without its 1e-5 epsilon (its default stops at 1 %: -0.71597 for A).
LOGME_DIRECT = {
    (40, 8, 3, 0.8): -0.714949798223094,  # N > D; class 0's maximum is at alpha -> inf
    (12, 30, 2, 0.8): -0.8640488073186903,  # N < D; maxima at alpha -> inf and beta -> inf
    (30, 30, 2, 0.5): 0.6805415650148993,
    (25, 60, 2, 2.0): 0.5987469393559751,
}
LOGME_ICML_TIGHT = {(30, 30, 2, 0.5): 0.6805415649689239, (25, 60, 2, 2.0): 0.5987469393431171}


@pytest.mark.parametrize("case", list(LOGME_DIRECT))
def test_logme_is_the_maximum_evidence(case):
    f, y = feats(*case)
    assert T.logme(f, y) == pytest.approx(LOGME_DIRECT[case], abs=1e-9)
    if case in LOGME_ICML_TIGHT:
        assert T.logme(f, y) == pytest.approx(LOGME_ICML_TIGHT[case], abs=1e-9)


def test_logme_against_a_brute_force_grid_of_the_marginal_likelihood():
    # log N(y | 0, C), C = I/beta + F F^T/alpha, in the eigenbasis of F F^T, on a grid of
    # (log alpha, log beta): LogME is the maximum, so no grid point beats it and the best is close.
    f, y = feats(10, 4, 2, 1.5)
    n = len(f)
    w, v = np.linalg.eigh(f @ f.T)
    la, lb = np.meshgrid(np.linspace(-6, 12, 181), np.linspace(-4, 12, 161), indexing="ij")
    best = []
    for c in (0, 1):
        z2 = (v.T @ (y == c).astype(float)) ** 2
        ev = np.exp(-lb)[..., None] + np.exp(-la)[..., None] * w
        best.append((-0.5 * (np.log(ev).sum(-1) + (z2 / ev).sum(-1) + n * math.log(2 * math.pi))).max() / n)
    score = T.logme(f, y)
    assert np.mean(best) <= score + 1e-12
    assert score - np.mean(best) < 1e-3


def test_logme_is_invariant_to_feature_scale():
    # Scaling F by c is alpha -> alpha / c^2, so the maximum evidence cannot change. From the
    # paper's start alpha = beta = 1 alone the fixed point reaches another local maximum for
    # c >= 2 here (-1.0660 instead of -0.8640): this fails without the grid restart.
    f, y = feats(12, 30, 2, 0.8)
    ref = T.logme(f, y)
    for c in (0.01, 0.5, 2.0, 10.0, 100.0):
        assert T.logme(c * f, y) == pytest.approx(ref, abs=1e-10)


def test_logme_prefers_separable_labels_and_ignores_label_names():
    i = np.arange(60)
    y = i % 2
    f = np.column_stack([y + 0.1 * np.sin(3.1 * i), np.cos(1.7 * i), np.sin(0.3 * i**1.2)])
    shuffled = y[np.argsort(np.sin(7.7 * i))]
    assert T.logme(f, y) > T.logme(f, shuffled) + 0.1
    assert T.logme(f, y) == pytest.approx(T.logme(f, np.where(y == 0, 7, 3)), abs=1e-12)


def test_logme_rejects_bad_input():
    f, y = feats(10, 4, 2)
    with pytest.raises(UserError, match="2-D"):
        T.logme(f[:, 0], y)
    with pytest.raises(UserError, match="distinct classes"):
        T.logme(f, np.zeros(10, int))
    with pytest.raises(UserError, match="one label per row"):
        T.logme(f, y[:5])
    with pytest.raises(UserError, match="NaN"):
        T.logme(np.where(f > 1, np.nan, f), y)
    with pytest.raises(UserError, match="integers"):
        T.logme(f, y + 0.5)
    with pytest.raises(UserError, match="rank 0"):
        T.logme(np.zeros_like(f), y)


# ----------------------------------------------------------------------------- LEEP and NCE


def test_leep_matches_thuml_and_tllib():
    _, y = feats(40, 1, 3)
    assert T.leep(probs(40, 5), y) == pytest.approx(-1.0934204181468181, abs=1e-12)


def test_leep_hand_computed():
    theta = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    y = np.array([0, 0, 1, 1])
    # joint P(y, z): y=0: (0.8+0.6, 0.2+0.4)/4 = (1.4, 0.6)/4; y=1: (0.8, 1.2)/4; P(z) = (2.2, 1.8)/4
    # P(y|z0) = (7/11, 4/11), P(y|z1) = (1/3, 2/3)
    eep = [0.8 * 7 / 11 + 0.2 / 3, 0.6 * 7 / 11 + 0.4 / 3, 0.3 * 4 / 11 + 0.7 * 2 / 3, 0.5 * 4 / 11 + 0.5 * 2 / 3]
    assert T.leep(theta, y) == pytest.approx(np.mean(np.log(eep)), abs=1e-14)


def test_leep_identity_and_uninformative_sources():
    y = np.array([0, 1, 2, 1, 0, 2, 2])
    # Perfect source probabilities over the target classes themselves: P(y|z) = I, LEEP = log 1.
    assert T.leep(np.eye(3)[y], y) == pytest.approx(0.0, abs=1e-15)
    # The same theta for every image: P(y|z) = P(y), LEEP = sum_y P(y) log P(y) = -H(Y).
    prior = np.bincount(y) / len(y)
    flat = np.tile([0.2, 0.5, 0.3], (len(y), 1))
    assert T.leep(flat, y) == pytest.approx(float((prior * np.log(prior)).sum()), abs=1e-14)


def test_leep_rejects_logits():
    with pytest.raises(UserError, match="softmax"):
        T.leep(np.array([[2.0, -1.0], [0.5, 0.1]]), [0, 1])


def test_nce_reference_and_hand_computed():
    _, y = feats(40, 1, 3)
    assert T.nce(probs(40, 5).argmax(1), y) == pytest.approx(-1.0819778284410284, abs=1e-12)
    # P(z=0) = 1/2 with y split 1:1, P(z=1) = 1/2 with y pure: H(Y|Z) = 1/2 log 2.
    assert T.nce([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(-0.5 * math.log(2), abs=1e-15)
    assert T.nce([4, 9, 9, 4], [0, 1, 1, 0]) == 0.0
    assert T.nce([3, 3, 3, 3], [0, 1, 1, 1]) == pytest.approx(0.25 * math.log(0.25) + 0.75 * math.log(0.75))


# ----------------------------------------------------------------------------- H-score


def test_hscore_matches_tllib():
    f, y = feats(40, 8, 3, 0.8)
    assert T.hscore(f, y, shrinkage=None) == pytest.approx(0.7817643528926302, abs=1e-12)  # h_score
    # regularized_h_score takes 1/N for cov_a(f) but 1/(N-1) for cov(E[f|y]): x N/(N-1).
    assert T.hscore(f, y) * 40 / 39 == pytest.approx(0.6909689019305053, abs=1e-12)
    f, y = feats(12, 30, 2, 0.8)
    assert T.hscore(f, y) * 12 / 11 == pytest.approx(0.8369794364814485, abs=1e-12)


def test_ledoit_wolf_shrinkage_is_sklearns_and_keeps_the_committed_numbers():
    # The shrinkage is sklearn.covariance.ledoit_wolf_shrinkage; these numbers were the former
    # hand-written formula's (same to 7e-16 on these inputs and on 300 x 1280 / 500 x 2048
    # Gaussian features; H-score to 3e-15).
    assert T.ledoit_wolf_shrinkage(feats(40, 8, 3, 0.8)[0]) == pytest.approx(0.2201072732162042, abs=1e-14)
    assert T.ledoit_wolf_shrinkage(feats(12, 30, 2, 0.8)[0]) == pytest.approx(0.35151402272794785, abs=1e-14)
    # Sample covariance already mu I (S = I/2): nothing to shrink.
    assert T.ledoit_wolf_shrinkage([[1, 0], [-1, 0], [0, 1], [0, -1]]) == 0.0


def test_hscore_hand_computed():
    # f = 0, 2, 4, 6 in classes 0, 0, 1, 1: cov(f) = (9+1+1+9)/4 = 5; class means 1, 5 -> -2, +2
    # around 3, cov(E[f|y]) = 4; H = 4/5. With D = 1 Ledoit-Wolf shrinks nothing; a fixed a gives
    # cov_a = (1-a) 5 + a 5 = 5 and H_a = (1-a) 4/5.
    f, y = [[0.0], [2.0], [4.0], [6.0]], [0, 0, 1, 1]
    assert T.hscore(f, y, shrinkage=None) == pytest.approx(0.8, abs=1e-15)
    assert T.hscore(f, y) == pytest.approx(0.8, abs=1e-15)
    assert T.hscore(f, y, shrinkage=0.5) == pytest.approx(0.4, abs=1e-15)


def test_unregularised_hscore_is_c_minus_1_when_n_is_below_d():
    # The pseudo-inverse whitens all N - 1 centred directions: H = sum_c (1 - n_c/N) = C - 1 for
    # any features, hence the shrinkage default.
    for c in (2, 3):
        f, y = feats(12, 30, c, 0.8)
        assert T.hscore(f, y, shrinkage=None) == pytest.approx(c - 1, abs=1e-9)
        assert T.hscore(np.cos(3 * f), y, shrinkage=None) == pytest.approx(c - 1, abs=1e-9)
    assert T.hscore(f, y) < c - 1


def test_hscore_rejects_bad_shrinkage():
    f, y = feats(10, 3, 2)
    for bad in ("oas", 1.5, -0.1, True):
        with pytest.raises(UserError, match="shrinkage"):
            T.hscore(f, y, shrinkage=bad)


# ----------------------------------------------------------------------------- Fréchet distance


def _fid_pair(n: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    a, _ = feats(n, d, 2)
    b, _ = feats(m + 7, d, 2)
    return a, b[7:] * 1.3 + 0.2


def test_frechet_matches_pytorch_fid():
    a, b = _fid_pair(50, 40, 6)  # full-rank covariances
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert T.frechet_distance(a, b) == pytest.approx(0.7504429512922535, abs=1e-12)
    assert T.frechet_distance_stats(*stats) == pytest.approx(0.7504429512922535, abs=1e-12)


def test_frechet_singular_covariances():
    # 10 and 12 points in 30 dimensions. Exact value: 50-digit mpmath. pytorch-fid's sqrtm loses
    # ~2e-7 relative here, and which bits it loses depends on the machine's LAPACK path
    # (11.42062461801828 on one host, 11.42062479340292 on another): frechet_distance_stats is that
    # algorithm, so it is held to its accuracy, not to one machine's digits.
    a, b = _fid_pair(10, 12, 30)
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert T.frechet_distance(a, b) == pytest.approx(11.420626548859944, rel=1e-13)
    assert T.frechet_distance_stats(*stats) == pytest.approx(11.420626548859944, rel=1e-6)


def test_frechet_closed_form_for_two_gaussians():
    # For 2 x 2 PSD M, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)). S1 = [[2,1],[1,2]], S2 = diag(1, 4)
    # (not commuting): tr S1 S2 = 2 + 8 = 10, det = 3 * 4, so tr sqrt = sqrt(10 + 4 sqrt 3);
    # ||mu1 - mu2||^2 = 1 + 4; d^2 = 5 + 4 + 5 - 2 sqrt(10 + 4 sqrt 3).
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    s1, s2 = np.array([[2.0, 1.0], [1.0, 2.0]]), np.diag([1.0, 4.0])
    expected = 14 - 2 * math.sqrt(10 + 4 * math.sqrt(3))
    assert T.frechet_distance_stats(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-12)
    # Samples with exactly these moments, through both paths of frechet_distance (N >= D, N < D).
    for n, m in ((40, 25), (40, 1)):
        a, b = exact_moments(mu1, s1, n), exact_moments(mu2, s2, 25)
        if m == 1:
            a = np.pad(a, ((0, 0), (0, 60)))  # D = 62 > N: add 60 constant columns (no variance)
            b = np.pad(b, ((0, 0), (0, 60)))
        assert T.frechet_distance(a, b) == pytest.approx(expected, abs=1e-10)


def test_frechet_self_distance_is_zero_and_dims_must_match():
    for n, d in ((50, 6), (10, 30)):
        a, _ = feats(n, d, 2)
        assert abs(T.frechet_distance(a, a)) < 1e-10 * (1 + np.trace(np.cov(a, rowvar=False)))
    with pytest.raises(UserError, match="dimensions differ"):
        T.frechet_distance(np.ones((3, 2)) * [[1], [2], [3]], np.ones((3, 3)) * [[1], [2], [3]])
    with pytest.raises(UserError, match="do not match"):
        T.frechet_distance_stats(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# ----------------------------------------------------------------------------- MMD


def test_mmd_hand_computed():
    a, b = [[0.0], [1.0]], [[0.0], [2.0]]
    # Pooled distances 1, 0, 2, 1, 1, 2: median 1. k_aa(0,1) = e^-1/2, k_bb(0,2) = e^-2, cross
    # mean (1 + e^-2 + e^-1/2 + e^-1/2)/4: MMD^2 = e^-1/2 + e^-2 - (1 + e^-2 + 2 e^-1/2)/2.
    assert T.median_bandwidth(a, b) == 1.0
    expected = 0.5 * math.exp(-2) - 0.5
    assert T.mmd(a, b) == pytest.approx(expected, abs=1e-15)
    assert T.mmd(a, b, bandwidth=1.0) == pytest.approx(expected, abs=1e-15)
    # Linear kernel: within-set off-diagonal products 0 and 0, cross mean (0 + 0 + 0 + 2)/4.
    assert T.mmd(a, b, kernel="linear") == pytest.approx(-1.0, abs=1e-15)


def test_mmd_unbiased_near_zero_for_one_distribution():
    rng = np.random.default_rng(3)
    same = [T.mmd(rng.standard_normal((30, 2)), rng.standard_normal((30, 2))) for _ in range(40)]
    shifted = T.mmd(rng.standard_normal((30, 2)), rng.standard_normal((30, 2)) + 1.5)
    assert abs(np.mean(same)) < 3 * np.std(same, ddof=1) / math.sqrt(len(same))
    assert shifted > 10 * np.std(same, ddof=1)


def test_mmd_rejects_bad_arguments():
    a = [[0.0], [1.0]]
    with pytest.raises(UserError, match="kernel"):
        T.mmd(a, a, kernel="laplace")
    with pytest.raises(UserError, match="bandwidth"):
        T.mmd(a, a, bandwidth=0)
    with pytest.raises(UserError, match="explicit bandwidth"):
        T.mmd([[0.0], [0.0], [0.0]], [[0.0], [1.0]])


# ----------------------------------------------------------------------------- registry and contract


def test_registries_name_callables_and_inputs():
    assert list(T.SCORES) == ["logme", "hscore", "leep", "nce"]
    assert {v["input"] for v in T.SCORES.values()} == {"features", "source_probs", "source_pred"}
    assert all(v["higher_is_better"] for v in T.SCORES.values())
    assert not any(v["higher_is_better"] for v in T.DISTANCES.values())


def test_module_imports_only_numpy_scipy_and_the_standard_library():
    # The reporting side imports this module: no torch, and scikit-learn only inside the one
    # function that uses it (checked on the source, as the test process itself has torch loaded).
    tree = ast.parse(Path(T.__file__).read_text(encoding="utf-8"))

    def roots(nodes) -> set[str]:
        nodes = list(nodes)
        out = {a.name.split(".")[0] for n in nodes if isinstance(n, ast.Import) for a in n.names}
        return out | {n.module.split(".")[0] for n in nodes if isinstance(n, ast.ImportFrom) and n.module}

    assert roots(tree.body) - set(sys.stdlib_module_names) == {"numpy", "scipy", "thtl_bench"}
    assert roots(ast.walk(tree)) - set(sys.stdlib_module_names) == {"numpy", "scipy", "sklearn", "thtl_bench"}
    lazy = [f.name for f in tree.body if isinstance(f, ast.FunctionDef) and "sklearn" in roots(ast.walk(f))]
    assert lazy == ["ledoit_wolf_shrinkage"]
    froms = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {m for m in froms if m.startswith("thtl_bench")} == {"thtl_bench.errors"}
