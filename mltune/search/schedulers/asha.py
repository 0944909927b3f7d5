"""``asha``: successive halving without waiting. At rung epochs ``min_epochs * eta**k`` a trial
continues only if it is in the top ``1/eta`` of the values seen at that rung; the members of a
pack, which reach each rung together, are judged against each other too (else the first member
to report would have no one to lose to)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mltune.core.terms import Direction
from mltune.search.schedulers.base import (
    CONTINUE,
    STOP,
    Context,
    Decision,
    Replayed,
    epochs_list,
)
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.options import integer


@dataclass(frozen=True)
class AshaOptions:
    min_epochs: int = 1  # the first rung
    eta: int = 3  # keep the top 1/eta at each rung; rungs at min_epochs * eta**k


def rung_epochs(first: int, eta: int, epochs: int) -> list[int]:
    """The rungs ``first * eta**k`` before the last epoch (a judgment there saves nothing)."""
    rungs, rung = [], first
    while rung < epochs:
        rungs.append(rung)
        rung *= eta
    return rungs


def asha_options(raw: Mapping[str, Any]) -> dict[str, int]:
    """The options ASHA and Hyperband share, validated."""
    return {"min_epochs": integer(raw, "pruning.min_epochs", 1, minimum=1),
            "eta": integer(raw, "pruning.eta", 3, minimum=2)}


class Rungs:
    """Successive halving's rule over one set of rungs (``min_epochs * eta**k``): the values
    seen at each rung for the whole search (asynchronous: no trial waits)."""

    def __init__(self, min_epochs: int, eta: int, direction: Direction) -> None:
        self.min_epochs, self.eta, self.direction = min_epochs, eta, direction
        self.values: dict[int, dict[int, float]] = defaultdict(dict)  # rung -> trial -> value

    def is_rung(self, epoch: int) -> bool:
        rung = self.min_epochs
        while rung < epoch:
            rung *= self.eta
        return rung == epoch

    def judge(self, trial: int, epoch: int, value: float,
              peers: Mapping[int, float] | None) -> Decision:
        if not self.is_rung(epoch):
            return CONTINUE
        self.values[epoch][trial] = value
        seen = {**(peers or {}), **self.values[epoch]}  # a pack's members are judged as peers
        values = [v for v in seen.values() if not math.isnan(v)]
        if len(values) < self.eta:
            return CONTINUE  # too few trials at this rung to judge
        ranked = sorted(values, key=self.direction.sort_key)
        keep = ranked[: max(1, len(ranked) // self.eta)]
        return STOP if self.direction.better(keep[-1], value) else CONTINUE


@SCHEDULERS.register("asha")
class AshaScheduler(Replayed):
    """Keeps each rung's values for the whole search."""

    Options = AshaOptions

    @staticmethod
    def options(raw: Mapping[str, Any], epochs: int) -> AshaOptions:
        return AshaOptions(**asha_options(raw))

    @staticmethod
    def outline(options: AshaOptions, epochs: int) -> str:
        rungs = rung_epochs(options.min_epochs, options.eta, epochs)
        if not rungs:
            return (f"asha: no rung before epoch {epochs} (the first is {options.min_epochs}): "
                    "every trial trains in full")
        return (f"asha: rungs at {epochs_list(rungs)} of {epochs}; at each, a trial goes "
                f"on only in the top 1/{options.eta} of the values seen there")

    def __init__(self, options: AshaOptions, context: Context) -> None:
        self.rungs = Rungs(options.min_epochs, options.eta, context.direction)

    def start(self, trial: int, params: Mapping[str, Any]) -> None:
        """Params play no part in this rule."""

    def decide(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> Decision:
        return self.rungs.judge(trial, epoch, value, peers)

    def end(self, trial: int) -> None:
        """Rung values stay: later trials are judged against them."""
