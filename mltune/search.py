"""The search: an objective that trains and logs one trial, and the loop's bookkeeping.

Data is loaded once, the parent run opened once; each hyperopt sample becomes decoded params, a
child run, a trained network, a logged model and a loss. The best trial is chosen from the
outcomes by the spec's metric and mode, never by a hard-coded key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from hyperopt import STATUS_FAIL, STATUS_OK
from mlflow.entities import RunStatus

from mltune import registry, tracking
from mltune.backends import BACKENDS
from mltune.errors import SearchError
from mltune.space import build_space, decode
from mltune.spec import SearchSpec
from mltune.tasks import Task, TaskData, get_task
from mltune.train import fit, resolve_device, seed_everything

log = logging.getLogger(__name__)


@dataclass
class TrialOutcome:
    """One finished or failed trial, as the search saw it."""

    number: int
    run_id: str
    params: dict[str, Any]
    status: str  # FINISHED | FAILED
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

    @property
    def best_value(self) -> float:
        return self.best.metrics[self.spec.metric]

    @property
    def finished(self) -> int:
        return sum(t.status == "FINISHED" for t in self.trials)

    @property
    def failed(self) -> int:
        return sum(t.status == "FAILED" for t in self.trials)


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


def train_trial(task: Task, data: TaskData, params: Mapping[str, Any], run: tracking.TrialRun,
                epochs: int, seed: int) -> dict[str, float]:
    """Build, train and log one network; return its final metrics."""
    seed_everything(seed)
    network = task.build_model(params, data.meta)
    result = fit(network, data, params, loss_fn=task.make_loss(params, data),
                 score=lambda out, y: task.score(out, y, data.meta), epochs=epochs, seed=seed,
                 on_epoch=run.log_epoch)
    run.log_artifacts(task.trial_artifacts(network, data))
    run.log_model(task, network, params, data)
    del network
    return result.final


class Objective:
    """hyperopt's objective: one sample -> one child run -> a loss."""

    def __init__(self, spec: SearchSpec, task: Task, data: TaskData, search: tracking.SearchRun,
                 device: torch.device, on_trial: Callable[[TrialOutcome], None]) -> None:
        self.spec, self.task, self.data, self.search = spec, task, data, search
        self.device, self.on_trial = device, on_trial
        self.outcomes: list[TrialOutcome] = []

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        number = len(self.outcomes) + 1
        params = decode(sample)
        started = time.perf_counter()
        outcome = TrialOutcome(number, "", params, "FAILED")
        try:
            with tracking.trial_run(self.search, number, params, self.device) as run:
                outcome.run_id = run.run_id
                outcome.metrics = train_trial(self.task, self.data, params, run,
                                              self.spec.epochs, self.spec.seed + number)
                outcome.model_uri = run.model_uri
            outcome.status = "FINISHED"
        except Exception as exc:  # a failed trial is recorded; the search goes on
            outcome.error = f"{type(exc).__name__}: {exc}"
            log.warning("trial %d failed: %s", number, outcome.error)
        outcome.seconds = time.perf_counter() - started
        self.outcomes.append(outcome)
        self.on_trial(outcome)
        value = outcome.metrics.get(self.spec.metric)
        if outcome.status != "FINISHED" or value is None:
            return {"status": STATUS_FAIL, "trial": number}
        loss = -value if self.spec.mode == "max" else value
        return {"status": STATUS_OK, "loss": loss, "trial": number, "run_id": outcome.run_id}


class _BestTracker:
    """Logs ``best_<metric>`` on the parent after each trial and feeds the progress display."""

    def __init__(self, spec: SearchSpec, search: tracking.SearchRun,
                 progress: Callable[[TrialOutcome, float | None], None] | None) -> None:
        self.spec, self.search, self.progress = spec, search, progress
        self.best: float | None = None

    def __call__(self, outcome: TrialOutcome) -> None:
        value = outcome.metrics.get(self.spec.metric) if outcome.status == "FINISHED" else None
        if value is not None and (self.best is None or better(value, self.best, self.spec.mode)):
            self.best = value
        if self.best is not None:
            self.search.log_best(self.spec.metric, self.best, outcome.number)
        if self.progress is not None:
            self.progress(outcome, self.best)


def tune(
    spec: SearchSpec,
    progress: Callable[[TrialOutcome, float | None], None] | None = None,
) -> SearchResult:
    """Run the search the spec describes; register the best model. Returns the outcome."""
    task = get_task(spec.task)
    device = resolve_device(spec.device)
    backend = BACKENDS.get(spec.backend, field="backend")
    space = build_space(spec.space)
    data = task.load(spec.data, spec.seed).to(device)  # bad data fails before any run opens
    search = tracking.start_search(spec, data.fingerprint)
    try:
        tracker = _BestTracker(spec, search, progress)
        objective = Objective(spec, task, data, search, device, tracker)
        backend(objective, space, spec)
        best = select_best(objective.outcomes, spec.metric, spec.mode)
        result = SearchResult(spec, search.run_id, search.experiment_id, search.search_id,
                              objective.outcomes, best)
        _register(spec, search, result, data)
        search.log_summary(
            params={f"best.{k}": v for k, v in best.params.items()},
            metrics={"trials_finished": result.finished, "trials_failed": result.failed},
            tags={"mltune.best_run_id": best.run_id, "mltune.best_trial": best.number},
        )
    except (KeyboardInterrupt, SystemExit):
        search.end(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        search.end(RunStatus.to_string(RunStatus.FAILED))
        raise
    search.end(RunStatus.to_string(RunStatus.FINISHED))
    return result


def _register(spec: SearchSpec, search: tracking.SearchRun, result: SearchResult,
              data: TaskData) -> None:
    best = result.best
    if best.model_uri is None:
        raise SearchError(f"trial {best.number} finished without a logged model")
    version, aliases = registry.register(
        best.model_uri,
        spec.registered_model,
        tags={"mltune.search_id": search.search_id, "mltune.parent_run_id": search.run_id,
              "mltune.run_id": best.run_id, "mltune.metric": spec.metric,
              "mltune.metric_value": result.best_value, "mltune.mode": spec.mode,
              "mltune.task": spec.task, "mltune.spec_hash": spec.fingerprint(),
              "mltune.data_fingerprint": data.fingerprint},
        description=(f"Best of {len(result.trials)} trials of search {spec.name!r} "
                     f"({search.search_id}): {spec.metric}={result.best_value:.4f}"),
    )
    result.registered_version, result.aliases = version.version, aliases
    search.client.set_tag(search.run_id, "mltune.registered_model",
                          f"{spec.registered_model}/{version.version}")


def train_once(spec: SearchSpec, params: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    """Train and log one configuration as a standalone run; return (run id, final metrics)."""
    task = get_task(spec.task)
    device = resolve_device(spec.device)
    full = {**task.default_params(), **params}
    data = task.load(spec.data, spec.seed).to(device)
    with tracking.trial_run(None, 0, full, device, run_name=f"{spec.name}-train") as run:
        metrics = train_trial(task, data, full, run, spec.epochs, spec.seed)
        return run.run_id, metrics
