"""What every classification task shares: splits, losses, metrics, labelled outputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.model_selection import train_test_split

from mltune.core.errors import DataError
from mltune.core.terms import Direction
from mltune.data.splits import TaskData
from mltune.spec.model import DataSpec
from mltune.spec.rules import OneOf, Rule
from mltune.tasks.base import Params, logged_metrics
from mltune.training.losses import LOSSES, make_loss
from mltune.training.metrics import classification_metrics

CLASSIFICATION_LOSSES = ["cross_entropy", "label_smoothing"]
# what ``classification_metrics`` returns, and which way each is better
CLASSIFICATION_SCORES = {"accuracy": Direction.MAX, "f1_macro": Direction.MAX}


def stratified_split(
    n: int, labels: np.ndarray, data: DataSpec, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded, stratified train/val/test indices."""
    index = np.arange(n)
    counts = np.unique(labels, return_counts=True)[1]
    stratify = labels if counts.min() >= 3 else None
    rest, test = train_test_split(index, test_size=data.test_size, random_state=seed,
                                  stratify=stratify)
    rest_labels = labels[rest] if stratify is not None else None
    train, val = train_test_split(rest, test_size=data.val_size / (1 - data.test_size),
                                  random_state=seed, stratify=rest_labels)
    return train, val, test


def encode_labels(values: Sequence[Any], field: str) -> tuple[np.ndarray, list[Any]]:
    """Labels -> class indices, plus the class list (their original values, sorted)."""
    classes, codes = np.unique(np.asarray(values), return_inverse=True)
    if len(classes) < 2:
        only = classes[0] if len(classes) else None
        raise DataError(f"{field}: only one class ({only!r}); classification needs at least 2")
    return codes.astype(np.int64), [c.item() if isinstance(c, np.generic) else c for c in classes]


class ClassificationMixin:
    """Loss, metrics, signature and labelled output for tasks that predict a class."""

    def loss_rule(self) -> Rule:
        return OneOf.catalog(LOSSES, only=CLASSIFICATION_LOSSES, suits="classification")

    def make_loss(self, params: Params, data: TaskData) -> Callable[..., torch.Tensor]:
        return make_loss(str(self.with_defaults(params)["loss"]))  # type: ignore[attr-defined]

    def score(self, outputs: torch.Tensor, targets: torch.Tensor,
              meta: Mapping[str, Any]) -> dict[str, float]:
        return classification_metrics(outputs, targets)

    def metrics(self, data: DataSpec) -> dict[str, Direction]:
        return logged_metrics(CLASSIFICATION_SCORES)

    def outputs_are_logits(self, meta: Mapping[str, Any]) -> bool:
        return True

    def signature_for(self, inputs: Schema | None, meta: Mapping[str, Any]) -> ModelSignature:
        classes = meta["classes"]
        label_type = "string" if isinstance(classes[0], str) else (
            "boolean" if isinstance(classes[0], bool) else
            "double" if isinstance(classes[0], float) else "long")
        outputs = Schema([ColSpec(label_type, "label")] +
                         [ColSpec("double", f"proba_{c}") for c in classes])
        return ModelSignature(inputs=inputs, outputs=outputs)

    @staticmethod
    def labelled(logits: torch.Tensor, meta: Mapping[str, Any]) -> pd.DataFrame:
        """Logits -> the user's class labels and one probability column per class."""
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        classes = meta["classes"]
        frame = pd.DataFrame({"label": [classes[i] for i in probs.argmax(axis=1)]})
        for j, name in enumerate(classes):
            frame[f"proba_{name}"] = probs[:, j]
        return frame
