"""The confusion matrix of a classifier on its validation split, as trial artifacts.

A JSON file a program can read back and, for up to ``MAX_PLOTTED`` classes, a PNG a person can
look at in the MLflow UI. Rows are true labels, columns predicted labels, in class order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

MAX_PLOTTED = 30  # beyond this a heat map is unreadable; the JSON file still has it all


def confusion_artifacts(logits: torch.Tensor, targets: torch.Tensor,
                        classes: Sequence[Any]) -> dict[str, Any]:
    """``{"confusion_matrix.json": {...}, "confusion_matrix.png": Figure}`` of val outputs."""
    predicted = logits.argmax(dim=1).cpu().numpy()
    matrix = confusion_matrix(targets.cpu().numpy(), predicted, labels=range(len(classes)))
    files: dict[str, Any] = {"confusion_matrix.json": {
        "split": "validation", "rows": "true label", "columns": "predicted label",
        "labels": list(classes), "matrix": matrix.tolist()}}
    if len(classes) <= MAX_PLOTTED:
        from matplotlib.figure import Figure  # no pyplot: no global figure state to leak

        size = 3 + 0.4 * len(classes)
        figure = Figure(figsize=(size, size), dpi=100)
        axes = figure.add_subplot()
        ConfusionMatrixDisplay(matrix, display_labels=[str(c) for c in classes]).plot(
            ax=axes, colorbar=False, xticks_rotation="vertical")
        axes.set_title("validation split")
        figure.tight_layout()
        files["confusion_matrix.png"] = figure
    return files
