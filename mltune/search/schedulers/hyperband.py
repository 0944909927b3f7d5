"""``hyperband``: asynchronous Hyperband (Li et al. 2018, "A System for Massively Parallel
Hyperparameter Tuning"; Ray Tune's ``AsyncHyperBandScheduler``). ASHA bets on one aggressive
schedule, whose first judgment at ``min_epochs`` may stop slow starters that would have won;
Hyperband hedges that bet over several brackets of successive halving.

Rungs lie at ``min_epochs * eta**k`` below ``max_epochs`` (the search's epochs: a judgment at
the last epoch would save no training). Bracket ``s`` starts judging at rung ``s`` (epoch
``min_epochs * eta**s``) and goes on over the later rungs with ASHA's rule: a trial continues
only if it is in the top ``1/eta`` of the values its bracket has seen at that rung, and it is
judged only against trials of its own bracket (a pack's peers from another bracket are
passed over). ``brackets`` defaults to one per rung, at most three (``DEFAULT_BRACKETS``):
the aggressive, a moderate and a cautious bracket.

Each trial's bracket follows from its number alone, so it is the same whoever asks and in
whatever order (a resumed search, Ray's actor): trials come in blocks of ``BLOCK`` consecutive
numbers that share a bracket (a pack's members start together, with consecutive numbers, and
are usually judged as one group), and the blocks go to brackets in proportion to Hyperband's bracket
sizes, ``ceil(B / (r + 1) * eta**r)`` for a bracket of ``r`` rungs out of ``B - 1``: the more
aggressive a bracket, the more trials it gets, because it stops most of them early.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from mltune.core.terms import Direction
from mltune.search.schedulers.asha import AshaScheduler
from mltune.search.schedulers.base import CONTINUE, Decision
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.distributions import Space
from mltune.spec.model import PruningSpec

BLOCK = 4  # consecutive trial numbers that share a bracket (a pack's members, where they fit)


def bracket_sizes(brackets: int, rungs: int, eta: int) -> list[int]:
    """Hyperband's number of configurations per bracket, most aggressive first: bracket ``s``
    judges at ``rungs - s`` rungs (``rungs``: those of bracket 0)."""
    total = rungs + 1  # Li et al.'s s_max + 1: the final epoch is a rung of its own there
    return [math.ceil(total / (r + 1) * eta**r) for r in range(rungs, rungs - brackets, -1)]


def schedule(weights: list[int]) -> list[int]:
    """Brackets in the order blocks go to them, each as often as its weight, spread out
    (smooth weighted round robin: no bracket waits for another's whole share)."""
    credit, order = [0] * len(weights), []
    for _ in range(sum(weights)):
        credit = [c + w for c, w in zip(credit, weights, strict=True)]
        chosen = max(range(len(weights)), key=lambda b: (credit[b], -b))
        credit[chosen] -= sum(weights)
        order.append(chosen)
    return order


@SCHEDULERS.register("hyperband")
class HyperbandScheduler:
    """One ASHA per bracket, its first rung moved ``s`` rungs later."""

    def __init__(self, spec: PruningSpec, direction: Direction, space: Space | None = None,
                 seed: int = 0, block: int = BLOCK) -> None:
        self.spec, self.direction, self.block = spec, direction, max(1, block)
        count = spec.bracket_count()
        rungs = spec.rungs()
        depth = max(count, len(rungs)) if rungs is not None else count
        self.order = schedule(bracket_sizes(count, depth, spec.eta))
        self.brackets = [AshaScheduler(replace(spec, min_epochs=spec.min_epochs * spec.eta**s),
                                       direction) for s in range(count)]
        self.started: dict[int, int] = {}  # trial -> bracket, as on_start assigned it

    def bracket(self, trial: int) -> int:
        """The bracket of trial ``trial``: its block's place in the schedule."""
        if trial not in self.started:
            return self.order[(trial // self.block) % len(self.order)]
        return self.started[trial]

    def on_start(self, trial: int, params: Mapping[str, Any]) -> None:
        self.started[trial] = self.bracket(trial)

    def on_result(self, trial: int, epoch: int, value: float,
                  peers: Mapping[int, float] | None = None) -> Decision:
        if self.spec.max_epochs is not None and epoch >= self.spec.max_epochs:
            return CONTINUE  # the last epoch: stopping now saves nothing
        own = self.bracket(trial)
        mates = {n: v for n, v in (peers or {}).items() if self.bracket(n) == own}
        return self.brackets[own].on_result(trial, epoch, value, mates)

    def on_end(self, trial: int) -> None:
        """Rung values stay (later trials of the bracket are judged against them)."""
        self.started.pop(trial, None)
