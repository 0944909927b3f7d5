"""Each member's batches of an epoch: the batch order every member of a pack draws, whenever it
joined and whatever rows it trains on.

Members that started together on the same rows share one generator (the search's seed), so a
member draws the same batches in its own epoch e as it would alone, whenever it joined. One
cohort: one shared batch for the whole pack (no copies); several: a (K, batch, ...) input, each
row its member's own batch.

Members on rows of different sizes (the folds of cross-validation) each pass over their own
rows once an epoch: a shorter order is cycled to the longest one's length so that the batches
stack, and a member whose own rows are spent sits the remaining batches out (``active``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

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


def own(outputs: torch.Tensor, targets: torch.Tensor, rows: int
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """A member's part of a batch: its first ``rows`` rows when the batch runs past the end
    of its own rows (the rest were cycled in to stack with larger folds); the whole batch
    when it has none (it sits this batch out: its loss is not counted, its weights kept)."""
    if 0 < rows < len(targets):
        return outputs[:rows], targets[:rows]
    return outputs, targets


class Cohorts:
    """Members grouped by the generator their batch order comes from."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed, self.device = seed, device
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
            order = torch.randperm(count, device=self.device, generator=generator)
            orders.append(order if rows is None else rows.train[order])
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
                yield Batch(inputs[0], y[indices[0]], rows, False, active)
                continue
            yield Batch(torch.stack([inputs[c] for c in which]), [y[indices[c]] for c in which],
                        rows, True, active)
