"""What a search leaves behind, and how its best trial is chosen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mltune.core.errors import SearchError
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.registry.gate import Decision
from mltune.search.history.priors import Priors
from mltune.spec.model import SearchSpec


@dataclass(frozen=True)
class RefitResult:
    """``refit: true``: the refit whose model was registered (its run, model and the epochs it
    trained), or why it failed (``error``: the best trial's own model was registered)."""

    run_id: str | None = None
    model_uri: str | None = None
    epochs: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class EnsembleResult:
    """``ensemble: N``: the members chosen (``{trial, run_id, weight}``, best weight first;
    ``refit_run_id`` with refit) and their averaged score on the rows they were chosen on; the
    ensemble's run and model when more than one member was chosen (one alone: nothing is
    logged, the best trial's model stands); or why none was made (``error``)."""

    members: list[dict[str, Any]] = field(default_factory=list)
    value: float | None = None
    candidates: int = 0
    run_id: str | None = None
    model_uri: str | None = None
    error: str | None = None


@dataclass
class SearchResult:
    """What a search leaves behind: its runs, its best trial, what was registered."""

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
    refit: RefitResult | None = None  # refit: true
    ensemble: EnsembleResult | None = None  # ensemble: N
    # trials by the device they trained on (``mltune.device``): several with one lane per
    # device
    devices: dict[str, int] = field(default_factory=dict)
    # what the search learnt from earlier searches (warm_start); None: warm_start off
    warm: Priors | None = None

    @property
    def registered_from(self) -> str:
        """What the registered model is: ``ensemble``, ``refit`` or ``trial``."""
        if self.ensemble is not None and self.ensemble.model_uri:
            return "ensemble"
        if self.refit is not None and self.refit.model_uri:
            return "refit"
        return "trial"

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
    """The best finished trial by ``metric``; the earliest wins a tie (``min`` keeps the
    first of equals)."""
    finished = [t for t in outcomes if t.status == TrialStatus.FINISHED and metric in t.metrics]
    best = min(finished, key=lambda t: direction.sort_key(t.metrics[metric]), default=None)
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
