"""The one training loop: a pack of K >= 1 members, each judged on its own.

A pack is fused (``Pack``: stacked weights under vmap, one ``PackedOptimizer``) when K > 1 and
the family allows; otherwise it is a ``PlainPack`` of ordinary modules, each with its own
``torch.optim`` optimizer (a pack of one is an ordinary trial, as fast as a loop written for
one network). Gradient scaling, channels_last, autocast, divergence, timeouts, early stopping
and best-weights restore are written once here, for every K. A member that stops (diverged,
stopped by its callback, early-stopped, out of time) leaves at the end of an epoch; the others
go on. Nothing is read back from the device inside an epoch.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mltune.core import interrupts
from mltune.data.folds import Fold
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
from mltune.training.optim import make_optimizer
from mltune.training.packed_optim import make_packed_optimizer
from mltune.training.packing import Pack, can_pack
from mltune.training.precision import resolve_precision


@dataclass(frozen=True)
class Exploit:
    """What a member's ``on_epoch`` returns to go on from member ``source``'s row (weights,
    buffers, optimizer state) with new ``values`` of its free hyperparameters (population-based
    training: a scheduler's EXPLOIT)."""

    source: int
    values: Mapping[str, Any]


def _optimizer_key(name: str) -> str:
    """A hyperparameter's name as the optimizer calls it (``learning_rate`` -> ``lr``)."""
    if name == "learning_rate":
        return "lr"
    return name.split(".", 1)[1] if name.startswith("optimizer.") else name


@dataclass
class Member:
    """One member as the loop sees it. ``on_epoch`` may raise to stop this member alone (a
    scheduler's STOP does); ``error`` is what stopped it, when something did."""

    params: Mapping[str, Any]
    loss_fn: Callable[..., torch.Tensor]
    on_epoch: Callable[[int, dict[str, float]], Exploit | None]
    early_stopping: EarlyStopping | None = None
    epochs: int | None = None  # the most epochs it may train (None: the pack's ``epochs``)
    result: FitResult | None = None
    error: BaseException | None = None
    active: bool = True
    started: float = 0.0  # when it joined (time.monotonic()), for ``time_limit_s``
    # the network its params build (its weights unused): where an exploit's new dropout
    # rates are read from; None when no value an exploit sets lives in the network
    rebuild: Callable[[Mapping[str, Any]], nn.Module] | None = None
    # cross-validation: the rows it trains on and is scored on (of ``data.x_train``, the
    # pooled splits); None: all training rows, scored on the validation split
    fold: Fold | None = None


PREDICT_ROWS = 1024  # rows of each member scored at once


class PlainPack(nn.Module):
    """K ordinary networks behind ``Pack``'s interface: for K = 1, and for families that
    cannot be fused (recurrent ones), each member trained by its own torch optimizer."""

    def __init__(self, networks: Sequence[nn.Module], compile_model: bool = False) -> None:
        super().__init__()
        if not networks:
            raise ValueError("a pack needs at least one member")
        self.networks = nn.ModuleList(networks)
        # what runs the forward pass: ``torch.compile`` of each network when asked (the same
        # parameters); a plain list, so the compiled wrappers are no submodules
        self.compile_model = compile_model
        self._run = [torch.compile(n) if compile_model else n for n in networks]
        self.slots = list(range(len(networks)))

    def forward(self, x: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        if len(self.slots) == 1 and not per_member:  # a view: a lone trial pays no stack
            return self._run[self.slots[0]](x).unsqueeze(0)
        return torch.stack([self._run[j](x[row] if per_member else x)
                            for row, j in enumerate(self.slots)])

    def add(self, networks: Sequence[nn.Module]) -> list[int]:
        """Members join a running pack (on its device already); their member numbers."""
        first = len(self.networks)
        for network in networks:
            self.networks.append(network)
            self._run.append(torch.compile(network) if self.compile_model else network)
        joined = list(range(first, len(self.networks)))
        self.slots += joined
        return joined

    def set_aside(self, members: Iterable[int]) -> list[int]:
        """Members that stopped are no longer computed; the rows of those who stay."""
        gone = set(members)
        kept = [row for row, j in enumerate(self.slots) if j not in gone]
        self.slots = [self.slots[row] for row in kept]
        return kept

    def member_state(self, j: int) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.networks[j].state_dict().items()}

    @torch.no_grad()
    def load_member_state(self, j: int, state: dict[str, torch.Tensor]) -> None:
        self.networks[j].load_state_dict(state)

    @torch.no_grad()
    def set_rates(self, j: int, network: nn.Module) -> None:
        """Member ``j``'s dropout rates become ``network``'s."""
        rates = {name: m.p for name, m in network.named_modules() if isinstance(m, nn.Dropout)}
        for name, module in self.networks[j].named_modules():
            if isinstance(module, nn.Dropout) and name in rates:
                module.p = rates[name]

    def load_into(self, j: int, network: nn.Module) -> nn.Module:
        if network is not self.networks[j]:
            network.load_state_dict(self.member_state(j))
        return network


AnyPack = Pack | PlainPack


def make_pack(networks: Sequence[nn.Module], compile_model: bool = False,
              fuse: bool = True) -> AnyPack:
    """Fused when there are several members of a family that fuses (and ``fuse``), plain
    otherwise (``compile_model``: the plain members' forward passes through
    ``torch.compile``)."""
    if fuse and len(networks) > 1 and can_pack(networks[0]) is None:
        return Pack(networks)
    return PlainPack(networks, compile_model)


class _Optimizers:
    """The pack's optimizer(s) as the loop steps them: one packed optimizer over the stacked
    weights, or one torch optimizer per plain member; both through the gradient scaler."""

    def __init__(self, pack: AnyPack, members: Sequence[Member]) -> None:
        self.pack = pack
        if isinstance(pack, Pack):
            self.packed = make_packed_optimizer(list(pack.parameters()),
                                                [m.params for m in members])
        else:
            self.plain = [make_optimizer(net, dict(m.params))
                          for net, m in zip(pack.networks, members, strict=True)]

    def zero_grad(self) -> None:
        if isinstance(self.pack, Pack):
            self.packed.zero_grad()
        else:
            for j in self.pack.slots:
                self.plain[j].zero_grad(set_to_none=True)

    def step(self, scaler: torch.amp.GradScaler, active: Sequence[bool] | None) -> None:
        """One step of every member, or of the ``active`` ones (by row) only."""
        if isinstance(self.pack, Pack):
            scaler.step(self.packed, active=active)  # type: ignore[arg-type]
        else:
            for row, j in enumerate(self.pack.slots):
                if active is None or active[row]:
                    scaler.step(self.plain[j])
        scaler.update()

    @torch.no_grad()
    def copy(self, source: int, target: int, values: Mapping[str, Any]) -> None:
        """Member ``target`` takes ``source``'s optimizer state and values, then ``values``."""
        new = {_optimizer_key(k): float(v) for k, v in values.items()}
        if isinstance(self.pack, Pack):
            rs, rt = self.pack.slots.index(source), self.pack.slots.index(target)
            for state in self.packed.state:
                for tensor in state.values():
                    tensor[rt].copy_(tensor[rs])
            for key, per_member in self.packed.hyper.items():
                per_member[rt] = new.get(key, per_member[rs])
            self.packed.steps[rt] = self.packed.steps[rs]
            self.packed.changed()
            return
        # a deep copy: load_state_dict keeps the very tensors it is given (step, moments)
        self.plain[target].load_state_dict(copy.deepcopy(self.plain[source].state_dict()))
        for group in self.plain[target].param_groups:
            group.update({k: v for k, v in new.items() if k in group})

    def keep(self, rows: list[int]) -> None:
        if isinstance(self.pack, Pack):
            self.packed.keep(rows, list(self.pack.parameters()))

    def add(self, members: Sequence[Member], networks: Sequence[nn.Module]) -> None:
        """Members that joined the pack (already added to it) get their optimizer rows."""
        if isinstance(self.pack, Pack):
            self.packed.add(list(self.pack.parameters()), [m.params for m in members])
        else:
            self.plain += [make_optimizer(net, dict(m.params))
                           for net, m in zip(networks, members, strict=True)]


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


class _Cohorts:
    """Each member's batch order: members that started together on the same rows share one
    generator (the search's seed), so a member draws the same batches in its own epoch e as it
    would alone, whenever it joined. One cohort: one shared batch for the whole pack (no
    copies); several: a (K, batch, ...) input, each row its member's own batch.

    Members on folds of different sizes (cross-validation) each pass over their own rows once
    an epoch: a shorter order is cycled to the longest one's length so that the batches stack,
    and a member whose own rows are spent sits the remaining batches out (``active``)."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed, self.device = seed, device
        self.of: dict[int, tuple[torch.Generator, Fold | None]] = {}  # member -> cohort

    def join(self, members: Iterable[int], folds: Callable[[int], Fold | None]) -> None:
        made: dict[int, torch.Generator] = {}
        for j in members:
            fold = folds(j)
            if id(fold) not in made:
                made[id(fold)] = torch.Generator(device=self.device).manual_seed(self.seed)
            self.of[j] = (made[id(fold)], fold)

    def epoch(self, training: Sequence[int], x: Any, y: torch.Tensor, batch_size: int
              ) -> Iterable[tuple[torch.Tensor, torch.Tensor | list[torch.Tensor], list[int],
                                  bool, list[bool] | None]]:
        """This epoch's batches: (input, targets, each member's rows in it, per member?,
        which members train on it: None for all)."""
        cohorts: dict[tuple[int, int], tuple[torch.Generator, Fold | None]] = {}
        for j in training:
            generator, fold = self.of[j]
            cohorts.setdefault((id(generator), id(fold)), (generator, fold))
        orders = []
        for generator, fold in cohorts.values():
            rows = len(y) if fold is None else len(fold.train)
            order = torch.randperm(rows, device=self.device, generator=generator)
            orders.append(order if fold is None else fold.train[order])
        lengths = [len(order) for order in orders]
        n = max(lengths)
        even = min(lengths) == n  # every member's rows fill every batch (no folds, or equal)
        orders = [order if len(order) == n else order.repeat(math.ceil(n / len(order)))[:n]
                  for order in orders]
        keys = list(cohorts)
        which = [keys.index((id(self.of[j][0]), id(self.of[j][1]))) for j in training]
        streams = [batches(x, order, batch_size) for order in orders]
        for start, inputs in zip(range(0, n, batch_size), zip(*streams, strict=True),
                                 strict=True):
            indices = [order[start:start + batch_size] for order in orders]
            if even:
                rows, active = [len(indices[0])] * len(which), None
            else:
                rows = [max(0, min(len(indices[0]), lengths[c] - start)) for c in which]
                active = None if min(rows) > 0 else [r > 0 for r in rows]
            if len(inputs) == 1:
                yield inputs[0], y[indices[0]], rows, False, active
                continue
            yield (torch.stack([inputs[c] for c in which]), [y[indices[c]] for c in which],
                   rows, True, active)


def train(
    pack: AnyPack,
    members: list[Member],
    data: Any,
    *,
    score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
    epochs: int,
    seed: int,
    time_limit_s: float | None = None,
    precision: str = "auto",
    on_epoch_all: Callable[[int, Mapping[int, dict[str, float]]], None] | None = None,
    refill: Callable[[int], Sequence[tuple[nn.Module, Member]]] | None = None,
    on_leave: Callable[[list[int]], None] | None = None,
    deadline: float | None = None,
) -> Occupancy:
    """Train the pack on ``data`` (a TaskData on the device); each member's ``result`` (and
    ``error``) is filled in.

    The members share the batch size (the pack's shape key says so); each counts its own
    epochs (``epochs`` at most) and draws its own batch order from ``seed``. An interrupt
    stops the whole pack and is raised. ``on_epoch_all`` gets every active member's metrics
    of an epoch (by member index, with the member's own epoch numbers in its history) before
    any member's ``on_epoch``, so a scheduler can judge the members against each other.

    The pack stays full: at each epoch end, when members left and others still train,
    ``refill(free)`` may answer new ``(network, Member)`` pairs of the pack's shape, which join
    as new members (appended to ``members``). ``on_leave(js)`` runs as members ``js`` leave,
    their final weights in place (``pack.member_state(j)``), to be taken then: a long-lived
    pack lets go of what a member that left holds (its weights, optimizer state and
    best-epoch copy). Past ``deadline`` (``time.monotonic()``), every member stops at the end
    of its epoch, finished (``result.stopped = "time_budget"``).
    """
    device = data.x_train.device
    pack.to(device)
    if device.type == "cuda" and data.x_train.dim() == 4:
        pack.to(memory_format=torch.channels_last)
    amp = resolve_precision(precision, device)
    scaler = amp.scaler()
    optimizers = _Optimizers(pack, members)
    batch_size = defaults.batch_size(members[0].params)
    capacity = len(members)
    cohorts = _Cohorts(seed, device)
    cohorts.join(range(len(members)), lambda j: members[j].fold)
    for member in members:
        member.result = FitResult()
        member.started = time.monotonic()

    def stop(j: int, error: BaseException | None = None) -> None:
        members[j].active, members[j].error = False, error

    step, occupancy = 0, Occupancy()
    while pack.slots:
        step += 1
        epoch_started = time.monotonic()
        training = list(pack.slots)  # the members still training, in the pack's row order
        pack.train()
        loss_sums = torch.zeros(len(training), device=device)
        counted = [0] * len(training)  # rows each member trained on this epoch
        for x, targets, rows, per_member, active in cohorts.epoch(training, data.x_train,
                                                                  data.y_train, batch_size):
            interrupts.check()  # Ctrl-C / SIGTERM stop here, between batches
            with amp.autocast():
                outputs = pack(batch_layout(x), per_member=per_member)
                each = [members[j].loss_fn(*_own(outputs[row],
                                                 targets[row] if per_member else targets,
                                                 rows[row]))
                        for row, j in enumerate(training)]
                total = each[0] if len(each) == 1 else torch.stack(each).sum()
            optimizers.zero_grad()
            scaler.scale(total).backward()  # each member gets its own loss's gradient
            losses = each[0].unsqueeze(0) if len(each) == 1 else torch.stack(each)
            optimizers.step(scaler, active)
            if rows.count(rows[0]) == len(rows):  # the same rows for every member
                loss_sums += losses.detach().float() * rows[0]
            else:
                loss_sums += losses.detach().float() * torch.tensor(rows, device=device)
            counted = [c + r for c, r in zip(counted, rows, strict=True)]
        # the epoch's one read-back
        train_losses = (loss_sums / torch.tensor(counted, device=device)).tolist()
        scored = _validate(pack, [members[j].fold for j in training], data, amp)
        measured: dict[int, dict[str, float]] = {}
        for row, j in enumerate(training):
            metrics = _measure(j, members[j], train_losses[row], *scored(row), score, stop)
            if metrics is not None:
                measured[j] = metrics
        if on_epoch_all is not None and measured:
            on_epoch_all(step, measured)
        exploits = {j: _judge(pack, j, members[j], metrics, stop)
                    for j, metrics in measured.items()}
        for j, answer in exploits.items():
            if answer is not None and members[j].active:
                _exploit(pack, optimizers, members, j, answer)
        now = time.monotonic()
        occupancy.add(now - epoch_started, len(training), capacity)
        for j in training:
            member = members[j]
            assert member.result is not None
            if not member.active:
                continue
            if len(member.result.history) >= (member.epochs or epochs):
                stop(j, None)  # done: it trained every epoch it may
            elif deadline is not None and now > deadline:
                member.result.stopped = "time_budget"
                stop(j, None)
            elif time_limit_s is not None and now - member.started > time_limit_s:
                stop(j, TrialTimeout(f"trial ran past trial_timeout_s={time_limit_s:g} "
                                     f"(stopped after epoch {len(member.result.history)})"))
        stopped = [j for j in training if not members[j].active]
        if stopped:  # they leave the pack; the optimizer keeps the rows of those who stay
            optimizers.keep(pack.set_aside(stopped))
            for j in stopped:
                _leave(pack, j, members[j])
            if on_leave is not None:
                on_leave(stopped)
                for j in stopped:  # taken out by on_leave: what they hold can go
                    _forget(pack, optimizers, members[j], j)
        # a pack whose members all ended has ended: the next one starts from the sampler's
        # own point (its shape free), so only a pack still training takes newcomers
        free = capacity - len(pack.slots)
        if refill is not None and pack.slots and free > 0 and (deadline is None
                                                               or now <= deadline):
            _join(pack, optimizers, cohorts, members, refill(free))
    return occupancy


def _own(outputs: torch.Tensor, targets: torch.Tensor, rows: int
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """A member's part of a batch: its first ``rows`` rows when the batch runs past the end
    of its fold's rows (the rest were cycled in to stack with larger folds); the whole batch
    when it has none (it sits this batch out: its loss is not counted, its weights kept)."""
    if 0 < rows < len(targets):
        return outputs[:rows], targets[:rows]
    return outputs, targets


def _leave(pack: AnyPack, j: int, member: Member) -> None:
    """A member that finished ends with its best epoch's weights (under early stopping)."""
    stopper = member.early_stopping
    if stopper is not None and stopper.best_state is not None and member.error is None:
        pack.load_member_state(j, stopper.best_state)
        assert member.result is not None
        member.result.best_epoch = stopper.best_epoch


def _forget(pack: AnyPack, optimizers: _Optimizers, member: Member, j: int) -> None:
    if member.early_stopping is not None:
        member.early_stopping.best_state = None
    if isinstance(pack, Pack):
        pack.forget(j)
    else:
        optimizers.plain[j] = None  # type: ignore[call-overload]


def _join(pack: AnyPack, optimizers: _Optimizers, cohorts: _Cohorts, members: list[Member],
          joining: Sequence[tuple[nn.Module, Member]]) -> None:
    """New members take free slots: rows in the pack and its optimizer, a cohort of their
    own (their epoch 1 starts now), appended to ``members``."""
    if not joining:
        return
    device = next(pack.parameters()).device
    networks = [network.to(device) for network, _ in joining]
    if device.type == "cuda" and isinstance(pack, PlainPack):
        for network in networks:
            network.to(memory_format=torch.channels_last)
    numbers = pack.add(networks)
    for number, (_, member) in zip(numbers, joining, strict=True):
        assert number == len(members), "member numbers follow the members list"
        member.result, member.started = FitResult(), time.monotonic()
        members.append(member)
    optimizers.add([m for _, m in joining], networks)
    cohorts.join(numbers, lambda j: members[j].fold)


@torch.no_grad()
def _validate(pack: AnyPack, folds: Sequence[Fold | None], data: Any, amp: Any
              ) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """Every member's outputs on the rows it is scored on, and their targets (by row): the
    validation split for all, or each member's own fold (cross-validation: a fold's rows,
    cycled to the largest fold's size, go through the pack as a (K, rows, ...) input)."""
    if all(fold is None for fold in folds):
        outputs = predict_batches(pack, data.x_val, precision=amp, dim=1)
        return lambda row: (outputs[row], data.y_val)
    if any(fold is None for fold in folds):
        raise ValueError("members of a pack are all scored on folds, or none is")
    sizes = [len(fold.val) for fold in folds if fold is not None]
    largest = max(sizes)
    index = torch.stack([fold.val.repeat(math.ceil(largest / len(fold.val)))[:largest]
                         for fold in folds if fold is not None])
    pack.eval()
    with amp.autocast():
        parts = [pack(batch_layout(data.x_train[index[:, start:start + PREDICT_ROWS]]),
                      per_member=True) for start in range(0, largest, PREDICT_ROWS)]
    outputs = torch.cat(parts, dim=1).float()
    return lambda row: (outputs[row, :sizes[row]],
                        data.y_train[folds[row].val])  # type: ignore[union-attr]


def _measure(j: int, member: Member, train_loss: float, outputs: torch.Tensor,
             targets: torch.Tensor, score: Callable[[torch.Tensor, torch.Tensor],
                                                    dict[str, float]],
             stop: Callable[[int, BaseException | None], None]) -> dict[str, float] | None:
    """One member's metrics of its epoch (None when its loss diverged: it stops)."""
    assert member.result is not None
    if not math.isfinite(train_loss):
        epoch = len(member.result.history) + 1
        stop(j, DivergedError(f"train_loss became {train_loss} at epoch {epoch}"))
        return None
    metrics = {"train_loss": train_loss, "val_loss": float(member.loss_fn(outputs, targets))}
    metrics.update({f"val_{k}": v for k, v in score(outputs, targets).items()})
    member.result.history.append(metrics)
    return metrics


def _judge(pack: AnyPack, j: int, member: Member, metrics: dict[str, float],
           stop: Callable[[int, BaseException | None], None]) -> Exploit | None:
    """One member's epoch after every member was measured: its callback, its early
    stopping; an ``Exploit`` the callback answered."""
    assert member.result is not None
    epoch = len(member.result.history)  # the member's own epoch
    try:
        answer = member.on_epoch(epoch, metrics)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # stopped by the scheduler, or its logging failed
        stop(j, exc)
        return None
    stopper = member.early_stopping
    if stopper is not None and stopper.step(epoch, metrics, lambda: pack.member_state(j)):
        member.result.stopped_early = True
        stop(j, None)
    return answer


def _exploit(pack: AnyPack, optimizers: _Optimizers, members: Sequence[Member], target: int,
             answer: Exploit) -> None:
    """Member ``target`` goes on as a copy of ``answer.source`` with the new values."""
    if answer.source not in pack.slots:
        raise ValueError(f"exploit source {answer.source} is not training in this pack; "
                         f"allowed: {pack.slots}")
    pack.load_member_state(target, pack.member_state(answer.source))
    optimizers.copy(answer.source, target, answer.values)
    member = members[target]
    member.params = {**members[answer.source].params, **answer.values}
    if member.rebuild is not None:  # rates that live in the network (dropout) change too
        pack.set_rates(target, member.rebuild(member.params))


def fit(
    model: nn.Module,
    data: Any,
    params: Mapping[str, Any],
    *,
    loss_fn: Callable[..., torch.Tensor],
    score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
    epochs: int,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    early_stopping: EarlyStopping | None = None,
    time_limit_s: float | None = None,
    precision: str = "auto",
    compile_model: bool = False,
) -> FitResult:
    """Train one ``model`` (a pack of one) and raise what stopped it, for callers outside a
    search (benchmarks, tests); ``model`` ends with the best epoch's weights under
    ``early_stopping``."""
    member = Member(params, loss_fn, on_epoch or (lambda epoch, metrics: None), early_stopping)
    train(PlainPack([model], compile_model), [member], data, score=score, epochs=epochs,
          seed=seed, time_limit_s=time_limit_s, precision=precision)
    if member.error is not None:
        raise member.error
    assert member.result is not None
    return member.result
