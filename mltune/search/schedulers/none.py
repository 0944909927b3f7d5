"""``none``: no scheduling; every trial runs all its epochs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mltune.core.terms import Direction
from mltune.search.schedulers.base import CONTINUE, Decision
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.distributions import Space
from mltune.spec.model import PruningSpec


@SCHEDULERS.register("none")
class NoScheduler:
    """Answers CONTINUE to everything, so a search without pruning needs no special case."""

    def __init__(self, spec: PruningSpec, direction: Direction, space: Space | None = None,
                 seed: int = 0) -> None:
        self.spec, self.direction = spec, direction

    def on_start(self, trial: int, params: Mapping[str, Any]) -> None:
        """Params play no part in this rule."""

    def on_result(self, trial: int, epoch: int, value: float,
                  peers: Mapping[int, float] | None = None) -> Decision:
        return CONTINUE

    def on_end(self, trial: int) -> None:
        """Nothing is kept per trial."""
