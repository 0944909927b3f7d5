"""The training loop: one screen, top to bottom.

Data is already on the device; batches are index slices of it (no DataLoader, no worker
processes). The loop never reads a value back from the device inside an epoch: the loss sum is
accumulated on the device and read once per epoch, where NaN/inf is also caught.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mltune.errors import SpecError
from mltune.optim import make_optimizer

EpochCallback = Callable[[int, dict[str, float]], None]


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class FitResult:
    """What training produced: per-epoch metrics and the last epoch's values."""

    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an unavailable device is a SpecError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpecError(f"device: {name!r} asked for, but this machine has no CUDA device; "
                        "use device: auto or cpu")
    if device.type == "cuda" and device.index is not None \
            and device.index >= torch.cuda.device_count():
        raise SpecError(f"device: {name!r} does not exist; this machine has "
                        f"{torch.cuda.device_count()} CUDA device(s)")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def predict_batches(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Model outputs for ``x`` in eval mode, in batches."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


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
) -> FitResult:
    """Train ``model`` on ``data`` (a TaskData already on the model's device)."""
    device = data.x_train.device
    model.to(device)
    optimizer = make_optimizer(model, dict(params))
    batch_size = int(params.get("batch_size", 64))
    generator = torch.Generator(device=device).manual_seed(seed)
    n = len(data.x_train)
    result = FitResult()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            loss = loss_fn(model(data.x_train[index]), data.y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(index)
        train_loss = float(loss_sum / n)  # the one read-back of the epoch
        if not math.isfinite(train_loss):
            raise DivergedError(f"train_loss became {train_loss} at epoch {epoch}")
        outputs = predict_batches(model, data.x_val)
        metrics = {"train_loss": train_loss,
                   "val_loss": float(loss_fn(outputs, data.y_val))}
        metrics.update({f"val_{k}": v for k, v in score(outputs, data.y_val).items()})
        result.history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return result
