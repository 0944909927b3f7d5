"""The training loop: one screen, top to bottom.

Data is already on the device; batches are index slices of it (no DataLoader, no worker
processes), unless the data set is too large for memory: then the split is ``Streamed`` from
disk by worker processes (``mltune.streaming``). The loop never reads a value back from the
device inside an epoch: the loss sum is accumulated on the device and read once per epoch,
where NaN/inf is also caught. On CUDA the forward pass runs under autocast (``precision``),
CNN inputs in ``channels_last``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mltune.core import interrupts
from mltune.core.terms import Direction
from mltune.data.streaming import Streamed, batches
from mltune.spec.rules import WholeNumber
from mltune.training import defaults
from mltune.training.optim import make_optimizer
from mltune.training.precision import Precision, resolve_precision

EpochCallback = Callable[[int, dict[str, float]], None]
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


def batch_layout(x: torch.Tensor) -> torch.Tensor:
    """Image batches in channels_last on CUDA (what its convolution kernels are fastest on);
    streamed pixels (uint8, a quarter of the bytes to copy) become floats on the device."""
    if x.dtype == torch.uint8:  # pixels; token ids (int64) stay as they are
        x = x.float()
    if x.is_cuda and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def fit(
    model: nn.Module,
    data: Any,
    params: Mapping[str, Any],
    *,
    loss_fn: Callable[..., torch.Tensor],
    score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
    epochs: int,
    seed: int,
    on_epoch: EpochCallback | None = None,
    early_stopping: EarlyStopping | None = None,
    time_limit_s: float | None = None,
    precision: str = "auto",
    compile_model: bool = False,
) -> FitResult:
    """Train ``model`` on ``data`` (a TaskData already on the model's device).

    ``on_epoch`` may raise to stop training (a pruning rule does); ``early_stopping`` ends it
    when the metric stops improving and restores the best epoch's weights. ``compile_model``
    trains a ``torch.compile`` of the network (same parameters; ``model`` is what is kept).
    """
    started = time.monotonic()
    device = data.x_train.device
    model.to(device)
    if device.type == "cuda" and data.x_train.dim() == 4:
        model.to(memory_format=torch.channels_last)
    amp = resolve_precision(precision, device)
    scaler = amp.scaler()
    network = torch.compile(model) if compile_model else model
    optimizer = make_optimizer(model, dict(params))
    batch_size = defaults.batch_size(params)
    generator = torch.Generator(device=device).manual_seed(seed)
    n = len(data.x_train)
    result = FitResult()
    for epoch in range(1, epochs + 1):
        network.train()
        order = torch.randperm(n, device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        inputs = batches(data.x_train, order, batch_size)
        for start, x in zip(range(0, n, batch_size), inputs, strict=True):
            interrupts.check()  # Ctrl-C / SIGTERM stop here, between batches
            index = order[start:start + batch_size]
            with amp.autocast():
                loss = loss_fn(network(batch_layout(x)), data.y_train[index])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach().float() * len(index)
        train_loss = float(loss_sum / n)  # the one read-back of the epoch
        if not math.isfinite(train_loss):
            raise DivergedError(f"train_loss became {train_loss} at epoch {epoch}")
        outputs = predict_batches(network, data.x_val, precision=amp)
        metrics = {"train_loss": train_loss,
                   "val_loss": float(loss_fn(outputs, data.y_val))}
        metrics.update({f"val_{k}": v for k, v in score(outputs, data.y_val).items()})
        result.history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if early_stopping is not None and early_stopping.step(epoch, metrics,
                                                              lambda: weights_copy(model)):
            result.stopped_early = True
            break
        if time_limit_s is not None and time.monotonic() - started > time_limit_s:
            raise TrialTimeout(f"trial ran past trial_timeout_s={time_limit_s:g} "
                               f"(stopped after epoch {epoch})")
    if early_stopping is not None and early_stopping.best_state is not None:
        model.load_state_dict(early_stopping.best_state)
        result.best_epoch = early_stopping.best_epoch
    return result
