"""Loss functions by name, chosen by the ``loss`` hyperparameter.

Each entry builds a ``(outputs, targets) -> loss`` module; tasks list which names suit them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mltune.core.catalog import Catalog

LossFactory = Callable[[], nn.Module]
LOSSES: Catalog[LossFactory] = Catalog("loss")
LOSSES.add("cross_entropy", nn.CrossEntropyLoss)
LOSSES.add("label_smoothing", lambda: nn.CrossEntropyLoss(label_smoothing=0.1))
LOSSES.add("mse", nn.MSELoss)
LOSSES.add("mae", nn.L1Loss)
LOSSES.add("huber", nn.HuberLoss)


def make_loss(name: str) -> nn.Module:
    return LOSSES.get(name, field="loss")()
