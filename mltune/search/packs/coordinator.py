"""What every lane of a search shares, as its driver sees it: what to train next, trial and
pack numbers, the budget, the scheduler, the outcomes.

A search's lanes (one driver per local device, in threads; one per Ray worker, in its process)
each call these few methods, one at a time under one lock, with plain values only, so that a Ray
worker's calls travel to the search's process as they are (``backends.ray.relay``):

- ``next_pack``: the first point(s) of a lane's next pack: the ``start:`` points and a resumed
  search's interrupted ones first (``queued``), in groups of one shape; then the sampler's own
  next point (or one of another shape it proposed earlier: ``stash``), which fixes the pack's
  shape (every hyperparameter that may not differ inside a pack);
- ``admit``: that pack filled by the sampler with the shape fixed (each point knowing every
  earlier result) and numbered, never past the budget; each trial started with the scheduler;
- ``refill``: more trials for a running pack's free slots (``Refill``);
- ``epoch``: the scheduler's decisions on a pack's epoch, and whether the time budget is spent;
- ``ended`` and ``logged``: a trial ended (recorded, the sampler told, progress and stop rules
  updated) and, later, its model was logged (or could not be);
- ``lost``: a lane that went away gives back the trials it had not finished, to be run again.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from mltune.core.interrupts import Stop
from mltune.core.outcomes import TrialOutcome
from mltune.search.history.resume import ResumeState
from mltune.search.history.stopping import Progress
from mltune.search.packs.shapes import MAX_PACK, shape
from mltune.search.samplers.base import Params, Sampler, loss_of
from mltune.search.schedulers.base import CONTINUE, Decision, Scheduler
from mltune.spec.model import SearchSpec
from mltune.training.engine import Occupancy

Numbered = list[tuple[int, Params]]  # trials as (number, point)


@dataclass(frozen=True)
class Admitted:
    """A pack about to train: its number (None: a lone trial) and its numbered trials;
    ``refills``: whether its free slots are to be refilled (``Coordinator.refill``)."""

    pack: int | None
    trials: Numbered
    refills: bool


@dataclass(frozen=True)
class PackStart:
    """The first point(s) of a lane's next pack. ``limit``: the most trials it may take;
    ``measure``: its size is measured (``pack: auto``) up to ``limit``, then ``admit``ted;
    ``fill``: the sampler fills it and refills its free slots (the queue is spent);
    ``admitted``: the pack already numbered, when there was nothing to measure (so a
    resumed search's interrupted points get the next numbers, whichever lane is quicker)."""

    points: list[Params]
    queued: bool
    limit: int
    measure: bool
    fill: bool
    admitted: Admitted | None = None


@dataclass(frozen=True)
class EpochAnswer:
    """The scheduler's decision for each trial that reported (by number), and whether the
    search's time budget is spent (every trial then stops at the end of this epoch)."""

    decisions: dict[int, Decision]
    time_up: bool

    def decision(self, number: int) -> Decision:
        return self.decisions.get(number, CONTINUE)


class Coordination(Protocol):
    """What a driver calls: the search's ``Coordinator``, a Ray worker's relay to it, or the
    ``FixedPoints`` of a refit or a lone run."""

    def next_pack(self) -> PackStart | None: ...

    def admit(self, start: PackStart, size: int) -> Admitted | None: ...

    def refill(self, pack: int, free: int) -> Numbered: ...

    def epoch(self, reports: Sequence[tuple[int, int, float]]) -> EpochAnswer: ...

    def ended(self, outcome: TrialOutcome, oof: torch.Tensor | None = None) -> None: ...

    def logged(self, outcome: TrialOutcome) -> None: ...

    def packed(self, member_s: float, slot_s: float) -> None: ...


class FixedPoints:
    """Given trials, each trained once to its end, alone (or all as pack ``pack``): no
    sampler, no scheduler, no time budget (a refit, ``mltune train``, a benchmark). Their
    outcomes, by number, once they ended."""

    def __init__(self, trials: Numbered, pack: int | None = None) -> None:
        self.queue, self.pack = list(trials), pack
        self.outcomes: dict[int, TrialOutcome] = {}

    def next_pack(self) -> PackStart | None:
        if not self.queue:
            return None
        taken = len(self.queue) if self.pack is not None else 1
        return PackStart([p for _, p in self.queue[:taken]], queued=True, limit=taken,
                         measure=False, fill=False)

    def admit(self, start: PackStart, size: int) -> Admitted | None:
        taken, self.queue = self.queue[:len(start.points)], self.queue[len(start.points):]
        return Admitted(self.pack, taken, refills=False)

    def refill(self, pack: int, free: int) -> Numbered:
        return []

    def epoch(self, reports: Sequence[tuple[int, int, float]]) -> EpochAnswer:
        return EpochAnswer({}, time_up=False)

    def ended(self, outcome: TrialOutcome, oof: torch.Tensor | None = None) -> None:
        self.outcomes[outcome.number] = outcome

    def logged(self, outcome: TrialOutcome) -> None:
        """The outcome itself was updated (one process)."""

    def packed(self, member_s: float, slot_s: float) -> None:
        """Lone trials: no slots to keep full."""


class Refill:
    """The points that take a running pack's free slots: the sampler's own next point when it
    has the pack's shape; otherwise that point waits (``stash``: it starts a later pack) and
    a point of the pack's shape is asked instead. After ``misses`` such points the sampler
    has asked for other shapes long enough: the pack takes no one more and drains. 8K is
    allowed: at 2K an ASHA search on digits kept its slots 0.72 full (draining often), at 8K
    0.93-1.0 (``benchmarks/pruning.py``)."""

    def __init__(self, sampler: Sampler, fixed: Params, is_free: Callable[[str], bool],
                 stash: list[Params], misses: int) -> None:
        self.sampler, self.fixed, self.is_free = sampler, fixed, is_free
        self.stash, self.misses = stash, misses

    def __call__(self, n: int) -> list[Params]:
        points: list[Params] = []
        while len(points) < n and self.misses > 0:
            asked = self.sampler.ask(1)
            if not asked:
                break
            if shape(asked[0], self.is_free) == self.fixed:
                points += asked
                continue
            self.stash += asked
            self.misses -= 1
            points += self.sampler.ask(1, fixed=self.fixed)
        return points


class Coordinator:
    """One search's shared state. ``history``: what a resumed search already ran (its
    interrupted points and the ``start:`` points first, in ``history.requeue``)."""

    def __init__(self, spec: SearchSpec, sampler: Sampler, scheduler: Scheduler,
                 progress: Progress, history: ResumeState, is_free: Callable[[str], bool],
                 pack_limit: int = 1, per_trial: int = 1, stop: Stop | None = None) -> None:
        self.spec, self.sampler, self.scheduler = spec, sampler, scheduler
        self.progress, self.history, self.is_free = progress, history, is_free
        self.pack_limit = pack_limit  # the most trials trained at once (1: unpacked)
        self.per_trial = per_trial  # pack members a trial takes (cv: k)
        self.stop = stop or Stop()
        self.lock = threading.RLock()
        self.queued = list(history.requeue)
        self.stash: list[Params] = []  # the sampler's points of another shape: they start packs
        self.next_number, self.next_pack_number = history.next_number, history.next_pack
        self.in_flight: dict[int, Params] = {}  # trials handed out and not yet ended
        self.outcomes: dict[int, TrialOutcome] = {}  # this run's, by number
        self.oof: dict[int, torch.Tensor] = {}  # out-of-fold predictions, by trial number
        self.refills: dict[int, Refill] = {}  # by pack number
        self.occupancy = Occupancy()

    # -- what the lanes call -----------------------------------------------------------------

    def next_pack(self) -> PackStart | None:
        """The next pack's first point(s), or None when the search is over (budget, stop
        rules, a stop asked for, or the space spent)."""
        with self.lock:
            if self._over():
                return None
            limit = min(self.pack_limit, self.left)
            queued = bool(self.queued)
            if queued:
                points = self._same_shape(limit)
            else:
                points = [self.stash.pop(0)] if self.stash else self.sampler.ask(1)
                if not points:
                    return None  # no point left that is not pending: the space is spent
            if self.spec.pack == "auto" and self.per_trial > 1:  # MAX_PACK counts members
                limit = min(limit, max(1, MAX_PACK // self.per_trial))
            start = PackStart(points, queued, limit, self.spec.pack == "auto" and limit > 1,
                              fill=not self.queued)
            if start.measure:
                return start
            return PackStart(points, queued, limit, False, start.fill,
                             admitted=self.admit(start, limit))

    def admit(self, start: PackStart, size: int) -> Admitted | None:
        """``start``'s pack of ``size`` trials (the sampler fills it) numbered, each started
        with the scheduler; None when other lanes took the budget meanwhile (the points wait
        for the next pack, or the search ends)."""
        with self.lock:
            left = self.left
            if self._over() or left < len(start.points):
                (self.queued if start.queued else self.stash)[:0] = start.points
                return None
            points, refill = list(start.points), None
            size = min(size, left)
            if start.fill and size > 1:
                fixed = shape(points[0], self.is_free)
                points += self.sampler.ask(size - len(points), fixed=fixed)
                refill = Refill(self.sampler, fixed, self.is_free, self.stash, misses=8 * size)
            trials = [self._take(point) for point in points]
            pack = None
            if len(trials) > 1 or refill is not None:
                pack, self.next_pack_number = self.next_pack_number, self.next_pack_number + 1
            if refill is not None and pack is not None:
                self.refills[pack] = refill
            return Admitted(pack, trials, refill is not None)

    def refill(self, pack: int, free: int) -> Numbered:
        """Up to ``free`` more trials for pack ``pack``'s free slots, while the budget and
        the stop rules allow."""
        with self.lock:
            refill = self.refills.get(pack)
            if refill is None or self._over():
                return []
            return [self._take(point) for point in refill(min(free, self.left))]

    def epoch(self, reports: Sequence[tuple[int, int, float]]) -> EpochAnswer:
        """``(trial, its epoch, its value)`` for every trial of a pack measured this epoch:
        each judged by the scheduler against the others (its pack's peers)."""
        with self.lock:
            values = {number: value for number, _, value in reports}
            decisions = {number: self.scheduler.decide(
                number, epoch, value, {n: v for n, v in values.items() if n != number})
                for number, epoch, value in reports}
            return EpochAnswer(decisions, self._time_up())

    def ended(self, outcome: TrialOutcome, oof: torch.Tensor | None = None) -> None:
        """A trial ended: kept, the scheduler and the sampler told (its measured metric,
        whatever came after), the best, progress and stop rules updated."""
        with self.lock:
            self.outcomes[outcome.number] = outcome
            self.in_flight.pop(outcome.number, None)
            self.scheduler.end(outcome.number)
            self.sampler.tell(outcome.params, loss_of(outcome, self.spec.metric,
                                                      self.spec.direction))
            if oof is not None:
                self.oof[outcome.number] = oof
            self.progress(outcome)

    def logged(self, outcome: TrialOutcome) -> None:
        """A finished trial's model was logged (its URI), or could not be (FAILED, or KILLED
        on an outage)."""
        with self.lock:
            kept = self.outcomes.get(outcome.number)
            if kept is not None and kept is not outcome:  # a copy came from another process
                kept.model_uri, kept.status, kept.error = (outcome.model_uri, outcome.status,
                                                           outcome.error)
                kept.run_id = outcome.run_id or kept.run_id

    def lost(self, unfinished: Sequence[int]) -> dict[int, Params]:
        """A lane went away mid-pack: its unfinished trials (by number) run again first.
        Their points, by trial number."""
        with self.lock:
            points = {n: self.in_flight.pop(n) for n in unfinished if n in self.in_flight}
            for number in unfinished:
                self.scheduler.end(number)
            self.queued[:0] = list(points.values())
        return points

    def packed(self, member_s: float, slot_s: float) -> None:
        """A pack's occupancy (member-seconds trained, slot-seconds held)."""
        with self.lock:
            self.occupancy += Occupancy(member_s, slot_s)

    # -- what the search reads -----------------------------------------------------------------

    def stop_reason(self) -> str | None:
        return self.progress.stop_reason

    @property
    def left(self) -> int:
        """Trials the budget still allows (those running count as spent)."""
        if self.spec.max_evals is None:  # time alone: the time budget's stop rule ends it
            return sys.maxsize
        with self.lock:
            return (self.spec.max_evals - len(self.history.outcomes) - len(self.outcomes)
                    - len(self.in_flight))

    @property
    def all_outcomes(self) -> list[TrialOutcome]:
        """Every trial of the search, resumed ones first, in the order they ended."""
        with self.lock:
            return self.history.outcomes + list(self.outcomes.values())

    def _over(self) -> bool:
        return (self.stop.reason is not None or self.progress.stop_reason is not None
                or self.left <= 0)

    def _time_up(self) -> bool:
        budget = self.spec.stop.time_budget_s
        return budget is not None and time.monotonic() > self.progress.started + budget

    def _take(self, point: Params) -> tuple[int, Params]:
        """The next trial number for ``point``, started with the scheduler."""
        number, self.next_number = self.next_number, self.next_number + 1
        self.in_flight[number] = point
        self.scheduler.start(number, point)
        return number, point

    def _same_shape(self, limit: int) -> list[Params]:
        """The next queued points: the first, and those of its shape, up to ``limit``."""
        first = shape(self.queued[0], self.is_free)
        chosen = [p for p in self.queued if shape(p, self.is_free) == first][:max(1, limit)]
        for point in chosen:
            self.queued.remove(point)
        return chosen
