"""Every lane busy: a driver per local device (in threads of the search's process) or per Ray
worker, each behind one protocol (``PackRunner``); and what a backend is.

Threads rather than processes locally: the training runs in PyTorch's kernels, which release
the GIL (a GPU's loop mostly waits on its stream), and threads share the coordinator without
anything being pickled or served. What is process-wide is kept safe for several lanes: seeding
holds ``training.device.RNG_LOCK`` (torch's default generator is one per process; each GPU
draws from its own), the precision flags are written once per search. A lane that fails stops
the others through the search's ``Stop`` (their packs end KILLED, run again by a resume).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

import torch

from mltune.core.catalog import Catalog
from mltune.core.interrupts import Stop
from mltune.core.outcomes import TrialOutcome
from mltune.search.packs.coordinator import Coordinator
from mltune.search.packs.driver import Driver
from mltune.search.packs.lane import Lane, SearchSetup
from mltune.spec.catalogs import BACKENDS as _BACKENDS
from mltune.spec.model import SearchSpec
from mltune.tracking.background import Finisher
from mltune.tracking.tracker import MlflowTracker
from mltune.training.precision import resolve_precision

log = logging.getLogger(__name__)
STOPPED_BY_PEER = "another lane's pack loop failed"


class LaneLost(Exception):
    """A lane's device went away mid-pack (a Ray worker died): its unfinished trials were
    given back to the coordinator (they run again first); ``restartable``: the lane may take
    packs again."""

    def __init__(self, reason: str, unfinished: int, restartable: bool) -> None:
        super().__init__(reason)
        self.unfinished, self.restartable = unfinished, restartable


class PackRunner(Protocol):
    """Runs one lane's driver until the coordinator has no more work: here (``LocalRunner``)
    or in a Ray worker (``backends.ray``). Raises ``LaneLost`` when its device went away."""

    label: str

    def run(self, coordinator: Coordinator, stop: Stop) -> None: ...


class LocalRunner:
    """A lane of this process: its driver in the calling thread, its trials' models logged
    by a thread of its own while it trains on."""

    def __init__(self, lane: Lane, search: object) -> None:
        self.lane, self.search, self.label = lane, search, lane.label

    def run(self, coordinator: Coordinator, stop: Stop) -> None:
        lane = self.lane
        if lane.device.type == "cuda" and lane.device.index is not None:
            torch.cuda.set_device(lane.device)  # what this thread allocates unasked: there
        finisher = Finisher()
        tracker = MlflowTracker(self.search, lane.task, lane.data, lane.device, label=lane.label,
                                precision=resolve_precision(lane.spec.precision,
                                                            lane.device).name,
                                finisher=finisher)
        try:
            Driver(lane, coordinator, tracker, stop).run()
        finally:
            finisher.close()


def run_lanes(runners: Sequence[PackRunner], coordinator: Coordinator, stop: Stop) -> None:
    """Every lane's driver until each returns: in this thread when there is one lane, else a
    thread each. A lost lane goes on when it may (``LaneLost.restartable``). The first lane
    to raise stops the others (through ``stop``) and its error is raised here; Ctrl-C
    stops them all."""

    def drive(runner: PackRunner) -> None:
        while True:
            try:
                runner.run(coordinator, stop)
                return
            except LaneLost as lost:
                log.warning("%s; its %d unfinished trial(s) run again", lost, lost.unfinished)
                if not lost.restartable:
                    return

    if len(runners) == 1:
        drive(runners[0])
        return
    errors: list[BaseException] = []

    def run(runner: PackRunner) -> None:
        try:
            drive(runner)
        except BaseException as exc:  # kept for the search's thread, which raises it
            errors.append(exc)
            stop.request(str(exc) if isinstance(exc, KeyboardInterrupt) else STOPPED_BY_PEER)

    threads = [threading.Thread(target=run, args=(runner,), name=f"mltune-{runner.label}",
                                daemon=True) for runner in runners]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():  # a timed join: this thread still takes Ctrl-C
                thread.join(0.5)
    except BaseException:
        stop.request("SIGINT")  # Ctrl-C outside the signal handler's reach
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]


class Backend(Protocol):
    """Where a search's lanes run, until its budget is spent or a stop rule fires."""

    def preflight(self, spec: SearchSpec) -> None:
        """Refuse what cannot run (a missing library, an unreachable cluster) before any data
        is read or any run is opened."""

    def run(self, setup: SearchSetup, coordinator: Coordinator, stop: Stop) -> None:
        """Run the search's lanes (``run_lanes`` over this backend's ``PackRunner``s)."""


# the catalog a spec's ``backend`` is checked against; each backend module adds itself
# (``mltune.backends``, imported by the package root), so the search never imports one
BACKENDS: Catalog[Backend] = _BACKENDS


def shares(outcomes: Sequence[TrialOutcome]) -> dict[str, int]:
    """Trials by the device they trained on (``mltune.device``), in the order first seen;
    trials a search of an older mltune ran (no device) are left out."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.device is not None:
            counts[outcome.device] = counts.get(outcome.device, 0) + 1
    return counts
