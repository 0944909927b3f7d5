"""The epoch metrics, written with numpy, give what scikit-learn's functions give."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, mean_absolute_error, r2_score, roc_auc_score

from mltune.training.metrics import binary_roc_auc, classification_metrics, regression_metrics


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("classes", [2, 3, 7])
def test_accuracy_and_macro_f1_equal_scikit_learns(seed, classes):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, 200)
    logits = torch.tensor(rng.normal(size=(200, classes)))
    logits[:100, 0] += 3  # a model that over-predicts class 0: some labels never predicted
    got = classification_metrics(logits, torch.tensor(truth))
    predicted = logits.argmax(1).numpy()
    assert got["accuracy"] == pytest.approx(np.mean(predicted == truth))
    assert got["f1_macro"] == pytest.approx(
        f1_score(truth, predicted, average="macro", zero_division=0))


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_scikit_learns_ties_included(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 150)
    logits = torch.tensor(np.round(rng.normal(size=(150, 2)) + truth[:, None] * [0, 1], 1))
    positive = torch.softmax(logits.float(), dim=1)[:, 1].numpy()
    assert binary_roc_auc(logits, torch.tensor(truth)) == pytest.approx(
        roc_auc_score(truth, positive))
    assert np.isnan(binary_roc_auc(logits, torch.zeros(150, dtype=torch.long)))


def test_regression_metrics_equal_scikit_learns():
    rng = np.random.default_rng(0)
    truth, predicted = rng.normal(size=300), rng.normal(size=300)
    got = regression_metrics(predicted, truth)
    assert got["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert got["r2"] == pytest.approx(r2_score(truth, predicted))
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - truth) ** 2)))
    constant = np.ones(10)
    assert regression_metrics(constant, constant)["r2"] == r2_score(constant, constant)
    assert regression_metrics(constant * 2, constant)["r2"] == r2_score(constant, constant * 2)
