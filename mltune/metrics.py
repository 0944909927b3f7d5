"""Validation metrics computed from a model's outputs, once per epoch."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import f1_score


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Accuracy and macro-F1 of argmax predictions."""
    predicted = logits.argmax(dim=1).cpu().numpy()
    truth = targets.cpu().numpy()
    return {
        "accuracy": float(np.mean(predicted == truth)),
        "f1_macro": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }


LOWER_IS_BETTER = ("loss", "rmse", "mae", "mse", "mase", "smape", "error")


def better_direction(metric: str) -> str:
    """``min`` for losses and errors, ``max`` for scores."""
    return "min" if any(part in metric for part in LOWER_IS_BETTER) else "max"
