"""The search from end to end, in the order the data flows.

spec -> network (a user's imported) -> task and device -> backend preflight -> space ->
tracking server check -> data loaded once -> a user's network built and run on two samples ->
parent run (new or resumed) with the splits as its datasets -> the backend runs trials through a
``Session`` -> best trial -> an ensemble of trials (``ensemble: N``) or else the best's refit on
train + validation (``refit: true``) -> registration and gate (the report's figures drawn
meanwhile) -> figures, report page, summary and description.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch
from mlflow.entities import RunStatus

from mltune.core import interrupts
from mltune.core.errors import SearchInterrupted, TrackingLost
from mltune.core.outcomes import TrialOutcome
from mltune.data.folds import Fold
from mltune.data.splits import TaskData
from mltune.models.network import load
from mltune.search import packs
from mltune.search.backend import BACKENDS
from mltune.search.crossval import search_folds
from mltune.search.devices import Lane, LockedScheduler
from mltune.search.ensemble import try_ensemble
from mltune.search.finish import PendingReport, describe, log_best_figures, register_best
from mltune.search.packs import PackSizes
from mltune.search.refit import check_refit, try_refit
from mltune.search.result import SearchResult, select_best
from mltune.search.resume import ResumeState, resume_search
from mltune.search.schedulers import make_scheduler
from mltune.search.session import Session
from mltune.search.stopping import Progress
from mltune.search.trial import TrialRunner
from mltune.spec.build import with_model
from mltune.spec.distributions import Space
from mltune.spec.model import SearchSpec, model_name
from mltune.spec.rules import check_params
from mltune.spec.space import build_space
from mltune.spec.start import not_yet_run, start_points
from mltune.tasks import task_for
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.background import Finisher
from mltune.tracking.datasets import split_datasets
from mltune.tracking.remote import best_effort, check_tracking_server, is_outage, outage_reason
from mltune.tracking.runs import SearchRun, mark_experiment, start_search
from mltune.tracking.store import create_tables, share_sqlite_store
from mltune.tracking.system import GPU_METRICS_NOTICE, gpu_metrics_available
from mltune.training.device import device_labels, resolve_device, resolve_devices
from mltune.training.precision import resolve_precision

log = logging.getLogger(__name__)

Display = Callable[[TrialOutcome, float | None], None]


def hide_references(data: TaskData, spec: SearchSpec) -> None:
    """The task's metadata (logged with every model) names ``${VAR}`` data as written."""
    if spec.data.references:
        data.meta.update({k: spec.data.shown(v) for k, v in data.meta.items()})


def with_network(spec: SearchSpec, model: Any = None) -> tuple[SearchSpec, Task]:
    """The spec (for ``model`` when given: a callable from Python) and its task with the
    network loaded: a user's code is imported here, before anything is read or opened. The
    spec returned names the network as text (a callable as ``module:qualname``)."""
    if model is not None:
        spec = with_model(spec, model)
    task = task_for(spec)
    if task.network is not None:
        task = task.with_network(load(task.network), spec.space)
        spec = replace(spec, model=model_name(spec.model))
    return spec, task


