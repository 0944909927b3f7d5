"""``median``: after ``warmup_trials`` trials ran in full and ``warmup_epochs`` epochs, a trial
worse than the median of the ended trials at the same epoch stops."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mltune.search.schedulers.base import CONTINUE, STOP, Context, Decision, Replayed
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.options import integer


@dataclass(frozen=True)
class MedianOptions:
    warmup_trials: int = 3  # trials that always run in full first
    warmup_epochs: int = 1  # epochs before a trial can be judged


@SCHEDULERS.register("median")
class MedianScheduler(Replayed):
    """Judges a trial against trials that ended, never against running ones (their curves are
    still moving)."""

    Options = MedianOptions

    @staticmethod
    def options(raw: Mapping[str, Any], epochs: int) -> MedianOptions:
        return MedianOptions(
            warmup_trials=integer(raw, "pruning.warmup_trials", 3, minimum=0),
            warmup_epochs=integer(raw, "pruning.warmup_epochs", 1, minimum=0))

    @staticmethod
    def outline(options: MedianOptions, epochs: int) -> str:
        return (f"median: after the first {options.warmup_trials} trials, from epoch "
                f"{options.warmup_epochs + 1} of {epochs}, a trial worse than the median of the "
                "ended trials at the same epoch stops")

    def __init__(self, options: MedianOptions, context: Context) -> None:
        self.options_, self.direction = options, context.direction
        self.running: dict[int, dict[int, float]] = defaultdict(dict)
        self.done: dict[int, list[float]] = defaultdict(list)  # epoch -> values of ended trials
        self.ended = 0

    def start(self, trial: int, params: Mapping[str, Any]) -> None:
        """Params play no part in this rule."""

    def decide(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> Decision:
        self.running[trial][epoch] = value
        options = self.options_
        if self.ended < options.warmup_trials or epoch <= options.warmup_epochs:
            return CONTINUE
        earlier = [v for v in self.done.get(epoch, ()) if not math.isnan(v)]
        if earlier and self.direction.better(statistics.median(earlier), value):
            return STOP
        return CONTINUE

    def end(self, trial: int) -> None:
        if trial not in self.running:
            return  # never reported (or ended twice): nothing to learn from it
        for epoch, value in self.running.pop(trial).items():
            self.done[epoch].append(value)
        self.ended += 1
