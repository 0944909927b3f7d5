"""The search: an objective that trains and logs one trial, and the loop's bookkeeping.

Data is loaded once, the parent run opened once; each hyperopt sample becomes decoded params, a
child run, a trained network, a logged model and a loss. The best trial is chosen from the
outcomes by the spec's metric and mode, never by a hard-coded key.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from hyperopt import STATUS_FAIL, STATUS_OK
from mlflow.entities import RunStatus

from mltune import interrupts, registry, remote, tracking
from mltune.backends import BACKENDS
from mltune.errors import MltuneError, SearchError, SearchInterrupted, TrackingLost
from mltune.outcome import SearchResult, TrialOutcome, better, select_best
from mltune.precision import resolve_precision
from mltune.promote import promote
from mltune.pruning import TrialPruned, make_pruner
from mltune.resume import ResumeState, resume_search
from mltune.space import build_space, decode
from mltune.spec import SearchSpec
from mltune.tasks import Task, TaskData, get_task
from mltune.train import EarlyStopping, FitResult, fit, resolve_device, seed_everything

log = logging.getLogger(__name__)


@dataclass
class TrainedTrial:
    """A trained network whose run is still open: ``log`` records it and ends the run."""

    task: Task
    data: TaskData
    network: torch.nn.Module
    params: Mapping[str, Any]
    run: tracking.TrialRun
    result: FitResult
    metric: str

    @property
    def metrics(self) -> dict[str, float]:
        return self.result.final

    def log(self) -> str:
        """Artifacts, model and outcome; the run ends FINISHED (FAILED, re-raised, if not)."""
        run, result = self.run, self.result
        try:
            run.log_artifacts(self.task.trial_artifacts(self.network, self.data))
            run.log_model(self.task, self.network, self.params, self.data)
            run.log_outcome(result.final.get(self.metric), epochs_run=len(result.history),
                            best_epoch=result.best_epoch or len(result.history))
            run.end(RunStatus.FINISHED)
        except Exception as exc:
            if remote.is_outage(exc):  # not FAILED: a resume runs this trial again
                remote.best_effort(run.end, RunStatus.KILLED, {tracking.INTERRUPTED: "true"})
            else:
                run.fail(exc)
            raise
        assert run.model_uri is not None
        return run.model_uri


def train_trial(task: Task, data: TaskData, params: Mapping[str, Any], run: tracking.TrialRun,
                spec: SearchSpec, seed: int,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                ) -> TrainedTrial:
    """Build and train one network; its logging is left to the caller (``TrainedTrial.log``),
    so a search can log it in the background while the next trial trains."""
    seed_everything(seed)
    network = task.build_model(params, data.meta)

    def epoch_done(epoch: int, metrics: dict[str, float]) -> None:
        run.log_epoch(epoch, metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    stopper = (EarlyStopping(spec.metric, spec.mode, spec.patience)
               if spec.patience else None)
    result = fit(network, data, params, loss_fn=task.make_loss(params, data),
                 score=lambda out, y: task.score(out, y, data.meta), epochs=spec.epochs,
                 seed=seed, on_epoch=epoch_done, early_stopping=stopper,
                 time_limit_s=spec.trial_timeout_s, precision=spec.precision,
                 compile_model=spec.compile)
    run.deferred = True
    return TrainedTrial(task, data, network, params, run, result, spec.metric)


def hide_references(data: TaskData, spec: SearchSpec) -> None:
    """The task's metadata (logged with every model) names ``${VAR}`` data as written."""
    if spec.data.references:
        data.meta.update({k: spec.data.shown(v) for k, v in data.meta.items()})


