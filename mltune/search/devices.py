"""Every device busy: one pack loop per device, in threads of the search's process.

A search on several devices (``device: cuda`` on a machine of several GPUs, ``[cuda:0,
cuda:2]``, ``[cpu, cpu]`` for tests) runs one pack loop per device (a ``Lane``: the device,
the data moved to it once, a ``TrialRunner`` on it, its own pack sizes). The loops share the
search's sampler, scheduler and ``Session``, each behind the session's one lock, so a point
is pending in one loop only and every trial gets one number.

Threads rather than processes: the training runs in PyTorch's kernels, which release the GIL
(a GPU's loop mostly waits on its stream), and threads share the sampler, the scheduler and
the bookkeeping without any of them being pickled or served. What is process-wide is kept
safe for several loops: seeding holds ``training.device.RNG_LOCK`` (each GPU draws from its
own generator), the precision flags are written once per search, an interrupt stops every
loop (a loop that fails stops the others the same way: their packs end KILLED, run again by a
resume), the metrics sender and the model finisher are shared threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mltune.core import interrupts
from mltune.core.outcomes import TrialOutcome
from mltune.data.splits import TaskData
from mltune.search.packs import PackSizes
from mltune.search.schedulers.base import Decision, Scheduler
from mltune.search.trial import TrialRunner

STOPPED_BY_PEER = "another device's pack loop failed"


class LaneLost(Exception):
    """A lane's device went away mid-pack (a Ray worker died): the trials it had not finished,
    ``(number, point)``, are to be run again; ``restartable``: the lane may take packs again."""

    def __init__(self, reason: str, unfinished: list[tuple[int, dict[str, Any]]],
                 restartable: bool) -> None:
        super().__init__(reason)
        self.unfinished, self.restartable = unfinished, restartable


@dataclass
class Lane:
    """One device's pack loop: where it trains and what it trains with."""

    device: torch.device
    label: str  # what its trials' ``mltune.device`` says (``cuda:1``, ``cpu#2``)
    data: TaskData | None  # the search's data, on this device (None: a remote worker's)
    # what trains its packs: ``run_pack(pack, members, refill=, on_end=, deadline=)`` and an
    # ``occupancy``, as ``TrialRunner`` (here) or a Ray worker's driver-side handle
    runner: TrialRunner | Any
    sizes: PackSizes | Any  # ``size(params, limit)``: ``pack: auto``'s, on this device


class LockedScheduler:
    """The search's one scheduler as several loops call it: one call at a time."""

    def __init__(self, scheduler: Scheduler, lock: threading.RLock) -> None:
        self.scheduler, self.lock = scheduler, lock

    def on_start(self, trial: int, params: Mapping[str, Any]) -> None:
        with self.lock:
            self.scheduler.on_start(trial, params)

    def on_result(self, trial: int, epoch: int, value: float,
                  peers: Mapping[int, float] | None = None) -> Decision:
        with self.lock:
            return self.scheduler.on_result(trial, epoch, value, peers)

    def on_end(self, trial: int) -> None:
        with self.lock:
            self.scheduler.on_end(trial)


def run_lanes(lanes: Sequence[Lane], loop: Callable[[Lane, Callable[[], bool]], None]) -> None:
    """``loop(lane, halted)`` for every lane: in this thread when there is one lane (a search
    on one device runs as it always did), else one thread each, until every loop returned.
    The first loop to raise stops the others (an interrupt at their next batch; ``halted()``
    turns true so they start no pack) and its error is raised here; Ctrl-C stops them all."""
    if len(lanes) == 1:
        loop(lanes[0], lambda: False)
        return
    errors: list[BaseException] = []
    halt = threading.Event()
    requested = threading.Event()  # this function asked for the interrupt: it clears it

    def run(lane: Lane) -> None:
        try:
            if lane.data is not None and lane.device.type == "cuda" \
                    and lane.device.index is not None:
                torch.cuda.set_device(lane.device)  # what this thread allocates unasked: there
            loop(lane, halt.is_set)
        except BaseException as exc:  # kept for the search's thread, which raises it
            errors.append(exc)
            if not halt.is_set():
                halt.set()
                if not isinstance(exc, KeyboardInterrupt):
                    requested.set()
                    interrupts.request(STOPPED_BY_PEER)

    threads = [threading.Thread(target=run, args=(lane,), name=f"mltune-{lane.label}",
                                daemon=True) for lane in lanes]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():  # a timed join: this thread still takes Ctrl-C
                thread.join(0.5)
    except BaseException:
        interrupts.request("SIGINT")  # Ctrl-C outside the signal handler's reach
        for thread in threads:
            thread.join()
        raise
    if requested.is_set():
        interrupts.clear()
    if errors:
        raise errors[0]


def shares(outcomes: Sequence[TrialOutcome]) -> dict[str, int]:
    """Trials by the device they trained on (``mltune.device``), in the order first seen;
    trials a search of an older mltune ran (no device) are left out."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.device is not None:
            counts[outcome.device] = counts.get(outcome.device, 0) + 1
    return counts
