"""The pack trainer: K >= 1 members of one shape, trained one epoch at a time.

A pack is fused (``Pack``: stacked weights under vmap, one packed optimizer) when it starts with
several members of a family that fuses; otherwise it is a ``PlainPack`` of ordinary modules, each
with its own ``torch.optim`` optimizer. Either way the trainer steps: a member joins (``add``),
leaves (``remove``, its final weights loaded into the network its trial keeps), goes on from
another member's row (``copy``: population-based training), and ``step_epoch`` trains every
member one epoch on its own batches and returns each member's metrics, or what ended it (a loss
that diverged). Nothing is decided here: how long a member trains, whether it stops early or is
pruned, what its metrics mean for its trial (one member, or one per fold) is the trial's and the
driver's business (``mltune.search.packs``). Gradient scaling, channels_last, autocast and the
epoch's one read-back from the device are written once here, for every K.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mltune.core.interrupts import NEVER, Stop
from mltune.data.folds import Rows
from mltune.data.layout import batch_layout
from mltune.training import defaults
from mltune.training.batches import Batch, Cohorts, batch_orders, own
from mltune.training.fit import (
    DivergedError,
    EarlyStopping,
    FitResult,
    TrialTimeout,
    predict_batches,
)
from mltune.training.packing import Pack
from mltune.training.plain import Optimizers, PlainPack, make_pack
from mltune.training.precision import resolve_precision

PREDICT_ROWS = 1024  # rows of each member scored at once
Score = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
Epoch = dict[str, float] | BaseException  # a member's epoch: its metrics, or what ended it


@dataclass
class Member:
    """One member as the trainer sees it: its values (learning rate, optimizer...), its loss,
    and the rows it trains and is scored on (None: the training split, scored on the
    validation split)."""

    params: Mapping[str, Any]
    loss_fn: Callable[..., torch.Tensor]
    rows: Rows | None = None


@dataclass
class Occupancy:
    """How full a pack's slots were: member-seconds trained over slot-seconds held (each
    epoch's time times its members, and times the pack's size)."""

    member_s: float = 0.0
    slot_s: float = 0.0

    def add(self, seconds: float, members: int, slots: int) -> None:
        self.member_s += seconds * members
        self.slot_s += seconds * slots

    def __iadd__(self, other: Occupancy) -> Occupancy:
        self.member_s += other.member_s
        self.slot_s += other.slot_s
        return self

    @property
    def share(self) -> float | None:
        """Mean live members / slots over the time trained (None before any epoch)."""
        return self.member_s / self.slot_s if self.slot_s else None


class PackTrainer:
    """Members of one shape on ``data``'s device (``capacity``: the pack's slots, for its
    occupancy). The members share the batch size and their number of batch orders (the
    pack's shape key says so); each draws its own batch order from ``seed`` (``batches``).
    ``stop`` is checked between batches."""

    def __init__(self, data: Any, networks: Sequence[nn.Module], members: Sequence[Member], *,
                 score: Score, seed: int, precision: str = "auto", fuse: bool = True,
                 compile_model: bool = False, capacity: int | None = None,
                 stop: Stop = NEVER) -> None:
        self.data, self.score, self.stop = data, score, stop
        self.device = data.x_train.device
        self.pack = make_pack(networks, compile_model, fuse)
        self.pack.to(self.device)
        if self.device.type == "cuda" and data.x_train.dim() == 4:
            self.pack.to(memory_format=torch.channels_last)
        self.amp = resolve_precision(precision, self.device)
        self.scaler = self.amp.scaler()
        self.members = list(members)  # by member number: those who left too
        self.trained = [0] * len(self.members)  # epochs each member trained here
        self.optimizers = Optimizers(self.pack, [m.params for m in self.members])
        self.batch_size = defaults.batch_size(self.members[0].params)
        self.capacity = capacity or len(self.members)
        self.cohorts = Cohorts(seed, self.device, self._orders(networks))
        self.cohorts.join(range(len(self.members)), lambda j: self.members[j].rows)
        self.occupancy = Occupancy()

    @staticmethod
    def _orders(networks: Sequence[nn.Module], pack: int | None = None) -> int:
        """The batch orders the members train on at once (``batch_orders``): one number for
        all of them, whose batches stack (``pack``: the number of the pack they join)."""
        orders = {batch_orders(network) for network in networks} | ({pack} - {None})
        if len(orders) > 1:
            raise ValueError(f"members of a pack train on one number of batch orders; these "
                             f"take {sorted(orders)}")
        return orders.pop()

    @property
    def live(self) -> list[int]:
        """The members still training, in the pack's row order."""
        return list(self.pack.slots)

    @property
    def fused(self) -> bool:
        return isinstance(self.pack, Pack)

    def add(self, networks: Sequence[nn.Module], members: Sequence[Member]) -> list[int]:
        """New members take free slots: rows in the pack and its optimizer, a cohort of their
        own (their epoch 1 starts at the next ``step_epoch``); their member numbers."""
        self._orders(networks, pack=self.cohorts.orders)
        networks = [network.to(self.device) for network in networks]
        if self.device.type == "cuda" and not self.fused:
            for network in networks:
                network.to(memory_format=torch.channels_last)
        numbers = self.pack.add(networks)
        assert numbers[0] == len(self.members), "member numbers follow the members list"
        self.members += members
        self.trained += [0] * len(members)
        self.optimizers.add([m.params for m in members], networks)
        self.cohorts.join(numbers, lambda j: self.members[j].rows)
        return numbers

    def remove(self, leaving: Mapping[int, nn.Module | None]) -> None:
        """Members leave now; each one's final weights go into the network given for it (its
        trial's ordinary network; None: discarded). What the trainer held for them goes."""
        self.optimizers.keep(self.pack.set_aside(leaving))
        for j, network in leaving.items():
            if network is not None:
                self.pack.load_into(j, network)
            self.pack.forget(j)
            self.optimizers.forget(j)
            self.cohorts.leave(j)

    def weights(self, j: int) -> dict[str, torch.Tensor]:
        """A copy of member ``j``'s weights and buffers, as its network's state dict."""
        return self.pack.member_state(j)

    def copy(self, source: int, target: int, values: Mapping[str, Any],
             rates_from: nn.Module | None = None) -> None:
        """Member ``target`` goes on from ``source``'s row (weights, buffers, optimizer state)
        with new ``values`` of its free hyperparameters; ``rates_from``: a network of the new
        values, whose dropout rates ``target`` takes."""
        if source not in self.pack.slots or target not in self.pack.slots:
            raise ValueError(f"members {source} and {target} must both be training; training: "
                             f"{self.pack.slots}")
        self.pack.load_member_state(target, self.pack.member_state(source))
        self.optimizers.copy(source, target, values)
        self.members[target].params = {**self.members[source].params, **values}
        if rates_from is not None:
            self.pack.set_rates(target, rates_from)

    def step(self, batch: Batch, training: Sequence[int]) -> torch.Tensor:
        """One optimizer step of the members ``training`` on ``batch``: the losses, (K,), or
        a lone plain member's loss alone (0-d: it broadcasts where (1,) would)."""
        if len(training) == 1 and isinstance(self.pack, PlainPack) and not batch.per_member:
            return self._step_lone(self.pack, batch, training[0])
        with self.amp.autocast():
            outputs = self.pack(batch_layout(batch.x), per_member=batch.per_member)
            each = [self.members[j].loss_fn(*own(outputs[row], batch.target(row),
                                                 batch.rows[row]))
                    for row, j in enumerate(training)]
            total = each[0] if len(each) == 1 else torch.stack(each).sum()
        self.optimizers.zero_grad()
        self.scaler.scale(total).backward()  # each member gets its own loss's gradient
        self.optimizers.step(self.scaler, batch.active)
        return each[0].unsqueeze(0) if len(each) == 1 else torch.stack(each)

    def _step_lone(self, pack: PlainPack, batch: Batch, j: int) -> torch.Tensor:
        """A pack of one: its network and optimizer called directly, as a loop written for
        one network does (no (1, batch, ...) view to index, no list of losses)."""
        with self.amp.autocast():
            outputs = pack.lone(j)(batch_layout(batch.x))
            loss = self.members[j].loss_fn(*own(outputs, batch.target(0), batch.rows[0]))
        optimizer = self.optimizers.plain[j]
        assert optimizer is not None, "a training member has its optimizer"
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        return loss

    def step_epoch(self) -> dict[int, Epoch]:
        """One epoch of every live member: its metrics (``train_loss``, ``val_loss``,
        ``val_<score>``), or a ``DivergedError`` when its loss stopped being finite."""
        started = time.monotonic()
        training = self.live
        self.pack.train()
        loss_sums = torch.zeros(len(training), device=self.device)
        counted = [0] * len(training)  # rows each member trained on this epoch
        data = self.data
        for batch in self.cohorts.epoch(training, data.x_train, data.y_train, self.batch_size):
            self.stop.check()  # Ctrl-C, SIGTERM, a stop asked for: here, between batches
            losses = self.step(batch, training).detach().float()
            rows = batch.rows
            if rows.count(rows[0]) == len(rows):  # the same rows for every member
                loss_sums += losses * rows[0]
            else:
                loss_sums += losses * torch.tensor(rows, device=self.device)
            counted = [c + r for c, r in zip(counted, rows, strict=True)]
        # the epoch's one read-back
        train_losses = (loss_sums / torch.tensor(counted, device=self.device)).tolist()
        scored = self._validate(training)
        results: dict[int, Epoch] = {}
        for row, j in enumerate(training):
            self.trained[j] += 1
            results[j] = self._measure(j, train_losses[row], *scored(row))
        self.occupancy.add(time.monotonic() - started, len(training), self.capacity)
        return results

    def _measure(self, j: int, train_loss: float, outputs: torch.Tensor,
                 targets: torch.Tensor) -> Epoch:
        if not math.isfinite(train_loss):
            return DivergedError(f"train_loss became {train_loss} at epoch {self.trained[j]}")
        metrics = {"train_loss": train_loss,
                   "val_loss": float(self.members[j].loss_fn(outputs, targets))}
        metrics.update({f"val_{k}": v for k, v in self.score(outputs, targets).items()})
        return metrics

    @torch.no_grad()
    def _validate(self, training: Sequence[int]
                  ) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
        """Every member's outputs on the rows it is scored on, and their targets (by row):
        the validation split for all, or each member's own scored rows (a fold's rows,
        cycled to the largest one's size, go through the pack as a (K, rows, ...) input)."""
        data, pack = self.data, self.pack
        rows = [self.members[j].rows for j in training]
        if all(r is None for r in rows):
            outputs = predict_batches(pack, data.x_val, precision=self.amp, dim=1)
            return lambda row: (outputs[row], data.y_val)
        if any(r is None for r in rows):
            raise ValueError("members of a pack are all scored on their own rows, or none is")
        own_rows = [r.scored for r in rows if r is not None]
        sizes = [len(r) for r in own_rows]
        largest = max(sizes)
        index = torch.stack([r.repeat(math.ceil(largest / len(r)))[:largest] for r in own_rows])
        pack.eval()
        with self.amp.autocast():
            parts = [pack(batch_layout(data.x_train[index[:, start:start + PREDICT_ROWS]]),
                          per_member=True) for start in range(0, largest, PREDICT_ROWS)]
        outputs = torch.cat(parts, dim=1).float()
        return lambda row: (outputs[row, :sizes[row]], data.y_train[own_rows[row]])


def fit(model: nn.Module, data: Any, params: Mapping[str, Any], *,
        loss_fn: Callable[..., torch.Tensor], score: Score, epochs: int, seed: int,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        early_stopping: EarlyStopping | None = None, time_limit_s: float | None = None,
        precision: str = "auto", compile_model: bool = False) -> FitResult:
    """Train one ``model`` (a pack of one) and raise what stopped it, for callers outside a
    search (benchmarks, tests); ``model`` ends with the best epoch's weights under
    ``early_stopping``."""
    trainer = PackTrainer(data, [model], [Member(params, loss_fn)], score=score, seed=seed,
                          precision=precision, compile_model=compile_model)
    result, started = FitResult(), time.monotonic()
    for epoch in range(1, epochs + 1):
        measured = trainer.step_epoch()[0]
        if isinstance(measured, BaseException):
            raise measured
        result.history.append(measured)
        if on_epoch is not None:
            on_epoch(epoch, measured)
        if early_stopping is not None and early_stopping.step(epoch, measured,
                                                              lambda: trainer.weights(0)):
            result.stopped_early = True
            break
        if time_limit_s is not None and time.monotonic() - started > time_limit_s:
            raise TrialTimeout(f"trial ran past trial_timeout_s={time_limit_s:g} (stopped "
                               f"after epoch {epoch})")
    trainer.remove({0: model})
    if early_stopping is not None and early_stopping.best_state is not None:
        model.load_state_dict(early_stopping.best_state)
        result.best_epoch = early_stopping.best_epoch
    return result
