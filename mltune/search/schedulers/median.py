"""``median``: after ``warmup_trials`` trials ran in full and ``warmup_epochs`` epochs, a trial
worse than the median of the ended trials at the same epoch stops."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from mltune.core.terms import Direction
from mltune.search.schedulers.base import CONTINUE, STOP, Decision
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.distributions import Space
from mltune.spec.model import PruningSpec


@SCHEDULERS.register("median")
class MedianScheduler:
    """Judges a trial against trials that ended, never against running ones (their curves are
    still moving)."""

    def __init__(self, spec: PruningSpec, direction: Direction, space: Space | None = None,
                 seed: int = 0) -> None:
        self.spec, self.direction = spec, direction
        self.running: dict[int, dict[int, float]] = defaultdict(dict)
        self.done: dict[int, list[float]] = defaultdict(list)  # epoch -> values of ended trials
        self.ended = 0

    def on_start(self, trial: int, params: Mapping[str, Any]) -> None:
        """Params play no part in this rule."""

    def on_result(self, trial: int, epoch: int, value: float,
                  peers: Mapping[int, float] | None = None) -> Decision:
        self.running[trial][epoch] = value
        if self.ended < self.spec.warmup_trials or epoch <= self.spec.warmup_epochs:
            return CONTINUE
        earlier = [v for v in self.done.get(epoch, ()) if not math.isnan(v)]
        if earlier and self.direction.better(statistics.median(earlier), value):
            return STOP
        return CONTINUE

    def on_end(self, trial: int) -> None:
        if trial not in self.running:
            return  # never reported (or ended twice): nothing to learn from it
        for epoch, value in self.running.pop(trial).items():
            self.done[epoch].append(value)
        self.ended += 1
