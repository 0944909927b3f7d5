"""Validation metrics computed from a model's outputs, once per epoch.

Written with numpy rather than through scikit-learn's functions: they are the same formulas
(checked against scikit-learn in ``tests/unit/test_metrics.py``), but scikit-learn validates
its arguments on every call, which cost a small trial more than its training (13 ms an
epoch on the breast_cancer MLP, 5 of 27 s of a 40-trial search).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Accuracy and macro-F1 of argmax predictions."""
    predicted = logits.argmax(dim=1).cpu().numpy()
    truth = targets.cpu().numpy()
    return {"accuracy": float(np.mean(predicted == truth)),
            "f1_macro": macro_f1(truth, predicted)}


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """F1 averaged over the labels in either array (scikit-learn's ``average="macro"`` with
    ``zero_division=0``)."""
    labels = np.union1d(truth, predicted)
    if labels.size == 0:
        return 0.0
    t, p = np.searchsorted(labels, truth), np.searchsorted(labels, predicted)
    size = len(labels)
    hits = np.bincount(t[t == p], minlength=size)
    denominator = np.bincount(t, minlength=size) + np.bincount(p, minlength=size)
    scores = np.divide(2 * hits, denominator, out=np.zeros(size), where=denominator > 0)
    return float(scores.mean())


def binary_roc_auc(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """ROC AUC of the positive class (index 1); NaN when validation holds one class only."""
    truth = targets.cpu().numpy()
    positives = truth == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    scores = torch.softmax(logits.detach().float(), dim=1)[:, 1].cpu().numpy()
    ranks = rankdata(scores)  # ties share their mean rank: Mann-Whitney's U
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def regression_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of predictions, in the target's own units."""
    predicted, truth = np.asarray(predicted).ravel(), np.asarray(truth).ravel()
    error = predicted - truth
    residual = float(np.sum(error ** 2))
    total = float(np.sum((truth - truth.mean()) ** 2))
    if total == 0:  # a constant target: perfect or nothing, as scikit-learn says
        r2 = 1.0 if residual == 0 else 0.0
    else:
        r2 = 1 - residual / total
    return {"rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error))),
            "r2": r2}