def release_memory(device: torch.device) -> None:
    """Give back what a trial left, so trial 300 runs like trial 3."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_trial(task: Task, data: TaskData, search: tracking.SearchRun, device: torch.device,
              spec: SearchSpec, number: int, sample: dict[str, Any], vals: dict[str, Any],
              prune: Callable[[int, int, float], bool], precision: str | None = None,
              finish: Callable[[Callable[[], None]], Any] = lambda job: job(),
              ) -> TrialOutcome:
    """Train trial ``number`` as a child of ``search``; never raises for a failed trial.

    Self-contained (no search-wide state), so a backend can run it in a worker process;
    ``prune(number, epoch, value)`` is asked after every epoch whether to stop the trial, and
    ``finish`` runs the logging of the trained model (inline by default; the local backend
    hands it to a background thread so it overlaps the next trial).
    """
    params = decode(sample)
    started = time.perf_counter()
    outcome = TrialOutcome(number, "", params, "FAILED")
    best: list[float] = []

    def judge(epoch: int, metrics: dict[str, float]) -> None:
        interrupts.check()
        value = metrics[spec.metric]
        if not best or better(value, best[0], spec.mode):
            best[:] = [value]
        if prune(number, epoch, value):
            raise TrialPruned(epoch, best[0], spec.pruning.rule)

    try:
        with tracking.trial_run(search, number, params, device, vals=vals,
                                precision=precision) as run:
            outcome.run_id = run.run_id
            trained = train_trial(task, data, params, run, spec, spec.seed + number,
                                  on_epoch=judge)
            outcome.metrics = trained.metrics
        outcome.status = "FINISHED"
        finish(lambda: log_trained(trained, outcome))
    except TrialPruned as pruned:
        outcome.status, outcome.error = "PRUNED", str(pruned)
        outcome.metrics = {spec.metric: pruned.best}
    except Exception as exc:  # a failed trial is recorded; the search goes on
        if remote.is_outage(exc):  # ...unless the tracking server is gone: stop
            raise
        outcome.error = tracking.describe_error(exc)
        log.warning("trial %d failed: %s", number, outcome.error)
    finally:
        release_memory(device)
    outcome.seconds = time.perf_counter() - started
    return outcome


def log_trained(trained: TrainedTrial, outcome: TrialOutcome) -> None:
    """The second half of a trial: its model. A failure here fails the trial (an outage
    leaves it KILLED on the server, to be re-run by a resume)."""
    try:
        outcome.model_uri = trained.log()
    except Exception as exc:
        outcome.status = "KILLED" if remote.is_outage(exc) else "FAILED"
        outcome.error = tracking.describe_error(exc)
        log.warning("trial %d failed while its model was logged: %s", outcome.number,
                    outcome.error)


class Objective:
    """hyperopt's objective: one sample -> one child run -> a loss.

    Holds the search-wide bookkeeping (trial numbers, outcomes, pruning rule, ``on_trial``);
    the training itself is ``run_trial``, which the ray backend calls in its workers and
    reports back through ``record``.
    """

    def __init__(self, spec: SearchSpec, task: Task, data: TaskData, search: tracking.SearchRun,
                 device: torch.device, on_trial: Callable[[TrialOutcome], None],
                 first_number: int = 1) -> None:
        self.spec, self.task, self.data, self.search = spec, task, data, search
        self.device, self.on_trial = device, on_trial
        self.next_number = first_number
        self.outcomes: list[TrialOutcome] = []
        self.pruner = make_pruner(spec.pruning, spec.mode)
        self.finisher = tracking.Finisher()
        self.precision = resolve_precision(spec.precision, device).name

    def __call__(self, sample: dict[str, Any], vals: dict[str, Any]) -> dict[str, Any]:
        interrupts.check()
        number, self.next_number = self.next_number, self.next_number + 1
        try:
            outcome = run_trial(self.task, self.data, self.search, self.device, self.spec,
                                number, sample, vals, self.pruner.report,
                                precision=self.precision, finish=self.finisher.submit)
        finally:
            self.pruner.finish(number)
        self.record(outcome)
        return hyperopt_result(outcome, self.spec)

    def record(self, outcome: TrialOutcome) -> None:
        """A trial ended (here or in a worker): keep it, update the best, progress, stop rules."""
        self.outcomes.append(outcome)
        self.on_trial(outcome)


def hyperopt_result(outcome: TrialOutcome, spec: SearchSpec) -> dict[str, Any]:
    """What TPE learns from a trial: a pruned trial's best value counts too."""
    value = outcome.metrics.get(spec.metric)
    if outcome.status == "FAILED" or value is None:
        return {"status": STATUS_FAIL, "trial": outcome.number}
    loss = -value if spec.mode == "max" else value
    return {"status": STATUS_OK, "loss": loss, "trial": outcome.number, "run_id": outcome.run_id}


