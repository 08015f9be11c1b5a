"""Accuracy figures from predictions: accuracy, macro-F1, confusion matrix, agreement, softmax."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_labels: int) -> dict:
    """Accuracy, macro-F1 and the confusion matrix (rows = true label, columns = predicted, all n_labels).

    Computed with numpy (the figures scikit-learn's accuracy_score, f1_score(average="macro", zero_division=0) and
    confusion_matrix(labels=range(n_labels)) give) so that scoring a variant never imports scikit-learn."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("no examples to evaluate")
    if n_labels < 1:
        raise ValueError(f"n_labels must be >= 1, got {n_labels}")
    bad = [v for v in (*y_true, *y_pred) if not 0 <= int(v) < n_labels]
    if bad:
        raise ValueError(f"label {bad[0]} is outside 0..{n_labels - 1}")
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    confusion = np.bincount(t * n_labels + p, minlength=n_labels * n_labels).reshape(n_labels, n_labels)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)  # true count per label
    predicted = confusion.sum(axis=0)
    # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (support + predicted); a label never true nor predicted has no F1.
    # macro-F1 averages over the labels that occur in y_true or y_pred (scikit-learn's default): a label absent from
    # both would otherwise count as F1 = 0 and punish every variant alike. A label that occurs but is never right
    # has F1 = 0 (zero_division=0).
    present = (support + predicted) > 0
    f1 = 2 * tp[present] / (support + predicted)[present]
    return {
        "accuracy": float(tp.sum() / len(t)),
        "macro_f1": float(f1.mean()),
        "confusion": confusion.tolist(),
    }


def agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Fraction of examples on which two prediction lists agree."""
    if len(a) != len(b):
        raise ValueError(f"cannot compare {len(a)} predictions with {len(b)}")
    if len(a) == 0:
        raise ValueError("no predictions to compare")
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
