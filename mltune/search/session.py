"""A running search as a backend drives it: trial numbers, outcomes, progress and stop rules.

The backend decides where trials run; whichever it is, each trial gets its number here and its
outcome is recorded here (the local backend's trials through ``run_trial``, a Ray worker's
through ``record``), so numbering, ``best_<metric>``, progress and stop rules are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from mltune.core.outcomes import TrialOutcome
from mltune.data.splits import TaskData
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
                 history: ResumeState) -> None:
        self.spec, self.task, self.data, self.search = spec, task, data, search
        self.device, self.runner, self.progress = device, runner, progress
        self.history = history
        self.next_number = history.next_number
        self.outcomes: list[TrialOutcome] = []

    def take_number(self) -> int:
        number, self.next_number = self.next_number, self.next_number + 1
        return number

    def run_trial(self, sample: Mapping[str, Any], vals: Mapping[str, Any]) -> TrialOutcome:
        """Run the next trial here and record it."""
        outcome = self.runner.run(self.take_number(), sample, vals)
        self.record(outcome)
        return outcome

    def record(self, outcome: TrialOutcome) -> None:
        """A trial ended (here or in a worker): keep it, update the best, progress, stop rules."""
        self.outcomes.append(outcome)
        self.progress(outcome)

    def stop_reason(self) -> str | None:
        return self.progress.stop_reason

    @property
    def all_outcomes(self) -> list[TrialOutcome]:
        """Every trial of the search, resumed ones first."""
        return self.history.outcomes + self.outcomes