def tune(
    spec: SearchSpec,
    progress: Display | None = None,
    resume: str | None = None,
    on_start: Callable[[], None] | None = None,
    model: Any = None,
) -> SearchResult:
    """Run the search the spec describes (or continue the one ``resume`` names); register
    the best model. Returns the outcome.

    ``progress(outcome, best)`` is called after each trial; ``on_start`` once the data has
    loaded and the parent run is open, before the first trial (so a progress display never
    appears above a data error). ``model``: your network's callable, ``build(params, data)
    -> nn.Module``, instead of the spec's ``model:``.
    """
    share_sqlite_store()  # several searches may write to one local store at once
    spec, task = with_network(spec, model)
    devices = resolve_devices(spec.device)  # one pack loop each (the local backend)
    device = devices[0]  # the data's, a lone run's (refit, ensemble)
    backend = BACKENDS.get(spec.backend, field="backend")
    backend.preflight(spec)  # e.g. ray: is it installed?
    space = build_space(spec.space)
    check_tracking_server(resume)  # a refused password costs seconds, not a data load
    data = task.load(spec.data, spec.seed).to(device)  # bad data fails before any run opens
    hide_references(data, spec)
    task.check_network(data)  # a user's network: built, and two samples through it
    pack_limit, _ = packs.pack_limit(spec, task, data)  # pack: N that cannot be: refused now
    check_refit(spec, data)  # refit: true on streamed data: refused now
    folds = search_folds(spec, task, data)  # cv: k; what cannot be cross-validated: refused
    if any(d.type == "cuda" for d in devices) and not gpu_metrics_available():
        log.warning(GPU_METRICS_NOTICE)
    datasets = split_datasets(spec.data.shown(spec.data.source), data)  # once per search
    create_tables()  # a new local store: one process at a time runs MLflow's migrations
    if resume:
        search, history = resume_search(resume, spec, space, data.fingerprint)
        search.log_datasets(datasets)  # a search an older mltune started has none yet
        mark_experiment(search.client, search.experiment_id)
    else:
        search, history = start_search(spec, data.fingerprint, datasets), ResumeState()
    seen = [o.params for o in history.outcomes] + history.requeue
    history.requeue[:0] = not_yet_run(start_points(spec, task, space), seen)  # run first
    try:
        if on_start is not None:
            on_start()
        gc.freeze()  # what set-up made lives on: later collections need not scan it
        with interrupts.stop_on_signals():
            finisher = Finisher()
            session = _session(spec, task, data, search, devices, finisher, space, progress,
                               history, pack_limit, folds)
            runner = session.runner
            try:
                backend.run(session, space)
            finally:
                finisher.close()  # every finished trial's model is logged
        result = _result(spec, session)
        if (spec.ensemble or 0) > 1:  # trials' own models averaged; a failure costs a tag
            ensemble, result.ensemble_error = try_ensemble(spec, task, data, search, device,
                                                           result.trials, result.best,
                                                           session.out_of_fold() if folds else None,
                                                           runner.precision)
            if ensemble is not None:
                result.ensemble_members, result.ensemble_value = (ensemble.members,
                                                                  ensemble.value)
                result.ensemble_run_id = ensemble.run_id
                result.ensemble_model_uri = ensemble.model_uri
        if spec.refit and result.ensemble_run_id is None:  # an ensemble's members: refit
            refit, result.refit_error = try_refit(spec, task, data, search, device,
                                                  runner.precision, result.best)
            if refit is not None:
                result.refit_run_id, result.refit_model_uri = refit.run_id, refit.model_uri
                result.refit_epochs = refit.epochs
        occupancy = session.occupancy()
        report = PendingReport.start(search)  # figures drawn while the best is registered
        register_best(result, search, data)
        log_best_figures(task, data, result, search)
        result.report_error = report.finish(RunStatus.to_string(RunStatus.FINISHED))
        search.log_summary(
            params={f"best.{k}": v for k, v in result.best.params.items()},
            metrics={"trials_finished": result.finished, "trials_failed": result.failed,
                     "trials_pruned": result.pruned, "epochs_trained": result.epochs_trained,
                     "epochs_without_pruning": result.epochs_without_pruning,
                     "devices": len(result.devices),
                     **({"pack_occupancy": occupancy.share}
                        if occupancy.share is not None else {})},
            tags={T.BEST_RUN_ID: result.best.run_id, T.BEST_TRIAL: result.best.number,
                  **({T.REFIT_RUN_ID: result.refit_run_id} if result.refit_run_id else {}),
                  **({T.ENSEMBLE_RUN_ID: result.ensemble_run_id}
                     if result.ensemble_run_id else {}),
                  T.DEVICES: json.dumps(result.devices),
                  T.STOP_REASON: session.stop_reason() or (
                      "max_evals reached" if spec.max_evals is not None else "space spent"),
                  T.NOTE: describe(result)},
        )
        gc.unfreeze()
    except (KeyboardInterrupt, SystemExit) as exc:
        gc.unfreeze()
        search.end(RunStatus.to_string(RunStatus.KILLED))
        raise SearchInterrupted(search.run_id, str(exc) or "SIGINT") from None
    except BaseException as exc:
        gc.unfreeze()
        if is_outage(exc):  # finished trials are on the server; say how to go on
            best_effort(search.end, RunStatus.to_string(RunStatus.FAILED))
            raise TrackingLost(search.run_id, outage_reason(exc)) from None
        search.end(RunStatus.to_string(RunStatus.FAILED))
        raise
    search.end(RunStatus.to_string(RunStatus.FINISHED))
    return result


