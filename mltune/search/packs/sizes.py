"""How many members a pack has under ``pack: auto``: measured, once per cost of a search.

A few training steps of the pack's first point are timed at K = 1, 2, 4, 8, 16 members (on a GPU
only as many as fit in half of its free memory), through the pack trainer's own step
(``PackTrainer.step``: the same optimizers, scaler, autocast and layout the search trains with),
keeping the K with the most member-steps per second, and K = 1 unless a larger pack beats it by
``MARGIN``. A constant size was wrong both ways: on 2 CPU cores a pack of 8 made a 32x32 image
search 0.53x as fast, while an MLP trains 2-3x the trials per hour packed. Each cost
(``cost_key``: the weights' shapes, the batch size, the optimizer) is measured once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mltune.data.layout import batch_layout
from mltune.data.splits import TaskData
from mltune.search.packs.shapes import shape_key
from mltune.tasks.base import Task
from mltune.training.batches import Batch
from mltune.training.device import RNG_LOCK
from mltune.training.engine import Member, PackTrainer
from mltune.training.packing import Pack

log = logging.getLogger(__name__)

SIZES_TRIED = (1, 2, 4, 8, 16)  # member counts timed under pack: auto
MARGIN = 0.10  # a pack must beat K = 1 by this share of its member-steps/s to be used
NEAR = 2.0  # a cost within this factor of weights of a measured one reuses its size
TIMED_STEPS = 3  # after one warm-up step, at least this many timed steps...
MIN_TIMED_S = 0.05  # ...and this long (a tiny network's steps are ~1 ms each)...
MAX_TIMED_STEPS = 50  # ...but no more steps than this, and one is enough past SLOW_STEP_S
SLOW_STEP_S = 0.25  # timed steps that took this long rank a size well enough
MEASURE_BUDGET_S = 2.0  # a larger K is not tried when it would take the measuring past this
MEMORY_SHARE = 0.5  # of the GPU memory free when the pack is sized


def memory_size(task: Task, data: TaskData, params: Mapping[str, Any],
                device: torch.device, limit: int) -> int:
    """Members of this shape that fit on a GPU: one member's dry step on a batch, then as
    many as half the free memory holds (``limit`` at most)."""
    network = _build(task, params, data)
    batch = int(params.get("batch_size", 64))
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    pack = Pack([network]).to(device)
    x = data.x_train[:batch]
    outputs = pack(batch_layout(x if isinstance(x, torch.Tensor) else x.to(device)))
    outputs.float().sum().backward()
    peak = torch.cuda.max_memory_allocated(device) - before
    del pack, outputs
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return members_that_fit(free, peak, limit)


def members_that_fit(free_bytes: int, member_bytes: int, limit: int) -> int:
    """``limit`` at most, at least 1, else what ``MEMORY_SHARE`` of the free memory holds."""
    if member_bytes <= 0:
        return limit
    return max(1, min(limit, int(MEMORY_SHARE * free_bytes // member_bytes)))


def chosen_size(rates: Mapping[int, float], margin: float = MARGIN) -> int:
    """The pack size to use from measured member-steps per second by size: the fastest, or
    1 when the fastest does not beat a lone trial by ``margin`` (a pack delays what the
    sampler learns, so it must pay for itself)."""
    if not rates:
        return 1
    best = max(rates, key=lambda k: (rates[k], -k))  # a tie goes to the smaller pack
    alone = rates.get(1)
    if alone is None or best == 1:
        return best
    return best if rates[best] > (1 + margin) * alone else 1


def member_steps_per_s(task: Task, data: TaskData, params: Mapping[str, Any],
                       device: torch.device, sizes: Sequence[int], precision: str = "auto"
                       ) -> dict[int, float]:
    """Member-steps per second of ``params``' shape at each of ``sizes`` (ascending): K
    networks trained as the search would train them (K = 1: the plain network and its
    ``torch.optim`` optimizer; K > 1: a ``Pack`` and its packed optimizer), on one batch of
    the params' size (``_timed_steps``).

    Larger packs stop being tried at the first one slower than the pack before it, out of
    memory, or that would take the measuring past ``MEASURE_BUDGET_S`` (a large network on a
    busy CPU: the search's budget is for trials). K = 1 is not part of that comparison: it
    takes the plain module's route, without the fused step's fixed cost, so K = 2 is often
    slower than K = 1 on a CPU while K = 8 is faster (digits CNN: 122, 117, 166, 223
    member-steps/s at K = 1, 2, 4, 8)."""
    params = task.with_defaults(params)
    batch = int(params.get("batch_size", 64))
    x = batch_layout(data.x_train[:batch].to(device))  # a tensor, or streamed pixels
    y = data.y_train[:batch].to(device)
    loss_fn = task.make_loss(params, data)
    rates: dict[int, float] = {}
    started = time.perf_counter()
    for k in sizes:
        if rates:  # a step's cost grows with K at most linearly; a size takes ~4 steps
            last = max(rates)
            guess = (TIMED_STEPS + 1) * k / rates[last]
            if time.perf_counter() - started + guess > MEASURE_BUDGET_S:
                break
        try:
            seconds = _timed_steps(task, data, params, k, Batch(x, y, [len(y)] * k, False, None),
                                   loss_fn, precision)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        rates[k] = k / seconds
        packed = [rates[j] for j in rates if j > 1]
        if len(packed) >= 2 and packed[-1] < packed[-2]:
            break
    return rates


def _timed_steps(task: Task, data: TaskData, params: Mapping[str, Any], k: int, batch: Batch,
                 loss_fn: Callable[..., torch.Tensor], precision: str) -> float:
    """Seconds of the fastest training step of ``k`` members: the pack trainer's own step on
    ``batch`` (a pack of one: the plain network and its torch optimizer; more: fused when the
    family fuses), one untimed warm-up step, then at least ``TIMED_STEPS`` and
    ``MIN_TIMED_S`` (a tiny network's step is ~1 ms), at most ``MAX_TIMED_STEPS`` (and once
    ``SLOW_STEP_S`` is spent, no more). The fastest, as ``timeit`` advises: a step is slower
    than it can be only for outside reasons (another process on the cores), which say
    nothing of K."""
    networks = [_build(task, params, data) for _ in range(k)]
    trainer = PackTrainer(data, networks, [Member(params, loss_fn) for _ in range(k)],
                          score=lambda outputs, targets: {}, seed=0, precision=precision)
    training = trainer.live
    device = trainer.device
    trainer.pack.train()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    trainer.step(batch, training)
    sync()
    fastest, spent, steps = float("inf"), 0.0, 0
    while steps < MAX_TIMED_STEPS and (steps < TIMED_STEPS or spent < MIN_TIMED_S) and not (
            steps and spent >= SLOW_STEP_S):
        started = time.perf_counter()
        trainer.step(batch, training)
        sync()
        took = time.perf_counter() - started
        fastest, spent, steps = min(fastest, took), spent + took, steps + 1
    return max(fastest, 1e-9)


def _build(task: Task, params: Mapping[str, Any], data: TaskData) -> nn.Module:
    """A network to measure (its weights unused): built under ``RNG_LOCK``, never between
    another loop's seeding and its build; the timing itself runs outside it, so loops on other
    devices go on meanwhile."""
    with RNG_LOCK:
        return task.build_model(params, data.meta)


def _count(shapes: tuple[tuple[str, tuple[int, ...]], ...]) -> int:
    return sum(math.prod(shape) for _, shape in shapes)


def cost_key(params: Mapping[str, Any], network: nn.Module) -> tuple[Any, ...]:
    """What a training step's cost depends on: every weight's and buffer's shape, the batch
    size and the optimizer. Coarser than the shape key (an activation, a ``False`` flag that
    adds no weight), so a search over many shapes measures a few costs, not one per pack."""
    weights = tuple((k, tuple(v.shape)) for k, v in network.state_dict().items())
    return weights, params.get("batch_size"), params.get("optimizer")


class PackSizes:
    """The pack size under ``pack: auto`` of each cost (``cost_key``: the shapes of the
    network a point builds, its batch size, its optimizer) of one search, measured the first
    time a cost is asked for and kept (a search asks once per pack, and a digits search's
    points have dozens of shape keys but far fewer costs)."""

    def __init__(self, task: Task, data: TaskData, device: torch.device,
                 precision: str = "auto") -> None:
        self.task, self.data, self.device, self.precision = task, data, device, precision
        self.measured: dict[tuple[Any, ...], int] = {}
        self.costs: dict[Any, tuple[Any, ...]] = {}  # shape key -> cost key (no build twice)

    def size(self, params: Mapping[str, Any], limit: int) -> int:
        """Members for a pack whose first point is ``params``: ``limit`` at most."""
        full = self.task.with_defaults(params)
        shape = shape_key(full, self.task)  # the same shape builds the same weights' shapes
        if shape not in self.costs:
            self.costs[shape] = cost_key(full, _build(self.task, full, self.data))
        key = self.costs[shape]
        if key not in self.measured:
            near = self.near(key)
            self.measured[key] = self.measure(params, limit) if near is None else near
        return max(1, min(limit, self.measured[key]))

    def near(self, key: tuple[Any, ...]) -> int | None:
        """The size measured for a cost like ``key`` (the same batch size and optimizer, a
        network within ``NEAR`` x as many weights), if one was: measuring costs ~1-2 s, more
        than a small trial, and sizes change slowly with a network's size."""
        weights = _count(key[0])
        for other, size in self.measured.items():
            if other[1:] == key[1:] and 1 / NEAR <= _count(other[0]) / max(weights, 1) <= NEAR:
                return size
        return None

    def measure(self, params: Mapping[str, Any], limit: int) -> int:
        """Time the sizes up to ``limit`` (and, on a GPU, up to what fits) and choose."""
        cap = limit
        if self.device.type == "cuda":
            cap = memory_size(self.task, self.data, params, self.device, limit)
        sizes = [k for k in SIZES_TRIED if k <= cap]
        rates = member_steps_per_s(self.task, self.data, params, self.device, sizes,
                                   self.precision)
        chosen = chosen_size(rates)
        log.info("pack size measured: %s member-steps/s; packs of %d",
                 ", ".join(f"K={k}: {r:.0f}" for k, r in rates.items()), chosen)
        return chosen