class _BestTracker:
    """After each trial: ``best_<metric>`` on the parent, the progress display, stop rules."""

    def __init__(self, spec: SearchSpec, search: tracking.SearchRun,
                 progress: Callable[[TrialOutcome, float | None], None] | None,
                 history: list[TrialOutcome]) -> None:
        self.spec, self.search, self.progress = spec, search, progress
        self.best: float | None = None
        self.since_best = 0
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        for outcome in history:
            self._update(outcome)

    def _update(self, outcome: TrialOutcome) -> None:
        value = outcome.metrics.get(self.spec.metric) if outcome.status == "FINISHED" else None
        if value is not None and (self.best is None or better(value, self.best, self.spec.mode)):
            self.best, self.since_best = value, 0
        else:
            self.since_best += 1

    def __call__(self, outcome: TrialOutcome) -> None:
        self._update(outcome)
        if self.best is not None:
            self.search.log_best(self.spec.metric, self.best, outcome.number)
        if self.progress is not None:
            self.progress(outcome, self.best)
        self.stop_reason = self._stop_reason()

    def _stop_reason(self) -> str | None:
        stop = self.spec.stop
        if stop.target is not None and self.best is not None and (
                self.best == stop.target or better(self.best, stop.target, self.spec.mode)):
            return f"target reached: {self.spec.metric}={self.best:.6g} (target {stop.target:g})"
        if stop.no_improvement is not None and self.since_best >= stop.no_improvement:
            return f"no improvement in {self.since_best} trials"
        if stop.time_budget_s is not None and \
                time.monotonic() - self.started >= stop.time_budget_s:
            return f"time budget of {stop.time_budget_s:g} s spent"
        return None


def tune(
    spec: SearchSpec,
    progress: Callable[[TrialOutcome, float | None], None] | None = None,
    resume: str | None = None,
    on_start: Callable[[], None] | None = None,
) -> SearchResult:
    """Run the search the spec describes (or continue the one ``resume`` names); register
    the best model. Returns the outcome.

    ``on_start`` is called once the data has loaded and the parent run is open, before the
    first trial (so a progress display never appears above a data error).
    """
    task = get_task(spec.task)
    device = resolve_device(spec.device)
    backend = BACKENDS.get(spec.backend, field="backend")
    getattr(backend, "preflight", lambda _: None)(spec)  # e.g. ray: is it installed?
    space = build_space(spec.space)
    remote.check_tracking_server(resume)  # a refused password costs seconds, not a data load
    data = task.load(spec.data, spec.seed).to(device)  # bad data fails before any run opens
    hide_references(data, spec)
    if device.type == "cuda" and not tracking.gpu_metrics_available():
        log.warning(tracking.GPU_METRICS_NOTICE)
    if resume:
        search, state = resume_search(resume, spec, space, data.fingerprint)
    else:
        search, state = tracking.start_search(spec, data.fingerprint), ResumeState()
    try:
        if on_start is not None:
            on_start()
        with interrupts.stop_on_signals():
            tracker = _BestTracker(spec, search, progress, state.outcomes)
            objective = Objective(spec, task, data, search, device, tracker,
                                  first_number=state.next_number)
            try:
                backend(objective, space, spec, state, lambda: tracker.stop_reason)
            finally:
                objective.finisher.close()  # every finished trial's model is logged
        outcomes = state.outcomes + objective.outcomes
        best = select_best(outcomes, spec.metric, spec.mode)
        result = SearchResult(spec, search.run_id, search.experiment_id, search.search_id,
                              outcomes, best)
        _register(spec, search, result, data)
        _log_best_figures(task, data, best, search)
        search.log_summary(
            params={f"best.{k}": v for k, v in best.params.items()},
            metrics={"trials_finished": result.finished, "trials_failed": result.failed,
                     "trials_pruned": result.pruned},
            tags={"mltune.best_run_id": best.run_id, "mltune.best_trial": best.number,
                  "mltune.stop_reason": tracker.stop_reason or "max_evals reached"},
        )
        result.report_error = _report(search)
    except (KeyboardInterrupt, SystemExit) as exc:
        search.end(RunStatus.to_string(RunStatus.KILLED))
        raise SearchInterrupted(search.run_id, str(exc) or "SIGINT") from None
    except BaseException as exc:
        if remote.is_outage(exc):  # finished trials are on the server; say how to go on
            remote.best_effort(search.end, RunStatus.to_string(RunStatus.FAILED))
            raise TrackingLost(search.run_id, remote.outage_reason(exc)) from None
        search.end(RunStatus.to_string(RunStatus.FAILED))
        raise
    search.end(RunStatus.to_string(RunStatus.FINISHED))
    return result