def _session(spec: SearchSpec, task: Task, data: TaskData, search: SearchRun,
             devices: list[torch.device], finisher: Finisher, space: Space,
             progress: Display | None, history: ResumeState, pack_limit: int,
             folds: list[Fold] | None = None) -> Session:
    """The running search: one lane per device (the data moved to each once, a runner on
    each, the folds too), one scheduler for them all; more than one device needs the local
    backend."""
    if spec.backend != "local":
        devices = devices[:1]  # a remote worker chooses its own device
    scheduler: Any = make_scheduler(spec.pruning, spec.direction, space, spec.seed)
    lock = threading.RLock()
    if len(devices) > 1:
        scheduler = LockedScheduler(scheduler, lock)
    lanes, sizes = [], {}  # loops on one device share its measured pack sizes
    for device, label in zip(devices, device_labels(devices), strict=True):
        on_device = data if device == data.x_train.device else data.to(device)
        runner = TrialRunner(spec, task, on_device, search, device,
                             resolve_precision(spec.precision, device).name,
                             scheduler=scheduler, finish=finisher.submit, label=label,
                             folds=[f.to(device) for f in folds] if folds else None)
        if device not in sizes:
            sizes[device] = PackSizes(task, on_device, device, spec.precision)
        lanes.append(Lane(device, label, on_device, runner, sizes[device]))
    if len(lanes) > 1:
        log.info("training on %d devices at once: %s", len(lanes),
                 ", ".join(lane.label for lane in lanes))
    session = Session(spec, task, data, search, devices[0], lanes[0].runner,
                      Progress(spec, search.log_best, progress, history.outcomes),
                      history, pack_limit, lanes=lanes, lock=lock)
    return session


def _result(spec: SearchSpec, session: Session) -> SearchResult:
    outcomes = sorted(session.all_outcomes, key=lambda o: o.number)  # they end out of order
    best = select_best(outcomes, spec.metric, spec.direction)
    search = session.search
    return SearchResult(spec, search.run_id, search.experiment_id, search.search_id,
                        outcomes, best, devices=session.device_shares())


def train_once(spec: SearchSpec, params: Mapping[str, Any],
               model: Any = None) -> tuple[str, dict[str, float]]:
    """Train and log one configuration as a standalone run; return (run id, final metrics).
    ``model``: as for ``tune``."""
    share_sqlite_store()
    spec, task = with_network(spec, model)
    device = resolve_device(spec.device)
    full = {**task.default_params(), **params}
    check_params(full, task.param_rules())  # the space's rules, before the run opens
    check_tracking_server()
    data = task.load(spec.data, spec.seed).to(device)
    hide_references(data, spec)
    task.check_network(data)
    runner = TrialRunner(spec, task, data, None, device,
                         resolve_precision(spec.precision, device).name, raise_failures=True)
    create_tables()
    outcome = runner.run_params(0, full, run_name=f"{spec.name}-train")
    return outcome.run_id, outcome.metrics
