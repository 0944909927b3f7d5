"""A running search as a backend drives it: trial numbers, outcomes, progress and stop rules.

The backend decides where trials run; whichever it is, each trial gets its number here and its
outcome is recorded here (the local backend's trials through ``run_pack``, a Ray worker's
through ``record``), so numbering, ``best_<metric>``, progress and stop rules are the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mltune.core.outcomes import TrialOutcome
from mltune.data.splits import TaskData
from mltune.search.packs import PackSizes, is_free
from mltune.search.resume import ResumeState
from mltune.search.stopping import Progress
from mltune.search.trial import TrialRunner
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking.runs import SearchRun


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
        self.sizes = PackSizes(task, data, device, spec.precision)  # pack: auto, once per cost

    def take_number(self) -> int:
        number, self.next_number = self.next_number, self.next_number + 1
        return number

    def is_free(self, key: str) -> bool:
        """Whether hyperparameter ``key`` may differ inside a pack (``packs.is_free``)."""
        return is_free(key, self.task)

    def pack_size(self, params: Mapping[str, Any]) -> int:
        """How many trials of this shape (``params``: the pack's first member) train at once;
        never more than the budget has left."""
        limit = min(self.pack_limit, self.left)
        if limit <= 1:
            return 1
        if self.spec.pack != "auto":
            return limit
        return self.sizes.size(params, limit)

    def run_pack(self, points: Sequence[Mapping[str, Any]]) -> list[TrialOutcome]:
        """Run trials with these decoded params as one pack (a single point: a lone trial,
        no pack number) and record each; one outcome per point, in order."""
        members = [(self.take_number(), params) for params in points]
        pack = None
        if len(members) > 1:
            pack, self.next_pack = self.next_pack, self.next_pack + 1
        outcomes = self.runner.run_pack(pack, members)
        for outcome in outcomes:
            self.record(outcome)
        return outcomes

    def record(self, outcome: TrialOutcome) -> None:
        """A trial ended (here or in a worker): keep it, update the best, progress, stop rules."""
        self.outcomes.append(outcome)
        self.progress(outcome)

    def stop_reason(self) -> str | None:
        return self.progress.stop_reason

    @property
    def left(self) -> int:
        """Trials the budget still allows."""
        return self.spec.max_evals - len(self.all_outcomes)

    @property
    def all_outcomes(self) -> list[TrialOutcome]:
        """Every trial of the search, resumed ones first."""
        return self.history.outcomes + self.outcomes