def _log_best_figures(task: Task, data: TaskData, best: TrialOutcome,
                      search: tracking.SearchRun) -> None:
    """The task's figures for the best trial (a forecast plot...), on the best trial's run.

    Rebuilt from the logged model, so it works whichever backend trained it. A figure that
    cannot be drawn costs a warning, never the search.
    """
    if best.model_uri is None or type(task).best_trial_figures is Task.best_trial_figures:
        return
    try:
        network = tracking.load_network(best.model_uri)
        figures = task.best_trial_figures(network, best.params, data)
        tracking.log_figures(search.client, best.run_id, figures)
    except Exception as exc:
        log.warning("figures of the best trial were not logged: %s: %s",
                    type(exc).__name__, exc)


def _register(spec: SearchSpec, search: tracking.SearchRun, result: SearchResult,
              data: TaskData) -> None:
    best = result.best
    if best.model_uri is None:
        raise SearchError(f"trial {best.number} finished without a logged model")
    version = registry.register(
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
    search.client.set_tag(search.run_id, "mltune.registered_model",
                          f"{spec.registered_model}/{version.version}")
    result.registered_version = version.version
    result.aliases = [registry.CHALLENGER]
    try:
        result.decision = promote(spec.registered_model, version.version,
                                  min_delta=spec.min_delta, spec=spec, data=data)
    except MltuneError as exc:  # e.g. a champion tuned for another metric: keep the version
        result.gate_error = str(exc)
        search.client.set_tag(search.run_id, "mltune.gate", f"not run: {exc}")
        return
    if result.decision.moved:
        result.aliases.append(registry.CHAMPION)


def _report(search: tracking.SearchRun) -> str | None:
    """The report on the parent run. Its failure is a warning and a tag, never a failed search:
    the trials and the registered model are what the search is for."""
    try:
        from mltune.report import build_report  # matplotlib is imported only now

        build_report(search.run_id, client=search.client)
        return None
    except Exception as exc:
        if remote.is_outage(exc):
            raise
        error = f"{type(exc).__name__}: {exc}"
        log.warning("search report not made: %s", error)
        try:
            search.client.set_tag(search.run_id, tracking.REPORT_ERROR,
                                  error[:tracking.MAX_TAG_LENGTH])
        except Exception:  # the store itself is failing: the warning has said it
            pass
        return error


def train_once(spec: SearchSpec, params: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
    """Train and log one configuration as a standalone run; return (run id, final metrics)."""
    task = get_task(spec.task).for_data(spec.data)
    device = resolve_device(spec.device)
    full = {**task.default_params(), **params}
    remote.check_tracking_server()
    data = task.load(spec.data, spec.seed).to(device)
    hide_references(data, spec)
    with tracking.trial_run(None, 0, full, device, run_name=f"{spec.name}-train",
                            precision=resolve_precision(spec.precision, device).name) as run:
        trained = train_trial(task, data, full, run, spec, spec.seed)
        trained.log()
    return run.run_id, trained.metrics
