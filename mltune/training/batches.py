"""Each member's batches of an epoch: the batch order every member of a pack draws, whenever it
joined and whatever rows it trains on.

Members that started together on the same rows share one generator (the search's seed), so a
member draws the same batches in its own epoch e as it would alone, whenever it joined. One
cohort: one shared batch for the whole pack (no copies); several: a (K, batch, ...) input, each
row its member's own batch.

Members on rows of different sizes (the folds of cross-validation) each pass over their own
rows once an epoch: a shorter order is cycled to the longest one's length so that the batches
stack, and a member whose own rows are spent sits the remaining batches out (``active``).

A network that is an ensemble inside (TabM) may ask for several orders at once
(``batch_orders(network)`` = k): each cohort then draws k permutations an epoch, a batch's
index is (batch, k) and its input (batch, k, ...), column i the rows of inner member i's own
order, its targets (batch, k, ...) alike. The members of one pack share a shape, so they ask
for the same number of orders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mltune.data.folds import Rows
from mltune.data.streaming import batches


@dataclass
class Batch:
    """One step's input and targets. ``rows``: how many rows of it each member (in the
    pack's row order) trains on; ``per_member``: ``x`` is (K, batch, ...), row k member k's
    own; ``active``: which members step on it (None: all)."""

    x: torch.Tensor
    targets: torch.Tensor | list[torch.Tensor]
    rows: list[int]
    per_member: bool
    active: list[bool] | None

    def target(self, row: int) -> torch.Tensor:
        return self.targets[row] if self.per_member else self.targets  # type: ignore[return-value]


def batch_orders(network: nn.Module) -> int:
    """How many batch orders ``network`` trains on at once: 1, or what a module of it declares
    (``batch_orders``: TabM's k members, each with its own order)."""
    return max((int(getattr(m, "batch_orders", 1)) for m in network.modules()), default=1)


def own(outputs: torch.Tensor, targets: torch.Tensor, rows: int
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """A member's part of a batch: its first ``rows`` rows when the batch runs past the end
    of its own rows (the rest were cycled in to stack with larger folds); the whole batch
    when it has none (it sits this batch out: its loss is not counted, its weights kept)."""
    if 0 < rows < len(targets):
        return outputs[:rows], targets[:rows]
    return outputs, targets


def _cycled(order: torch.Tensor, n: int) -> torch.Tensor:
    """``order`` repeated along its rows to ``n`` rows."""
    return order.repeat(math.ceil(n / len(order)), *[1] * (order.dim() - 1))[:n]


class Cohorts:
    """Members grouped by the generator their batch order comes from; ``orders``: how many
    orders each draws an epoch (``batch_orders``)."""

    def __init__(self, seed: int, device: torch.device, orders: int = 1) -> None:
        self.seed, self.device, self.orders = seed, device, orders
        self.of: dict[int, tuple[torch.Generator, Rows | None]] = {}  # member -> cohort

    def join(self, members: Iterable[int], rows_of: Callable[[int], Rows | None]) -> None:
        """Members that start now: one generator for those that train on the same rows."""
        made: dict[int, torch.Generator] = {}
        for j in members:
            rows = rows_of(j)
            if id(rows) not in made:
                made[id(rows)] = torch.Generator(device=self.device).manual_seed(self.seed)
            self.of[j] = (made[id(rows)], rows)

    def leave(self, j: int) -> None:
        self.of.pop(j, None)

    def _draw(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """An epoch's order of ``count`` rows: (count,), or (count, orders), each column a
        permutation of its own."""
        if self.orders == 1:
            return torch.randperm(count, device=self.device, generator=generator)
        return torch.rand(count, self.orders, device=self.device,
                          generator=generator).argsort(dim=0)

    def epoch(self, training: Sequence[int], x: Any, y: torch.Tensor, batch_size: int
              ) -> Iterator[Batch]:
        """This epoch's batches for the members ``training`` (in the pack's row order)."""
        cohorts: dict[tuple[int, int], tuple[torch.Generator, Rows | None]] = {}
        for j in training:
            generator, rows = self.of[j]
            cohorts.setdefault((id(generator), id(rows)), (generator, rows))
        orders = []
        for generator, rows in cohorts.values():
            count = len(y) if rows is None else len(rows.train)
            order = self._draw(count, generator)
            orders.append(order if rows is None else rows.train[order])
        lengths = [len(order) for order in orders]
        n = max(lengths)
        even = min(lengths) == n  # every member's rows fill every batch (no folds, or equal)
        orders = [order if len(order) == n else _cycled(order, n) for order in orders]
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
                yield Batch(inputs[0], y[indices[0]], rows, False, active)
                continue
            yield Batch(torch.stack([inputs[c] for c in which]), [y[indices[c]] for c in which],
                        rows, True, active)
