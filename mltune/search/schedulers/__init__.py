"""Schedulers behind one protocol (``base.Scheduler``); each module registers itself in
``spec.catalogs.SCHEDULERS`` when imported here."""

from __future__ import annotations

from mltune.core.terms import Direction
from mltune.search.schedulers import asha, median, none  # noqa: F401  (register them)
from mltune.search.schedulers.base import Scheduler
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.model import PruningSpec


def make_scheduler(spec: PruningSpec, direction: Direction) -> Scheduler:
    """The search's scheduler, named by ``pruning.rule``."""
    factory = SCHEDULERS.get(spec.rule, field="pruning.rule")
    scheduler: Scheduler = factory(spec, direction)
    return scheduler
