"""Classification metrics from per-sample labels and class probabilities (numpy only).

Binary (larynx): accuracy, recall (sensitivity of the positive class, `data.larynx.positive`),
specificity, precision, f1, auc, confusion [[TN, FP], [FN, TP]], n, loss.
Multi-class (fundus): accuracy, qwk (quadratic weighted kappa), confusion (rows = true), n, loss.

Values are fractions in [0, 1]. A ratio whose denominator is zero (recall with no positives,
precision with no positive predictions, AUC with one class present) is None, not 0: an
undefined value must not pass for a bad one. The prediction is the arg-max class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EPS = 1e-12


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def confusion(labels: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """k x k counts, rows = true class, columns = predicted class."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(preds, np.int64)), 1)
    return cm


def rank_average(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), np.float64)
    # Boundaries of runs of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends, strict=False):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
    return ranks


def auc(is_positive: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney U statistic (a tie between classes counts one half)."""
    pos = np.asarray(is_positive, bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    r = rank_average(scores)
    u = r[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def qwk(labels: np.ndarray, preds: np.ndarray, k: int) -> float | None:
    """Cohen's kappa with quadratic weights (i - j)^2 / (k - 1)^2."""
    obs = confusion(labels, preds, k).astype(np.float64)
    n = obs.sum()
    if n == 0 or k < 2:
        return None
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / (k - 1) ** 2
    exp = np.outer(obs.sum(1), obs.sum(0)) / n
    den = (w * exp).sum()
    if den == 0:
        # Both raters constant: kappa is undefined unless they agree perfectly.
        return 1.0 if (w * obs).sum() == 0 else None
    return float(1.0 - (w * obs).sum() / den)


def nll(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean cross-entropy recomputed from probabilities (used when no loss is passed)."""
    p = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, _EPS, 1.0)).mean()) if len(labels) else float("nan")


def _prep(labels: Sequence[int], probs) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be (N, C) for N={len(labels)} labels, got {probs.shape}")
    return labels, probs


def binary(labels, probs, positive: int = 1, loss: float | None = None) -> dict:
    """Binary metrics; `positive` is the column/label index of the positive class."""
    labels, probs = _prep(labels, probs)
    if probs.shape[1] != 2:
        raise ValueError(f"binary metrics need 2 classes, got {probs.shape[1]}")
    pos_true = labels == positive
    pos_pred = probs.argmax(1) == positive
    tp = int((pos_true & pos_pred).sum())
    tn = int((~pos_true & ~pos_pred).sum())
    fp = int((~pos_true & pos_pred).sum())
    fn = int((pos_true & ~pos_pred).sum())
    n = len(labels)
    return {
        "accuracy": _ratio(tp + tn, n),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "auc": auc(pos_true, probs[:, positive]),
        "confusion": [[tn, fp], [fn, tp]],
        "n": n,
        "loss": float(loss) if loss is not None else nll(labels, probs),
    }


def multiclass(labels, probs, loss: float | None = None) -> dict:
    labels, probs = _prep(labels, probs)
    k = probs.shape[1]
    preds = probs.argmax(1)
    return {
        "accuracy": _ratio(int((preds == labels).sum()), len(labels)),
        "qwk": qwk(labels, preds, k),
        "confusion": confusion(labels, preds, k).tolist(),
        "n": len(labels),
        "loss": float(loss) if loss is not None else nll(labels, probs),
    }


def compute(labels, probs, classes: Sequence[str], positive: str | None = None,
            loss: float | None = None) -> dict:
    """Binary metrics when there are two classes and a named positive class, else multi-class."""
    if len(classes) == 2 and positive is not None:
        return binary(labels, probs, list(classes).index(positive), loss)
    return multiclass(labels, probs, loss)
