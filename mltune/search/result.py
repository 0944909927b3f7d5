"""What a search leaves behind, and how its best trial is chosen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mltune.core.errors import SearchError
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.registry.gate import Decision
from mltune.spec.model import SearchSpec


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
    # refit: true: the run id of the refit whose model was registered, or why the refit failed
    refit_run_id: str | None = None
    refit_model_uri: str | None = None
    refit_epochs: int | None = None
    refit_error: str | None = None
    # ensemble: N: the ensemble registered (its run, model and members), or why none was made;
    # ensemble_members alone (no run): one member was chosen, the best trial's model stands
    ensemble_run_id: str | None = None
    ensemble_model_uri: str | None = None
    ensemble_members: list[dict[str, Any]] = field(default_factory=list)
    ensemble_value: float | None = None
    ensemble_error: str | None = None
    # trials by the device they trained on (``mltune.device``): several with one pack loop
    # per device
    devices: dict[str, int] = field(default_factory=dict)

    @property
    def best_value(self) -> float:
        return self.best.metrics[self.spec.metric]

    def count(self, status: TrialStatus) -> int:
        return sum(t.status == status for t in self.trials)

    @property
    def finished(self) -> int:
        return self.count(TrialStatus.FINISHED)

    @property
    def failed(self) -> int:
        return self.count(TrialStatus.FAILED)

    @property
    def pruned(self) -> int:
        return self.count(TrialStatus.PRUNED)

    @property
    def epochs_trained(self) -> int:
        """The epochs the search's trials trained, all together."""
        return sum(t.epochs for t in self.trials)

    @property
    def epochs_without_pruning(self) -> int:
        """What the same trials would have trained had none stopped early."""
        return len(self.trials) * self.spec.epochs


def select_best(outcomes: list[TrialOutcome], metric: str, direction: Direction) -> TrialOutcome:
    """The best finished trial by ``metric``; the earliest wins a tie."""
    finished = [t for t in outcomes if t.status == TrialStatus.FINISHED and metric in t.metrics]
    best = direction.best_of(finished, key=lambda t: t.metrics[metric])
    if best is None:
        errors = {t.error for t in outcomes if t.error}
        detail = f" (errors: {'; '.join(sorted(errors))[:500]})" if errors else ""
        failed = sum(t.status == TrialStatus.FAILED for t in outcomes)
        raise SearchError(f"no trial finished with metric {metric!r}: "
                          f"{failed} of {len(outcomes)} trials failed{detail}")
    return best


def shares_line(counts: Mapping[str, int]) -> str:
    """``2 devices: cuda:0 12 trials (55%), cuda:1 10 (45%)``."""
    total = sum(counts.values()) or 1
    parts = [f"{label} {n}{' trials' if i == 0 else ''} ({100 * n / total:.0f}%)"
             for i, (label, n) in enumerate(counts.items())]
    return f"{len(counts)} device{'s' if len(counts) != 1 else ''}: {', '.join(parts)}"
