"""The one place a trial's records are written.

The driver and its trials talk only to a ``Tracker`` (a trial's record opened) and the
``TrialRecord`` it gives (an epoch's metrics, a population-based copy, and exactly one ending,
``end``); MLflow is the implementation here (``MlflowTracker``), and the fast tests use a
recording one of their own. A record is closed in one place, whatever ended its trial: finished
(its model logged in the background while the pack trains on), pruned, failed or interrupted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from torch import nn

from mltune.core.terms import TrialStatus
from mltune.tracking import tags as T
from mltune.tracking.background import Finisher, inline, send_later, sent
from mltune.tracking.model import log_ensemble_model
from mltune.tracking.remote import best_effort, is_outage
from mltune.tracking.runs import (
    SearchRun,
    describe_error,
    logged_model_name,
    now_ms,
    param_value,
)
from mltune.tracking.trial_runs import TrialRun

log = logging.getLogger(__name__)
ENSEMBLE = "ensemble"  # an ensemble run's role and name


@dataclass(frozen=True)
class Ending:
    """How a trial ended, as its record keeps it. ``value``: what the search scored it by;
    ``epochs``: the epochs it trained; ``best_epoch``: the epoch whose weights it holds;
    ``reason``: why a pruned trial stopped, or a failed one's error; ``stopped``: what cut a
    finished trial short (``time_budget``); ``curve``: its metric by epoch, what a scheduler
    is rebuilt from on resume."""

    status: TrialStatus
    value: float | None = None
    epochs: int = 0
    best_epoch: int = 0
    reason: str | None = None
    stopped: str | None = None
    curve: tuple[float, ...] = field(default=())


# what a record's ending turned out to be once its model was logged (or failed to be):
# (model URI or None, error or None, final status)
Logged = Callable[[str | None, str | None, TrialStatus], None]


class TrialRecord(Protocol):
    """One trial's record, as its trial writes it. ``run_id`` may wait for the record to
    exist (it is made in the background): read it once the trial ended."""

    run_id: str

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """An epoch's metrics (sent in the background)."""

    def exploit(self, epoch: int, source: int, before: Mapping[str, Any],
                values: Mapping[str, Any]) -> None:
        """From ``epoch`` on, the trial goes on from trial ``source``'s weights with
        ``values`` (its values were ``before``)."""

    def end(self, ending: Ending, networks: Sequence[nn.Module] = (),
            params: Mapping[str, Any] | None = None, then: Logged | None = None) -> None:
        """Close the record (once). A finished trial's ``networks`` (one, or one per fold:
        served as their average) are its model, logged maybe later; ``then`` hears how that
        went."""


class Tracker(Protocol):
    """Opens the records of one lane's trials."""

    def open(self, number: int, params: Mapping[str, Any], pack: int | None = None
             ) -> TrialRecord:
        """Trial ``number``'s record, its decoded ``params`` written at once."""

    def check(self) -> None:
        """Raise what went wrong in the background that stops the search (a lost tracking
        server); cheap, and never waits."""

    def drain(self) -> None:
        """Wait until every record's background work is done (and ``check``)."""


def curve_tag(curve: Sequence[float]) -> str | None:
    """A trial's metric by epoch as a tag value (None when it would not fit one)."""
    text = json.dumps([float(v) for v in curve])
    return text if len(text) <= T.MAX_TAG_LENGTH else None


