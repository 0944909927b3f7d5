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
from dataclasses import dataclass, replace
from typing import Any

from mltune.core.errors import SpecError
from mltune.search.schedulers.asha import Rungs, asha_options, rung_epochs
from mltune.search.schedulers.base import CONTINUE, Context, Decision, Replayed, epochs_list
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.options import integer, optional_integer

BLOCK = 4  # consecutive trial numbers that share a bracket (a pack's members, where they fit)
# The default: the aggressive, the moderate and the cautious bracket. More brackets start ever
# later (min_epochs * eta**3 = 27 epochs with eta 3), past most searches' epochs.
DEFAULT_BRACKETS = 3


@dataclass(frozen=True)
class HyperbandOptions:
    min_epochs: int = 1  # the first rung of the most aggressive bracket
    eta: int = 3  # keep the top 1/eta at each rung; rungs at min_epochs * eta**k
    max_epochs: int | None = None  # rungs lie below it (None: the search's epochs)
    brackets: int | None = None  # None: one per rung, at most DEFAULT_BRACKETS

    def rungs(self) -> tuple[int, ...]:
        """The rung epochs ``min_epochs * eta**k`` below ``max_epochs`` (a judgment at the
        last epoch would save no training)."""
        rungs, rung = [], self.min_epochs
        while self.max_epochs is not None and rung < self.max_epochs:
            rungs.append(rung)
            rung *= self.eta
        return tuple(rungs)

    def bracket_count(self) -> int:
        """Brackets: as given, else one per rung up to ``DEFAULT_BRACKETS``."""
        if self.brackets is not None:
            return self.brackets
        return max(1, min(DEFAULT_BRACKETS, len(self.rungs())))


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
class HyperbandScheduler(Replayed):
    """One set of rungs per bracket, its first rung moved ``s`` rungs later."""

    Options = HyperbandOptions

    @staticmethod
    def options(raw: Mapping[str, Any], epochs: int) -> HyperbandOptions:
        options = HyperbandOptions(
            **asha_options(raw),
            max_epochs=integer(raw, "pruning.max_epochs", epochs, minimum=1, maximum=epochs),
            brackets=optional_integer(raw, "pruning.brackets", minimum=1))
        rungs = options.rungs()
        if not rungs:
            raise SpecError(f"pruning.min_epochs: {options.min_epochs} is not allowed with "
                            f"rule hyperband and {options.max_epochs} epochs; expected a first "
                            f"rung below {options.max_epochs} (a judgment at the last epoch "
                            "saves nothing)")
        if options.bracket_count() > len(rungs):
            raise SpecError(f"pruning.brackets: {options.brackets} is not allowed; expected 1 "
                            f"to {len(rungs)}, one per rung below {options.max_epochs} epochs "
                            f"(rungs {', '.join(map(str, rungs))}; bracket s starts at the "
                            "s-th)")
        return options

    @staticmethod
    def outline(options: HyperbandOptions, epochs: int) -> str:
        last = options.max_epochs or epochs
        count = options.bracket_count()
        sizes = bracket_sizes(count, max(count, len(options.rungs())), options.eta)
        brackets = []
        for s in range(count):
            rungs = rung_epochs(options.min_epochs * options.eta**s, options.eta, last)
            brackets.append(f"{s} ({sizes[s] / sum(sizes):.0%} of the trials) at "
                            f"{epochs_list(rungs)}")
        return (f"hyperband: {count} bracket{'s' if count > 1 else ''} of ASHA (top "
                f"1/{options.eta} go on), a trial's from its number: bracket "
                + "; bracket ".join(brackets))

    def __init__(self, options: HyperbandOptions, context: Context, block: int = BLOCK) -> None:
        if options.max_epochs is None:  # the search's epochs
            options = replace(options, max_epochs=context.epochs)
        self.max_epochs = options.max_epochs or context.epochs
        self.block = max(1, block)
        count = options.bracket_count()
        depth = max(count, len(options.rungs()))
        self.order = schedule(bracket_sizes(count, depth, options.eta))
        self.brackets = [Rungs(options.min_epochs * options.eta**s, options.eta,
                               context.direction) for s in range(count)]
        self.started: dict[int, int] = {}  # trial -> bracket, as start assigned it

    def bracket(self, trial: int) -> int:
        """The bracket of trial ``trial``: its block's place in the schedule."""
        if trial not in self.started:
            return self.order[(trial // self.block) % len(self.order)]
        return self.started[trial]

    def start(self, trial: int, params: Mapping[str, Any]) -> None:
        self.started[trial] = self.bracket(trial)

    def decide(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> Decision:
        if epoch >= self.max_epochs:
            return CONTINUE  # the last epoch: stopping now saves nothing
        own = self.bracket(trial)
        mates = {n: v for n, v in (peers or {}).items() if self.bracket(n) == own}
        return self.brackets[own].judge(trial, epoch, value, mates)

    def end(self, trial: int) -> None:
        """Rung values stay (later trials of the bracket are judged against them)."""
        self.started.pop(trial, None)
