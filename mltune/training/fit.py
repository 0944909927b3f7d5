"""What the training loop (``engine``) and the code around it share: its result, its errors,
early stopping, the batch layout and batched prediction.

Data is already on the device; batches are index slices of it (no DataLoader, no worker
processes), unless the data set is too large for memory: then the split is ``Streamed`` from
disk by worker processes (``mltune.streaming``). On CUDA image batches go in ``channels_last``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from mltune.core.terms import Direction
from mltune.data.layout import batch_layout
from mltune.data.streaming import Streamed
from mltune.spec.rules import WholeNumber
from mltune.training.precision import Precision

FIT_RULES = {"batch_size": WholeNumber(minimum=1)}  # the hyperparameters the loop reads


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


class TrialTimeout(RuntimeError):
    """The trial ran past ``trial_timeout_s``."""


@dataclass
class FitResult:
    """What training produced: per-epoch metrics, and which epoch the weights are from."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # the epoch whose weights the model holds (0: the last)
    stopped_early: bool = False
    stopped: str | None = None  # what ended it before its last epoch, if not itself

    @property
    def final(self) -> dict[str, float]:
        """The metrics of the weights the model holds."""
        if not self.history:
            return {}
        return self.history[self.best_epoch - 1] if self.best_epoch else self.history[-1]


@dataclass
class EarlyStopping:
    """Patience on the monitored metric; keeps a copy of the best epoch's weights."""

    metric: str
    direction: Direction
    patience: int
    best: float | None = None
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None

    def step(self, epoch: int, metrics: dict[str, float],
             snapshot: Callable[[], dict[str, torch.Tensor]]) -> bool:
        """Record the epoch (``snapshot()``: a copy of the weights, taken when they are the
        best so far); True when training should stop."""
        value = metrics[self.metric]
        if self.best is None or self.direction.better(value, self.best):
            self.best, self.best_epoch = value, epoch
            self.best_state = snapshot()
        return epoch - self.best_epoch >= self.patience


def weights_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def predict_batches(model: nn.Module, x: torch.Tensor | Streamed, batch_size: int = 1024,
                    precision: Precision | None = None, dim: int = 0) -> torch.Tensor:
    """Model outputs for ``x`` in eval mode, in batches (fp32 outputs whatever the precision);
    ``dim``: the outputs' row dimension (1 for a pack's (members, rows, ...) outputs)."""
    model.eval()
    if isinstance(x, Streamed):
        chunks = x.batches(torch.arange(len(x)), batch_size)
    else:
        chunks = (x[i:i + batch_size] for i in range(0, len(x), batch_size))
    with precision.autocast() if precision else nullcontext():
        outputs = [model(batch_layout(chunk)) for chunk in chunks]
    return torch.cat(outputs, dim=dim).float()
