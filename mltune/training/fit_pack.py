"""The training loop of a pack: ``fit`` for K members at once, each judged on its own.

One forward and one backward pass per batch for every member (``Pack``); each member has its
own loss, its own optimizer values (``PackedOptimizer``) and its own metrics. A member that
diverges, is pruned, stops early or runs out of time stops alone, at the end of an epoch: it
is set aside (its weights kept, no longer computed) and the others go on, faster. As in
``fit``, nothing is read back from the device inside an epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mltune.core import interrupts
from mltune.data.streaming import batches
from mltune.training import defaults
from mltune.training.fit import (
    DivergedError,
    EarlyStopping,
    FitResult,
    TrialTimeout,
    batch_layout,
    predict_batches,
)
from mltune.training.packed_optim import make_packed_optimizer
from mltune.training.packing import Pack
from mltune.training.precision import resolve_precision


@dataclass
class Member:
    """One member as the loop sees it. ``on_epoch`` may raise to stop this member alone (a
    pruning rule does); ``error`` is what stopped it, when something did."""

    params: Mapping[str, Any]
    loss_fn: Callable[..., torch.Tensor]
    on_epoch: Callable[[int, dict[str, float]], None]
    early_stopping: EarlyStopping | None = None
    result: FitResult | None = None
    error: BaseException | None = None
    active: bool = True


def fit_pack(
    pack: Pack,
    members: Sequence[Member],
    data: Any,
    *,
    score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
    epochs: int,
    seed: int,
    time_limit_s: float | None = None,
    precision: str = "auto",
    on_epoch_all: Callable[[int, Mapping[int, dict[str, float]]], None] | None = None,
) -> None:
    """Train the pack on ``data``; each member's ``result`` (and ``error``) is filled in.

    The members share the batch size and the batch order (``seed``), as the pack's shape key
    says; an interrupt (Ctrl-C) stops the whole pack and is raised. ``on_epoch_all`` gets
    every active member's metrics of an epoch (by member index) before any member's
    ``on_epoch``, so a pruning rule can judge the members against each other.
    """
    started = time.monotonic()
    device = data.x_train.device
    pack.to(device)
    amp = resolve_precision(precision, device)
    optimizer = make_packed_optimizer(list(pack.parameters()), [m.params for m in members])
    batch_size = defaults.batch_size(members[0].params)
    generator = torch.Generator(device=device).manual_seed(seed)
    n = len(data.x_train)
    for member in members:
        member.result = FitResult()

    def stop(j: int, error: BaseException | None = None) -> None:
        members[j].active, members[j].error = False, error

    for epoch in range(1, epochs + 1):
        training = pack.slots  # the members still training, in the pack's row order
        if not training:
            break
        pack.train()
        order = torch.randperm(n, device=device, generator=generator)
        loss_sums = torch.zeros(len(training), device=device)
        inputs = batches(data.x_train, order, batch_size)
        for start, x in zip(range(0, n, batch_size), inputs, strict=True):
            interrupts.check()
            index = order[start:start + batch_size]
            targets = data.y_train[index]
            with amp.autocast():
                outputs = pack(batch_layout(x))
                losses = torch.stack([members[j].loss_fn(outputs[row], targets)
                                      for row, j in enumerate(training)])
            optimizer.zero_grad()
            losses.sum().backward()  # each member's weights get its own loss's gradient
            optimizer.step()
            loss_sums += losses.detach().float() * len(index)
        train_losses = (loss_sums / n).tolist()  # the one read-back of the epoch
        outputs = predict_batches(pack, data.x_val, precision=amp, dim=1)
        measured: dict[int, dict[str, float]] = {}
        for row, j in enumerate(training):
            metrics = _measure(j, members[j], epoch, train_losses[row], outputs[row], data,
                               score, stop)
            if metrics is not None:
                measured[j] = metrics
        if on_epoch_all is not None and measured:
            on_epoch_all(epoch, measured)
        for j, metrics in measured.items():
            _judge(pack, j, members[j], epoch, metrics, stop)
        if time_limit_s is not None and time.monotonic() - started > time_limit_s:
            for j in training:
                if members[j].active:
                    stop(j, TrialTimeout(f"trial ran past trial_timeout_s={time_limit_s:g} "
                                         f"(stopped after epoch {epoch})"))
        stopped = [j for j in training if not members[j].active]
        if stopped:  # they leave the pack; the optimizer keeps the rows of those who stay
            rows = pack.set_aside(stopped)
            if rows:
                optimizer.keep(rows, list(pack.parameters()))
    for j, member in enumerate(members):
        stopper = member.early_stopping
        if stopper is not None and stopper.best_state is not None and member.error is None:
            pack.load_member_state(j, stopper.best_state)
            assert member.result is not None
            member.result.best_epoch = stopper.best_epoch


def _measure(j: int, member: Member, epoch: int, train_loss: float, outputs: torch.Tensor,
             data: Any, score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
             stop: Callable[[int, BaseException | None], None]) -> dict[str, float] | None:
    """One member's metrics of the epoch (None when its loss diverged: it stops)."""
    if not math.isfinite(train_loss):
        stop(j, DivergedError(f"train_loss became {train_loss} at epoch {epoch}"))
        return None
    metrics = {"train_loss": train_loss, "val_loss": float(member.loss_fn(outputs, data.y_val))}
    metrics.update({f"val_{k}": v for k, v in score(outputs, data.y_val).items()})
    assert member.result is not None
    member.result.history.append(metrics)
    return metrics


def _judge(pack: Pack, j: int, member: Member, epoch: int, metrics: dict[str, float],
           stop: Callable[[int, BaseException | None], None]) -> None:
    """One member's epoch after every member was measured: its callback, its early
    stopping."""
    assert member.result is not None
    try:
        member.on_epoch(epoch, metrics)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # pruned, or its logging failed: this member stops
        stop(j, exc)
        return
    stopper = member.early_stopping
    if stopper is not None and stopper.step(epoch, metrics, lambda: pack.member_state(j)):
        member.result.stopped_early = True
        stop(j, None)
