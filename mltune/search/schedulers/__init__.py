"""Schedulers behind one protocol (``base.Scheduler``); each module registers itself in
``spec.catalogs.SCHEDULERS`` when imported here."""

from __future__ import annotations

from mltune.core.terms import Direction
from mltune.search.schedulers import asha, hyperband, median, none, pbt  # noqa: F401  (register)
from mltune.search.schedulers.base import Scheduler
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.distributions import Space
from mltune.spec.model import PruningSpec


def make_scheduler(spec: PruningSpec, direction: Direction, space: Space | None = None,
                   seed: int = 0) -> Scheduler:
    """The search's scheduler, named by ``pruning.rule``; ``space`` (the built space: literals
    and distributions) and ``seed`` serve the rules that change hyperparameters (``pbt``)."""
    factory = SCHEDULERS.get(spec.rule, field="pruning.rule")
    scheduler: Scheduler = factory(spec, direction, space, seed)
    return scheduler
