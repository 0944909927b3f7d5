"""What a search produced, trial by trial, and how the best trial is chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mltune.errors import SearchError
from mltune.promote import Decision
from mltune.spec import SearchSpec


@dataclass
class TrialOutcome:
    """One trial, as the search saw it."""

    number: int
    run_id: str
    params: dict[str, Any]
    status: str  # FINISHED | FAILED | PRUNED | KILLED (interrupted)
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class SearchResult:
    """What a search leaves behind: its runs, its best trial, the registered version."""

    spec: SearchSpec
    parent_run_id: str
    experiment_id: str
    search_id: str
    trials: list[TrialOutcome]
    best: TrialOutcome
    registered_version: str | None = None
    aliases: list[str] = field(default_factory=list)
    decision: Decision | None = None  # the promotion gate's, for the registered version
    gate_error: str | None = None  # why the gate could not run, when it could not
    report_error: str | None = None  # why the report could not be made, when it could not

    @property
    def best_value(self) -> float:
        return self.best.metrics[self.spec.metric]

    @property
    def finished(self) -> int:
        return sum(t.status == "FINISHED" for t in self.trials)

    @property
    def failed(self) -> int:
        return sum(t.status == "FAILED" for t in self.trials)

    @property
    def pruned(self) -> int:
        return sum(t.status == "PRUNED" for t in self.trials)


def better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def select_best(outcomes: list[TrialOutcome], metric: str, mode: str) -> TrialOutcome:
    """The best finished trial by ``metric``/``mode``; the earliest wins a tie."""
    finished = [t for t in outcomes if t.status == "FINISHED" and metric in t.metrics]
    if not finished:
        errors = {t.error for t in outcomes if t.error}
        detail = f" (errors: {'; '.join(sorted(errors))[:500]})" if errors else ""
        failed = sum(t.status == "FAILED" for t in outcomes)
        raise SearchError(f"no trial finished with metric {metric!r}: "
                          f"{failed} of {len(outcomes)} trials failed{detail}")
    best = finished[0]
    for trial in finished[1:]:
        if better(trial.metrics[metric], best.metrics[metric], mode):
            best = trial
    return best
