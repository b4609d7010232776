"""Classification metrics from per-sample labels and class probabilities (scikit-learn).

Binary (larynx): accuracy, recall (sensitivity of the positive class, `data.larynx.positive`),
specificity, precision, f1, auc, confusion [[TN, FP], [FN, TP]], n, loss.
Multi-class (fundus): accuracy, qwk (quadratic weighted kappa), confusion (rows = true), n, loss.

Values are fractions in [0, 1]. A ratio whose denominator is zero (recall with no positives,
precision with no positive predictions, AUC with one class present, kappa of two constant
raters) is None, not 0: an undefined value must not pass for a bad one. The prediction is the
arg-max class. The counting is scikit-learn's (`confusion_matrix`, `precision_recall_fscore_support`,
`roc_auc_score`, `cohen_kappa_score`); this module fixes the label order, the positive class and
what "undefined" returns, which scikit-learn leaves to warnings and NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

_EPS = 1e-12


def _none_if_nan(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def confusion(labels: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """k x k counts, rows = true class, columns = predicted class (every class, present or not)."""
    return skm.confusion_matrix(np.asarray(labels, np.int64), np.asarray(preds, np.int64),
                                labels=list(range(k))).astype(np.int64)


def auc(is_positive, scores) -> float | None:
    """ROC AUC (a tie between a positive and a negative counts one half); None with one class."""
    pos = np.asarray(is_positive, bool)
    if pos.all() or not pos.any():
        return None
    return float(skm.roc_auc_score(pos, np.asarray(scores, np.float64)))


def qwk(labels: np.ndarray, preds: np.ndarray, k: int) -> float | None:
    """Cohen's kappa with quadratic weights over classes 0..k-1; None when undefined (no samples,
    k < 2, or chance agreement 1: both raters constant, where kappa is 0/0)."""
    labels, preds = np.asarray(labels, np.int64), np.asarray(preds, np.int64)
    if len(labels) == 0 or k < 2:
        return None
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Older scikit-learn divides 0/0 with a RuntimeWarning; newer returns NaN with its own.
        warnings.simplefilter("ignore")
        return _none_if_nan(skm.cohen_kappa_score(labels, preds, labels=list(range(k)), weights="quadratic"))


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
    if positive not in (0, 1):
        raise ValueError(f"positive must be 0 or 1 for binary metrics, got {positive}")
    preds = probs.argmax(1)
    order = [1 - positive, positive]  # [negative, positive]: confusion [[TN, FP], [FN, TP]]
    cm = skm.confusion_matrix(labels, preds, labels=order)
    (tn, fp), (fn, tp) = cm.tolist()
    # zero_division=nan: an empty denominator is "undefined" (None below), never a silent 0 or 1.
    prec, rec, f1, _ = skm.precision_recall_fscore_support(labels, preds, labels=order, average=None,
                                                           zero_division=np.nan)
    n = len(labels)
    return {
        "accuracy": float(tp + tn) / n if n else None,
        "recall": _none_if_nan(rec[1]),
        "specificity": _none_if_nan(rec[0]),
        "precision": _none_if_nan(prec[1]),
        "f1": _none_if_nan(f1[1]) if tp + fp + fn else None,
        "auc": auc(labels == positive, probs[:, positive]),
        "confusion": [[tn, fp], [fn, tp]],
        "n": n,
        "loss": float(loss) if loss is not None else nll(labels, probs),
    }


def multiclass(labels, probs, loss: float | None = None) -> dict:
    labels, probs = _prep(labels, probs)
    k = probs.shape[1]
    preds = probs.argmax(1)
    return {
        "accuracy": float((preds == labels).sum()) / len(labels) if len(labels) else None,
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
