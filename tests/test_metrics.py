"""Metrics (scikit-learn underneath) against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thtl_bench import metrics

LABELS = [0, 0, 0, 1, 1, 1, 1, 0]
P_POS = [0.1, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7, 0.2]


def _probs(p_pos, pos_col=1):
    p = np.asarray(p_pos)
    cols = [1 - p, p] if pos_col == 1 else [p, 1 - p]
    return np.stack(cols, 1)


def test_binary_by_hand():
    # preds 0,1,0,1,0,1,1,0 -> TP 3 (idx 3,5,6), FN 1 (idx 4), FP 1 (idx 1), TN 3
    m = metrics.binary(LABELS, _probs(P_POS), positive=1)
    assert m["confusion"] == [[3, 1], [1, 3]]
    assert m["accuracy"] == 0.75 and m["recall"] == 0.75 and m["specificity"] == 0.75
    assert m["precision"] == 0.75 and m["f1"] == 0.75 and m["n"] == 8
    # AUC: positive scores beat 4, 3, 4, 4 of the 4 negatives -> 15/16
    assert m["auc"] == pytest.approx(15 / 16)
    nll = -np.mean([np.log(1 - p) if y == 0 else np.log(p) for y, p in zip(LABELS, P_POS, strict=False)])
    assert m["loss"] == pytest.approx(nll)


def test_binary_positive_class_is_a_parameter():
    # The same data with the positive class in column/label 0 gives the same metrics.
    flipped = [1 - y for y in LABELS]
    a = metrics.binary(LABELS, _probs(P_POS, 1), positive=1)
    b = metrics.binary(flipped, _probs(P_POS, 0), positive=0)
    assert a == b
    c = metrics.compute(flipped, _probs(P_POS, 0), ["malignant", "benign"], positive="malignant")
    assert c == a


def test_binary_unbalanced_errors():
    # 2 positives, 1 found; 4 negatives, 1 false alarm -> recall .5, specificity .75, precision .5
    m = metrics.binary([1, 1, 0, 0, 0, 0], _probs([0.9, 0.2, 0.7, 0.1, 0.1, 0.3]), positive=1)
    assert m["confusion"] == [[3, 1], [1, 1]]
    assert (m["recall"], m["specificity"], m["precision"]) == (0.5, 0.75, 0.5)
    assert m["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_auc_ties_count_half():
    # pos {0.5, 0.7}, neg {0.5, 0.2}: pairs 0.5 (tie) + 1 + 1 + 1 = 3.5 of 4
    assert metrics.auc([1, 1, 0, 0], [0.5, 0.7, 0.5, 0.2]) == pytest.approx(0.875)
    assert metrics.auc([1, 0], [0.3, 0.3]) == pytest.approx(0.5)
    # 3 positives {0.9, 0.4, 0.4}, 2 negatives {0.4, 0.1}: 2 + (0.5 + 1) + (0.5 + 1) = 5 of 6
    assert metrics.auc([1, 1, 1, 0, 0], [0.9, 0.4, 0.4, 0.4, 0.1]) == pytest.approx(5 / 6)
    assert metrics.auc([1, 1], [0.2, 0.3]) is None and metrics.auc([0, 0], [0.2, 0.3]) is None


def test_undefined_ratios_are_none():
    m = metrics.binary([0, 0, 0], _probs([0.1, 0.2, 0.3]), positive=1)
    assert m["recall"] is None and m["auc"] is None and m["precision"] is None
    assert m["specificity"] == 1.0 and m["accuracy"] == 1.0


def test_undefined_f1_and_zero_f1():
    # No positives at all and none predicted: precision, recall and F1 are 0/0 -> None.
    m = metrics.binary([0, 0], _probs([0.1, 0.2]), positive=1)
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None
    # One false alarm, no positives: precision 0/1 = 0, recall 0/0 undefined, F1 = 2*0/(0+1+0) = 0.
    m = metrics.binary([0, 0, 0], _probs([0.9, 0.1, 0.1]), positive=1)
    assert m["confusion"] == [[2, 1], [0, 0]]
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, None, 0.0)
    # Positives all missed, nothing predicted positive: precision 0/0, recall 0, F1 0.
    m = metrics.binary([1, 1, 0], _probs([0.1, 0.1, 0.1]), positive=1)
    assert (m["precision"], m["recall"], m["f1"], m["specificity"]) == (None, 0.0, 0.0, 1.0)


def test_confusion_keeps_absent_classes():
    # Class 1 never occurs, in truth or prediction: its row and column are still there.
    assert metrics.confusion(np.array([0, 2, 2]), np.array([0, 0, 2]), 3).tolist() == [[1, 0, 0], [0, 0, 0], [1, 0, 1]]


def test_qwk_by_hand():
    # O has 1 at (0,0), (1,2), (2,2), (2,1); sum(W*O) = .5; sum(W*E) = 1.375 -> 1 - .5/1.375
    assert metrics.qwk(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), 3) == pytest.approx(1 - 0.5 / 1.375)
    assert metrics.qwk(np.array([0, 1, 2, 3, 4]), np.array([0, 1, 2, 3, 4]), 5) == pytest.approx(1.0)
    # Systematic disagreement is worse than chance.
    assert metrics.qwk(np.array([0, 0, 4, 4]), np.array([4, 4, 0, 0]), 5) < 0
    # Two constant raters: chance agreement is 1 and kappa is 0/0 -> None.
    assert metrics.qwk(np.array([2, 2]), np.array([2, 2]), 5) is None
    # 2 classes: weights are 0 on the diagonal, 1 off it; O = [[1, 1], [0, 2]], E = [[.5, 1.5], [.5, 1.5]]
    # -> 1 - 1 / 2 = 0.5
    assert metrics.qwk(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2) == pytest.approx(0.5)


def test_multiclass():
    labels = [0, 1, 2, 2]
    probs = np.eye(3)[[0, 2, 2, 1]] * 0.8 + 0.2 / 3
    m = metrics.multiclass(labels, probs)
    assert m["accuracy"] == 0.5 and m["n"] == 4
    assert m["confusion"] == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert m["qwk"] == pytest.approx(1 - 0.5 / 1.375)
    p_true = probs[np.arange(4), labels]
    assert m["loss"] == pytest.approx(-np.mean(np.log(p_true)))
    assert metrics.compute(labels, probs, ["0", "1", "2"]) == m


def test_passed_loss_is_kept_and_shapes_checked():
    assert metrics.binary([0, 1], _probs([0.2, 0.9]), loss=1.25)["loss"] == 1.25
    with pytest.raises(ValueError):
        metrics.binary([0, 1, 1], _probs([0.2, 0.9]))
    with pytest.raises(ValueError):
        metrics.binary([0, 1], np.ones((2, 3)) / 3)
    assert math.isfinite(metrics.nll(np.array([0]), np.array([[0.0, 1.0]])))
