"""When a search stops before ``max_evals``: stop rules as objects, and the running best they
judge (kept here, also logged as the parent's ``best_<metric>`` curve)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.spec.model import SearchSpec


@dataclass(frozen=True)
class Standing:
    """The search so far, as a stop rule sees it."""

    metric: str
    direction: Direction
    best: float | None
    since_best: int  # trials in a row without a new best
    elapsed_s: float


class StopRule(Protocol):
    def reason(self, standing: Standing) -> str | None:
        """Why the search should stop now, or None."""


@dataclass(frozen=True)
class TargetReached:
    target: float

    def reason(self, standing: Standing) -> str | None:
        best = standing.best
        if best is not None and standing.direction.at_least(best, self.target):
            return (f"target reached: {standing.metric}={best:.6g} "
                    f"(target {self.target:g})")
        return None


@dataclass(frozen=True)
class NoImprovement:
    trials: int

    def reason(self, standing: Standing) -> str | None:
        if standing.since_best >= self.trials:
            return f"no improvement in {standing.since_best} trials"
        return None


@dataclass(frozen=True)
class TimeBudget:
    seconds: float

    def reason(self, standing: Standing) -> str | None:
        if standing.elapsed_s >= self.seconds:
            return f"time budget of {self.seconds:g} s spent"
        return None


def stop_rules(spec: SearchSpec) -> list[StopRule]:
    """The spec's ``stop:`` rules, in the order their reasons are given."""
    stop, rules = spec.stop, []
    if stop.target is not None:
        rules.append(TargetReached(stop.target))
    if stop.no_improvement is not None:
        rules.append(NoImprovement(stop.no_improvement))
    if stop.time_budget_s is not None:
        rules.append(TimeBudget(stop.time_budget_s))
    return rules


class Progress:
    """After each trial: the best so far (on the parent run too), the progress display, and
    whether a stop rule fires."""

    def __init__(self, spec: SearchSpec, log_best: Callable[[str, float, int], None],
                 display: Callable[[TrialOutcome, float | None], None] | None,
                 history: Iterable[TrialOutcome] = ()) -> None:
        self.metric, self.direction = spec.metric, spec.direction
        self.rules = stop_rules(spec)
        self.log_best, self.display = log_best, display
        self.best: float | None = None
        self.since_best = 0
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        for outcome in history:
            self._count(outcome)

    def _count(self, outcome: TrialOutcome) -> None:
        value = (outcome.metrics.get(self.metric) if outcome.status == TrialStatus.FINISHED
                 else None)
        if value is not None and (self.best is None or self.direction.better(value, self.best)):
            self.best, self.since_best = value, 0
        else:
            self.since_best += 1

    def __call__(self, outcome: TrialOutcome) -> None:
        self._count(outcome)
        if self.best is not None:
            self.log_best(self.metric, self.best, outcome.number)
        if self.display is not None:
            self.display(outcome, self.best)
        standing = Standing(self.metric, self.direction, self.best, self.since_best,
                            time.monotonic() - self.started)
        self.stop_reason = next((r for rule in self.rules
                                 if (r := rule.reason(standing)) is not None), None)
