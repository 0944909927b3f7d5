"""Rules that stop losing trials early, judged against the other trials of the search.

A rule sees every epoch's value of the search's metric (``report``) and answers whether the
trial should stop there. ``median``: after ``warmup_trials`` trials ran in full and
``warmup_epochs`` epochs, a trial worse than the median of earlier trials at the same epoch stops.
``asha``: successive halving without waiting — at rung epochs ``min_epochs * eta**k`` a trial
continues only if it is in the top ``1/eta`` of the values seen at that rung; the members of a
pack, which reach each rung together, are judged against each other too (else the first member
to report would have no one to lose to).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping

from mltune.core.terms import Direction
from mltune.spec.model import PruningSpec


class TrialPruned(Exception):
    """Raised from the epoch callback when a rule stops a trial; carries its best value."""

    def __init__(self, epoch: int, best: float, rule: str) -> None:
        super().__init__(f"pruned by the {rule} rule at epoch {epoch}")
        self.epoch, self.best, self.rule = epoch, best, rule


class Pruner:
    """No pruning: every trial runs all its epochs."""

    rule = "none"

    def __init__(self, spec: PruningSpec, direction: Direction) -> None:
        self.spec, self.direction = spec, direction

    def report(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> bool:
        """Record ``value``; True when the trial should stop after this epoch. ``peers``: the
        same epoch's values of the other members of its pack (trained in step with it), which
        a rule may judge it against before they report."""
        return False

    def finish(self, trial: int) -> None:
        """The trial ended (finished, pruned or failed)."""


class MedianPruner(Pruner):
    rule = "median"

    def __init__(self, spec: PruningSpec, direction: Direction) -> None:
        super().__init__(spec, direction)
        self.running: dict[int, dict[int, float]] = defaultdict(dict)
        self.done: dict[int, list[float]] = defaultdict(list)  # epoch -> values of ended trials
        self.ended = 0

    def report(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> bool:
        self.running[trial][epoch] = value
        if self.ended < self.spec.warmup_trials or epoch <= self.spec.warmup_epochs:
            return False
        earlier = self.done.get(epoch)
        return bool(earlier) and self.direction.better(statistics.median(earlier), value)

    def finish(self, trial: int) -> None:
        for epoch, value in self.running.pop(trial, {}).items():
            self.done[epoch].append(value)
        self.ended += 1


class AshaPruner(Pruner):
    rule = "asha"

    def __init__(self, spec: PruningSpec, direction: Direction) -> None:
        super().__init__(spec, direction)
        self.rungs: dict[int, dict[int, float]] = defaultdict(dict)  # rung -> trial -> value

    def _is_rung(self, epoch: int) -> bool:
        rung = self.spec.min_epochs
        while rung < epoch:
            rung *= self.spec.eta
        return rung == epoch

    def report(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> bool:
        if not self._is_rung(epoch):
            return False
        self.rungs[epoch][trial] = value
        seen = {**(peers or {}), **self.rungs[epoch]}  # a pack's members are judged as peers
        if len(seen) < self.spec.eta:
            return False  # too few trials at this rung to judge
        ranked = sorted(seen.values(), key=self.direction.sort_key)
        keep = ranked[: max(1, len(ranked) // self.spec.eta)]
        return self.direction.better(keep[-1], value)


RULES = {"none": Pruner, "median": MedianPruner, "asha": AshaPruner}


def make_pruner(spec: PruningSpec, direction: Direction) -> Pruner:
    return RULES[spec.rule](spec, direction)
