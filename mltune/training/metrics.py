"""Validation metrics computed from a model's outputs, once per epoch."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import f1_score, mean_absolute_error, r2_score, roc_auc_score


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Accuracy and macro-F1 of argmax predictions."""
    predicted = logits.argmax(dim=1).cpu().numpy()
    truth = targets.cpu().numpy()
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "f1_macro": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }


def binary_roc_auc(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """ROC AUC of the positive class (index 1); NaN when validation holds one class only."""
    truth = targets.cpu().numpy()
    if len(np.unique(truth)) < 2:
        return float("nan")
    positive = torch.softmax(logits.detach().float(), dim=1)[:, 1].cpu().numpy()
    return float(roc_auc_score(truth, positive))


def regression_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of predictions, in the target's own units."""
    predicted, truth = np.asarray(predicted).ravel(), np.asarray(truth).ravel()
    return {
        "rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))),
        "mae": float(mean_absolute_error(truth, predicted)),
        "r2": float(r2_score(truth, predicted)),
    }
