"""A search's data once loaded: the splits as tensors (or streamed), with what serving needs.

Tasks produce a ``TaskData`` once per search; training, tracking and the promotion gate read it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class TaskData:
    """Splits as tensors, prepared once per search, plus the metadata serving needs.

    ``meta`` is plain JSON-able data (class labels, input shape, ...): it travels inside the
    logged model so that nothing from the training data is needed at load time.
    ``artifacts`` holds what serving needs that is not JSON (a fitted scikit-learn
    transformer): each is saved with the model as a file of its own, and at serving time
    ``Task.predict`` finds it in ``meta`` under the same name.
    ``x_test_raw`` is for tasks whose tensors depend on preprocessing fitted on train: the
    promotion gate re-encodes it with another model's preprocessing (``holdout_inputs``).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    artifacts: dict[str, Any] = field(default_factory=dict)
    x_test_raw: Any = None  # the holdout inputs as the user has them; never logged

    def to(self, device: torch.device) -> TaskData:
        """The same data on ``device`` (moved once per search, not per trial)."""
        move = {name: getattr(self, name).to(device) for name in
                ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return replace(self, **move)


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    """A short content hash of the data: same data, same fingerprint."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