class MlflowRecord:
    """A trial's record as an MLflow run (``TrialRun``)."""

    def __init__(self, run: TrialRun, tracker: MlflowTracker) -> None:
        self.run, self.tracker = run, tracker

    @property
    def run_id(self) -> str:  # type: ignore[override]
        """Waits for the run to exist (it is made in the background)."""
        return self.run.run_id

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.run.log_epoch(epoch, metrics)

    def exploit(self, epoch: int, source: int, before: Mapping[str, Any],
                values: Mapping[str, Any]) -> None:
        self.run.log_exploit(epoch, source, before, values)

    def end(self, ending: Ending, networks: Sequence[nn.Module] = (),
            params: Mapping[str, Any] | None = None, then: Logged | None = None) -> None:
        run = self.run
        run.stop_monitor()
        tags = {T.CURVE: curve_tag(ending.curve)} if ending.curve else {}
        tags = {k: v for k, v in tags.items() if v is not None}
        if ending.status is TrialStatus.FINISHED:
            self.tracker.finish(lambda: self._log(ending, networks, params or {}, tags, then))
        elif ending.status is TrialStatus.PRUNED:
            self.tracker.later(run.end_later(TrialStatus.PRUNED, {
                **tags, T.OBJECTIVE: repr(float(ending.value or 0.0)),
                T.EPOCHS_RUN: str(ending.epochs), T.ERROR: ending.reason or "pruned"}))
        elif ending.status is TrialStatus.FAILED:
            self.tracker.later(send_later(run.fail, ending.reason or "failed", tags))
        else:  # interrupted, or cut off from the tracking server: a resume runs it again
            best_effort(run.end, TrialStatus.KILLED, {T.INTERRUPTED: "true"})

    def _log(self, ending: Ending, networks: Sequence[nn.Module], params: Mapping[str, Any],
             tags: dict[str, str], then: Logged | None) -> None:
        """A finished trial's second half: its score, its files, its model. A failure here
        fails the trial (an outage leaves it KILLED, to be re-run by a resume)."""
        run, tracker = self.run, self.tracker
        try:
            run.log_outcome(ending.value if tracker.scored else None, epochs_run=ending.epochs,
                            best_epoch=ending.best_epoch or ending.epochs)
            if len(networks) == 1:  # a fold's rows differ: no validation files for folds
                run.log_artifacts(tracker.task.trial_artifacts(networks[0], tracker.data))
            network: Any = networks[0] if len(networks) == 1 else list(networks)
            model_uri = run.log_model(tracker.task, network, params, tracker.data)
            run.end(TrialStatus.FINISHED,
                    {**tags, **({T.STOPPED: ending.stopped} if ending.stopped else {})})
        except Exception as exc:
            error = describe_error(exc)
            if is_outage(exc):
                best_effort(run.end, TrialStatus.KILLED, {T.INTERRUPTED: "true"})
                status = TrialStatus.KILLED
            else:
                run.fail(error)
                status = TrialStatus.FAILED
            log.warning("trial run %s failed while its model was logged: %s", run.run_id, error)
            if then is not None:
                then(None, error, status)
            return
        if then is not None:
            then(model_uri, None, TrialStatus.FINISHED)


class MlflowTracker:
    """Trial records as child runs of ``search`` (standalone runs without one: ``mltune
    train``), on ``device`` (tagged ``label``), their models logged by ``finisher`` in the
    background (at once without one). ``refit_of`` (trial number -> its run id): the records
    are those trials' refits (role ``refit``), which are not ``scored`` (their validation
    rows are among those they trained on: no ``mltune.objective``); ``tags``: more tags on
    every run."""

    def __init__(self, search: SearchRun | None, task: Any, data: Any, device: torch.device,
                 *, label: str | None = None, precision: str | None = None,
                 finisher: Finisher | None = None, run_name: str | None = None,
                 refit_of: Mapping[int, str] | None = None, scored: bool = True,
                 tags: Mapping[str, str] | None = None) -> None:
        self.search, self.task, self.data, self.device = search, task, data, device
        self.label = label or str(device)
        self.precision, self.finisher, self.run_name = precision, finisher, run_name
        self.refit_of, self.scored = dict(refit_of or {}), scored
        self.endings: list[Future[Any]] = []  # records' endings sent in the background
        self.tags = dict(tags or {})

    def open(self, number: int, params: Mapping[str, Any], pack: int | None = None
             ) -> MlflowRecord:
        run = TrialRun.open(self.search, number, params, self.device, run_name=self.run_name,
                            precision=self.precision, pack=pack,
                            refit_of=self.refit_of.get(number),
                            extra_tags={T.DEVICE: self.label, **self.tags})
        return MlflowRecord(run, self)

    def finish(self, job: Callable[[], None]) -> None:
        (self.finisher.submit if self.finisher is not None else inline)(job)

    def later(self, ending: Future[Any]) -> None:
        """A record's ending sent in the background: watched for what stops the search."""
        self.endings = [f for f in self.endings if not f.done() or f.exception() is not None]
        self.endings.append(ending)

    def check(self) -> None:
        for ending in self.endings:
            if ending.done() and ending.exception() is not None:
                error = ending.exception()
                assert error is not None
                if is_outage(error):
                    raise error
                log.warning("a trial's run could not be ended: %s", describe_error(error))
        self.endings = [f for f in self.endings if not f.done()]

    def drain(self) -> None:
        if self.finisher is not None:
            self.finisher.drain()
        sent()
        self.check()


