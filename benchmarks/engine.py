"""The pack trainer vs the loop it replaced: a pack of one against the previous ``fit`` (copied
below from the code before the engine), and a fused pack of 8 against 8 trials one at a time.
Run in two checkouts (``PYTHONPATH=...``), the ratios of each to the same copied loop compare
two versions of the engine measured side by side.

The same MLP configurations on a synthetic classification table (fp32, the CPU by default),
run interleaved (old then new, new then old, ...) so drift and order hit both alike;
printed: the median seconds of each and their ratio (target: within 3%), then trials/hour
for K = 8 packed and K = 1.
No MLflow: the loop alone.

Run: python benchmarks/engine.py [--rows 20000] [--epochs 3] [--repeat 5] [--members 8]
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from mltune.core.interrupts import NEVER
from mltune.data.streaming import batches
from mltune.models.mlp import MLP
from mltune.training.engine import Member, PackTrainer, fit
from mltune.training.fit import (
    DivergedError,
    EarlyStopping,
    FitResult,
    TrialTimeout,
    batch_layout,
    predict_batches,
    weights_copy,
)
from mltune.training.optim import make_optimizer
from mltune.training.precision import resolve_precision

EpochCallback = Callable[[int, dict[str, float]], None]


def old_fit(
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
    batch_size = int(params.get("batch_size", 64))
    generator = torch.Generator(device=device).manual_seed(seed)
    n = len(data.x_train)
    result = FitResult()
    for epoch in range(1, epochs + 1):
        network.train()
        order = torch.randperm(n, device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        inputs = batches(data.x_train, order, batch_size)
        for start, x in zip(range(0, n, batch_size), inputs, strict=True):
            NEVER.check()  # Ctrl-C / SIGTERM stop here, between batches
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


def table(rows: int, seed: int = 0) -> SimpleNamespace:
    torch.manual_seed(seed)
    x = torch.randn(rows, 32)
    y = ((x[:, :4].sum(1) + 0.5 * x[:, 4:8].prod(1)) > 0).long()
    cut = int(rows * 0.8)
    return SimpleNamespace(x_train=x[:cut], y_train=y[:cut], x_val=x[cut:], y_val=y[cut:])


def network(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(32, 2, num_layers=3, hidden_size=128, dropout=0.1, norm="batch")


def accuracy(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    return {"accuracy": float((out.argmax(1) == y).float().mean())}


def params(j: int) -> dict[str, Any]:
    return {"learning_rate": 1e-3 * (1 + j), "optimizer": "adam", "batch_size": 64}


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--members", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = table(args.rows)
    common = {"loss_fn": functional.cross_entropy, "score": accuracy, "epochs": args.epochs,
              "seed": 0, "precision": "fp32"}
    old_fit(network(0), data, params(0), **common)  # warm-up: first calls pay torch's set-up
    fit(network(0), data, params(0), **common)
    old_s, new_s = [], []
    for round_ in range(args.repeat):  # interleaved, each going first every other round
        pair = [(old_s, lambda: old_fit(network(0), data, params(0), **common)),
                (new_s, lambda: fit(network(0), data, params(0), **common))]
        for times, run in pair if round_ % 2 == 0 else pair[::-1]:
            times.append(timed(run))
    old, new = statistics.median(old_s), statistics.median(new_s)
    print(f"K=1: previous fit {old:.3f} s, engine {new:.3f} s, ratio {new / old:.3f}")

    k = args.members

    def packed() -> None:
        members = [Member(params(j), functional.cross_entropy) for j in range(k)]
        trainer = PackTrainer(data, [network(j) for j in range(k)], members, score=accuracy,
                              seed=0, precision="fp32")
        for _ in range(args.epochs):
            trainer.step_epoch()

    def alone() -> None:
        for j in range(k):
            fit(network(j), data, params(j), **common)

    packed_s = statistics.median(timed(packed) for _ in range(max(1, args.repeat // 2)))
    alone_s = statistics.median(timed(alone) for _ in range(max(1, args.repeat // 2)))
    per_hour_packed, per_hour_alone = 3600 * k / packed_s, 3600 * k / alone_s
    print(f"K={k} packed: {per_hour_packed:.0f} trials/hour; K=1: {per_hour_alone:.0f} "
          f"trials/hour; ratio {per_hour_packed / per_hour_alone:.2f}")
    print(json.dumps({"k1_previous_s": old, "k1_engine_s": new, "k1_ratio": new / old,
                      "members": k, "packed_trials_per_hour": per_hour_packed,
                      "alone_trials_per_hour": per_hour_alone}))


if __name__ == "__main__":
    main()
