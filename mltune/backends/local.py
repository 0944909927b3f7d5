"""The local backend: a driver per device of the search (``search.packs``: a lane each, in
threads when there are several), in this process.

A pack is one trial when the search is unpacked (``pack: 1``, or a network that cannot be
packed). A resumed search's coordinator starts from what MLflow holds; its interrupted points
run first.
"""

from __future__ import annotations

import logging

from mltune.core.interrupts import Stop
from mltune.search.packs.coordinator import Coordinator
from mltune.search.packs.lane import SearchSetup
from mltune.search.packs.lanes import BACKENDS, LocalRunner, run_lanes
from mltune.spec.model import SearchSpec

log = logging.getLogger(__name__)


class LocalBackend:
    """A lane per device in this process, each training packs one after another, each pack
    kept full while its shape lasts (the models of one pack are logged in the background
    while it trains on)."""

    def preflight(self, spec: SearchSpec) -> None:
        """Nothing to check: every sampler in the catalog runs here."""

    def run(self, setup: SearchSetup, coordinator: Coordinator, stop: Stop) -> None:
        runners = [LocalRunner(lane, setup.search) for lane in setup.lanes()]
        if len(runners) > 1:
            log.info("training on %d devices at once: %s", len(runners),
                     ", ".join(r.label for r in runners))
        run_lanes(runners, coordinator, stop)


BACKENDS.add("local", LocalBackend())