def end_orphans(search: SearchRun, numbers: Sequence[int] | None = None,
                points: Mapping[int, Mapping[str, Any]] | None = None) -> None:
    """Close this search's trial runs still RUNNING (all, or trials ``numbers``') KILLED with
    ``mltune.interrupted``: the records of a lane whose process died (a Ray worker), which
    its own tracker cannot close any more. A resume runs them again. A run that died before
    its params were sent gets them from ``points`` (trial number -> the point it was handed),
    so no KILLED run is left without the point it was training."""
    if numbers is not None and not numbers:
        return
    query = (f"tags.`{T.SEARCH_ID}` = '{search.search_id}' and "
             f"tags.`{T.ROLE}` = 'trial' and attributes.status = 'RUNNING'")
    wanted = None if numbers is None else {str(n) for n in numbers}
    for run in search.client.search_runs([search.experiment_id], filter_string=query):
        number = run.data.tags.get(T.TRIAL)
        if wanted is not None and number not in wanted:
            continue
        point = points.get(int(number)) if points and number else None
        params = [] if run.data.params or not point else [
            Param(k, param_value(v)) for k, v in point.items()]
        search.client.log_batch(run.info.run_id, params=params,
                                tags=[RunTag(T.INTERRUPTED, "true")])
        search.client.set_terminated(run.info.run_id, TrialStatus.KILLED.run_status)


def log_ensemble_run(search: SearchRun, task: Any, data: Any, networks: Sequence[nn.Module],
                     params_of: Sequence[Mapping[str, Any]], weights: Sequence[float], *,
                     tags: Mapping[str, str], params: Mapping[str, Any],
                     metrics: Mapping[str, float]) -> tuple[str, str]:
    """An ensemble's child run of ``search`` (role ``ensemble``, run name ``ensemble``; no
    ``mltune.trial``: resume and the report read trials only), its params and metrics, and its
    model: one pyfunc averaging ``networks`` with ``weights``. Ended here, whatever happens:
    FINISHED, KILLED on an interrupt, FAILED (``mltune.ensemble_error``) on an error, which is
    raised. Its (run id, model URI)."""
    client = search.client
    run_tags = {T.ROLE: ENSEMBLE, T.SEARCH_ID: search.search_id,
                MLFLOW_PARENT_RUN_ID: search.run_id, **tags}
    run_id = client.create_run(search.experiment_id, run_name=ENSEMBLE,
                               tags=resolve_tags(run_tags)).info.run_id
    try:
        shown = {k: param_value(v) for k, v in params.items()}
        client.log_batch(run_id, params=[Param(k, v) for k, v in shown.items()],
                         metrics=[Metric(k, float(v), now_ms(), 0) for k, v in metrics.items()])
        search_name, _ = search.trial_context()
        info = log_ensemble_model(
            run_id, search.experiment_id, task, list(networks), list(params_of),
            list(weights), task.outputs_are_logits(data.meta), data,
            name=logged_model_name(search_name, ENSEMBLE), model_params=shown,
            tags={T.ROLE: ENSEMBLE, T.SEARCH_ID: search.search_id})
        client.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or is_outage(exc):
            best_effort(client.set_terminated, run_id, "KILLED")
        else:
            best_effort(client.set_tag, run_id, T.ENSEMBLE_ERROR, describe_error(exc))
            best_effort(client.set_terminated, run_id, "FAILED")
        raise
    return run_id, info.model_uri
