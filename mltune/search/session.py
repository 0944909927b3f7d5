"""A running search as a backend drives it: trial numbers, outcomes, progress and stop rules.

The backend decides where trials run; whichever it is, each trial gets its number here and its
outcome is recorded here (the local backend's trials through ``run_pack``, a Ray worker's
through ``record``), so numbering, ``best_<metric>``, progress and stop rules are the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from mltune.core.outcomes import TrialOutcome
from mltune.data.splits import TaskData
from mltune.search.packs import MAX_PACK, PackSizes, is_free
from mltune.search.resume import ResumeState
from mltune.search.stopping import Progress
from mltune.search.trial import TrialRunner
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking.runs import SearchRun

More = Callable[[int], Sequence[Mapping[str, Any]]]  # up to n more points for a pack's free slots


class Session:
    """One search in progress. ``history`` is what a resumed search already ran."""

    def __init__(self, spec: SearchSpec, task: Task, data: TaskData, search: SearchRun,
                 device: torch.device, runner: TrialRunner, progress: Progress,
                 history: ResumeState, pack_limit: int = 1) -> None:
        self.spec, self.task, self.data, self.search = spec, task, data, search
        self.device, self.runner, self.progress = device, runner, progress
        self.history = history
        self.pack_limit = pack_limit  # the most trials trained at once (1: unpacked)
        self.next_number = history.next_number
        self.next_pack = history.next_pack
        self.outcomes: list[TrialOutcome] = []
        self.in_flight: set[int] = set()  # numbers of trials started and not yet recorded
        self.sizes = PackSizes(task, data, device, spec.precision)  # pack: auto, once per cost

    def take_number(self) -> int:
        number, self.next_number = self.next_number, self.next_number + 1
        self.in_flight.add(number)
        return number

    @property
    def deadline(self) -> float | None:
        """When the time budget is spent (``time.monotonic()``), if the search has one: the
        members of a running pack stop at their next epoch end past it."""
        budget = self.spec.stop.time_budget_s
        return None if budget is None else self.progress.started + budget

    def is_free(self, key: str) -> bool:
        """Whether hyperparameter ``key`` may differ inside a pack (``packs.is_free``)."""
        return is_free(key, self.task)

    def pack_size(self, params: Mapping[str, Any]) -> int:
        """How many trials of this shape (``params``: the pack's first member) train at once;
        never more than the budget has left. A cross-validated trial takes k members: ``pack:
        auto`` measures and caps members, ``pack: N`` is N trials."""
        per_trial = self.runner.members_per_trial  # cv: k members a trial
        limit = min(self.pack_limit, self.left)
        if self.spec.pack == "auto" and per_trial > 1:  # MAX_PACK counts members
            limit = min(limit, max(1, MAX_PACK // per_trial))
        if limit <= 1:
            return 1
        if self.spec.pack != "auto":
            return limit
        return max(1, self.sizes.size(params, limit * per_trial) // per_trial)

    def run_pack(self, points: Sequence[Mapping[str, Any]], more: More | None = None,
                 on_end: Callable[[Mapping[str, Any], TrialOutcome], None] | None = None,
                 ) -> list[TrialOutcome]:
        """Run trials with these decoded params as one pack (a single point without ``more``:
        a lone trial, no pack number) and record each as it ends; ``more(n)``: up to ``n``
        points to take the slots of members that ended (asked only while the budget and the
        stop rules allow). ``on_end(point, outcome)`` hears each trial as it ends. The
        outcomes of every trial the pack ran."""
        asked = {}  # trial number -> its point as the caller gave it
        for params in points:
            asked[self.take_number()] = params
        pack = None
        if len(asked) > 1 or more is not None:
            pack, self.next_pack = self.next_pack, self.next_pack + 1

        def refill(free: int) -> list[tuple[int, Mapping[str, Any]]]:
            if more is None or self.stop_reason() is not None or self.left <= 0:
                return []
            taken = [(self.take_number(), p) for p in more(min(free, self.left))]
            asked.update(taken)
            return taken

        def ended(outcome: TrialOutcome) -> None:
            self.record(outcome)
            if on_end is not None:
                on_end(asked[outcome.number], outcome)

        return self.runner.run_pack(pack, list(asked.items()),
                                    refill=refill if more is not None else None,
                                    on_end=ended, deadline=self.deadline)

    def record(self, outcome: TrialOutcome) -> None:
        """A trial ended (here or in a worker): keep it, update the best, progress, stop rules."""
        self.outcomes.append(outcome)
        self.in_flight.discard(outcome.number)
        self.progress(outcome)

    def stop_reason(self) -> str | None:
        return self.progress.stop_reason

    @property
    def left(self) -> int:
        """Trials the budget still allows (those running count as spent)."""
        if self.spec.max_evals is None:  # time alone: the time budget's stop rule ends it
            return sys.maxsize
        return self.spec.max_evals - len(self.all_outcomes) - len(self.in_flight)

    @property
    def all_outcomes(self) -> list[TrialOutcome]:
        """Every trial of the search, resumed ones first."""
        return self.history.outcomes + self.outcomes
