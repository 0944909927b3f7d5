"""Schedulers behind one protocol (``base.Scheduler``); each module registers itself in
``spec.catalogs.SCHEDULERS`` when imported here, with its own options (``Options``)."""

from __future__ import annotations

from mltune.search.schedulers import asha, hyperband, median, none, pbt  # noqa: F401  (register)
from mltune.search.schedulers.base import Context, Scheduler
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.model import PruningSpec


def make_scheduler(spec: PruningSpec, context: Context) -> Scheduler:
    """The search's scheduler, named by ``pruning.rule``, with that rule's options."""
    factory = SCHEDULERS.get(spec.rule, field="pruning.rule")
    scheduler: Scheduler = factory(factory.Options(**spec.options), context)
    return scheduler
