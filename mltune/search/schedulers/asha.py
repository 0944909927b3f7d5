"""``asha``: successive halving without waiting. At rung epochs ``min_epochs * eta**k`` a trial
continues only if it is in the top ``1/eta`` of the values seen at that rung; the members of a
pack, which reach each rung together, are judged against each other too (else the first member
to report would have no one to lose to)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from mltune.core.terms import Direction
from mltune.search.schedulers.base import CONTINUE, STOP, Decision
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.distributions import Space
from mltune.spec.model import PruningSpec


@SCHEDULERS.register("asha")
class AshaScheduler:
    """Keeps each rung's values for the whole search (asynchronous: no trial waits)."""

    def __init__(self, spec: PruningSpec, direction: Direction, space: Space | None = None,
                 seed: int = 0) -> None:
        self.spec, self.direction = spec, direction
        self.rungs: dict[int, dict[int, float]] = defaultdict(dict)  # rung -> trial -> value

    def _is_rung(self, epoch: int) -> bool:
        rung = self.spec.min_epochs
        while rung < epoch:
            rung *= self.spec.eta
        return rung == epoch

    def on_start(self, trial: int, params: Mapping[str, Any]) -> None:
        """Params play no part in this rule."""

    def on_result(self, trial: int, epoch: int, value: float,
                  peers: Mapping[int, float] | None = None) -> Decision:
        if not self._is_rung(epoch):
            return CONTINUE
        self.rungs[epoch][trial] = value
        seen = {**(peers or {}), **self.rungs[epoch]}  # a pack's members are judged as peers
        values = [v for v in seen.values() if not math.isnan(v)]
        if len(values) < self.spec.eta:
            return CONTINUE  # too few trials at this rung to judge
        ranked = sorted(values, key=self.direction.sort_key)
        keep = ranked[: max(1, len(ranked) // self.spec.eta)]
        return STOP if self.direction.better(keep[-1], value) else CONTINUE

    def on_end(self, trial: int) -> None:
        """Rung values stay: later trials are judged against them."""
