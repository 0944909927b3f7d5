"""One trial's run (and a refit's, a ``mltune train``'s): params at the start, one batched call
per epoch sent in the background, the model at the end, closed once.

Created with the client and an explicit parent id rather than fluent nesting, so it works the
same from a thread or a worker process and can be finished by a background job. What status a
run ends with is decided by its trial (``mltune.search.packs.trial``); the tracker
(``tracking.tracker``) is the one place that calls these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import mlflow
import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mltune.core.terms import TrialStatus
from mltune.tracking import tags as T
from mltune.tracking.background import Batch, send_later
from mltune.tracking.context import context_tags
from mltune.tracking.datasets import SplitDatasets
from mltune.tracking.model import log_ensemble_model, log_model
from mltune.tracking.runs import (
    SearchRun,
    logged_model_name,
    mark_experiment,
    now_ms,
    param_value,
    tag_value,
)
from mltune.tracking.system import start_monitor


class TrialRun:
    """One trial's run: params at the start, one batched call per epoch, the model at the end.

    Created with the client and an explicit parent id rather than fluent nesting, so it works
    the same from a thread or a worker process and can be finished by a background job. Every
    call to the store is made in the background (``send_later``: one thread, in order): the
    run's creation with its inputs, its params, its epochs, its ending (``end_later``); a slow
    tracking server never holds up training, and ``run_id`` waits for the run only when read.
    What a run writes waits in one ``Batch`` until a send takes it: while the store is busy, a
    trial's params, epochs and ending pile up and go in one call, not one each.
    """

    def __init__(self, experiment_id: str, client: MlflowClient, model_name: str = "model",
                 datasets: SplitDatasets | None = None,
                 model_tags: Mapping[str, str] | None = None) -> None:
        self._created: Future[str] | None = None  # the run's creation (``open``)
        self.scored = True  # its val_* metrics score the validation split (a refit's do not)
        self.experiment_id = experiment_id
        self.client = client
        self.model_uri: str | None = None
        self.model_name = model_name
        self.datasets = datasets or SplitDatasets({})
        self.model_tags = dict(model_tags or {})
        self.ended = False
        self._monitor: Any = None
        self._pending: list[Future[Any]] = []
        self._batch = Batch(lambda metrics, params, tags: self.client.log_batch(
            self.run_id, metrics=metrics, params=params, tags=tags))
        self._epochs: dict[int, tuple[int, dict[str, float]]] = {}  # epoch -> (stamp, metrics)
        self._best_epoch: int | None = None
        self._outcome: dict[str, str] = {}  # tags sent with the model, or at the run's end
        self._changed: set[str] = set()  # hp/<name> metrics logged (population-based training)

    @classmethod
    def open(cls, search: SearchRun | None, number: int, params: Mapping[str, Any],
             device: torch.device, run_name: str | None = None, precision: str | None = None,
             pack: int | None = None, refit_of: str | None = None,
             extra_tags: Mapping[str, str] | None = None) -> TrialRun:
        """A child run of ``search`` (or a standalone run without one), created in the
        background with its params and the search's training and validation splits as its
        inputs. The params are the trial's decoded point: what a resumed search rebuilds its
        sampler from.

        ``refit_of`` (a trial's run id): the run is that trial's refit, not a trial: role
        ``refit``, no trial number (resume and the report read role ``trial`` only), and both
        splits as its training inputs. ``extra_tags``: more tags on the run."""
        client = search.client if search is not None else MlflowClient()
        if refit_of is None:
            tags = {T.ROLE: "trial" if search else "train", T.TRIAL: str(number)}
            model_tags = {T.TRIAL: str(number)}
        else:
            tags = {T.ROLE: "refit", T.REFIT_OF: refit_of}
            model_tags = {T.ROLE: "refit", T.REFIT_OF: refit_of}
        tags.update({T.DEVICE: str(device), **(extra_tags or {})})
        name = run_name or f"trial-{number:04d}"
        datasets = None
        if search is not None:
            tags[T.SEARCH_ID] = model_tags[T.SEARCH_ID] = search.search_id
            tags[MLFLOW_PARENT_RUN_ID] = search.run_id
            search_name, datasets = search.trial_context()
            called = logged_model_name(search_name, name)
            experiment_id = search.experiment_id
        else:
            called = logged_model_name(name)
            experiment_id = mlflow.tracking.fluent._get_experiment_id()
            mark_experiment(client, experiment_id)
        if precision is not None:
            tags[T.PRECISION] = precision
        if pack is not None:
            tags[T.PACK] = str(pack)
        run = cls(experiment_id, client, called, datasets, model_tags)
        run.scored = refit_of is None
        inputs = run.datasets.for_trial if refit_of is None else run.datasets.for_refit
        logged = [Param(k, param_value(v)) for k, v in params.items()]

        def create() -> str:
            run_id = client.create_run(experiment_id, run_name=name,
                                       tags={**context_tags(), **tags}).info.run_id
            if inputs:
                client.log_inputs(run_id, datasets=inputs)
            run._monitor = start_monitor(run_id, device)
            return run_id

        run._created = send_later(create)
        run._pending.append(run._created)
        run._write(params=logged)
        return run

    @property
    def run_id(self) -> str:
        """The run's id: waits for its creation (long done, but for a slow server)."""
        assert self._created is not None, "a run is made by TrialRun.open"
        return self._created.result()

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        stamp = now_ms()
        self._epochs[epoch] = (stamp, dict(metrics))  # the logged model's are one epoch's
        self._write(metrics=[Metric(k, float(v), stamp, epoch) for k, v in metrics.items()])

    def log_exploit(self, epoch: int, source: int, before: Mapping[str, Any],
                    values: Mapping[str, Any]) -> None:
        """Population-based training: from ``epoch`` on this trial continues from trial
        ``source``'s weights with ``values``. Its params stay its starting values (MLflow
        params cannot change); each changed value is a metric ``hp/<name>`` (step = epoch;
        the first change also logs the value it had at step 0), and tags name the trial it
        copied from and when (the latest copy)."""
        stamp = now_ms()
        metrics = [Metric(f"hp/{k}", float(v), stamp, epoch) for k, v in values.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        metrics += [Metric(m.key, float(before[m.key[3:]]), stamp, 0) for m in metrics
                    if m.key not in self._changed and isinstance(before.get(m.key[3:]),
                                                                  int | float)]
        self._changed.update(m.key for m in metrics)
        self._write(metrics=metrics,
                    tags=[RunTag(T.PBT_PARENT, str(source)), RunTag(T.PBT_EPOCH, str(epoch))])

    def _write(self, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
               tags: Sequence[RunTag] = ()) -> None:
        sending = self._batch.write(metrics, params, tags)
        if sending is not None:
            self._pending.append(sending)

    def flush(self) -> None:
        """Wait until every metric sent so far is stored (raises what the server answered)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def stop_monitor(self) -> None:
        """Training is over: stop sampling system metrics."""
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.finish()

    def log_artifacts(self, files: Mapping[str, Any]) -> None:
        """Small files by name: dict/list -> JSON, str -> text, a matplotlib Figure -> image."""
        for name, content in files.items():
            if isinstance(content, (dict, list)):
                self.client.log_dict(self.run_id, content, name)
            elif isinstance(content, str):
                self.client.log_text(self.run_id, content, name)
            else:
                self.client.log_figure(self.run_id, content, name)

    def log_model(self, task: Any, network: torch.nn.Module | Sequence[torch.nn.Module],
                  params: Mapping[str, Any], data: Any) -> str:
        """The trained network as the run's pyfunc LoggedModel, named after the search and the
        trial, with its params and its metrics linked (``_model_metrics``); its URI is also a
        tag. ``log_outcome`` comes first: it says which epoch's weights these are. Several
        networks (a cross-validated trial's, one per fold) are served as their average."""
        shown = {k: param_value(v) for k, v in params.items()}
        step = self._logged_epoch() or 0
        if isinstance(network, torch.nn.Module):
            info = log_model(self.run_id, self.experiment_id, task, network, params, data,
                             name=self.model_name, step=step, model_params=shown,
                             tags=self.model_tags)
        else:
            info = log_ensemble_model(
                self.run_id, self.experiment_id, task, network, [params] * len(network),
                [1 / len(network)] * len(network), task.outputs_are_logits(data.meta), data,
                name=self.model_name, step=step, model_params=shown, tags=self.model_tags)
        self.model_uri = info.model_uri
        tags = {**self._outcome, T.MODEL_URI: self.model_uri}
        self.client.log_batch(self.run_id, metrics=self._model_metrics(info.model_id),
                              tags=[RunTag(k, v) for k, v in tags.items()])
        self._outcome = {}
        return self.model_uri

    def _model_metrics(self, model_id: str) -> list[Metric]:
        """The metrics of the epoch whose weights were logged, linked to the model and to the
        split each was measured on (``val_*``: validation, ``train_*``: training). A refit's
        trained on the validation rows too: linked to the model only, so a query for the
        validation split's scores never returns a refit's optimistic one.

        The run holds them already, with the same key, value, step and timestamp (the store
        keeps such a point once); what is new is the link the Models page ranks by.
        """
        epoch = self._logged_epoch()
        if epoch is None:
            return []
        stamp, metrics = self._epochs[epoch]
        linked = []
        for key, value in metrics.items():
            name, digest = (self.datasets.linked(key) if self.scored else None) or (None, None)
            linked.append(Metric(key, float(value), stamp, epoch, model_id=model_id,
                                 dataset_name=name, dataset_digest=digest, run_id=self.run_id))
        return linked

    def _logged_epoch(self) -> int | None:
        """The epoch whose weights the model holds (the best, else the last); None before any."""
        if not self._epochs:
            return None
        return self._best_epoch if self._best_epoch in self._epochs else max(self._epochs)

    def log_outcome(self, value: float | None, epochs_run: int, best_epoch: int) -> None:
        """The value the search scored the trial by, and which epoch's weights were logged.

        Sent with the model's URI and linked metrics (``log_model``), or with the run's end
        when the model is not logged: one call fewer per trial.
        """
        self._best_epoch = best_epoch
        self._outcome = {T.EPOCHS_RUN: str(epochs_run), T.BEST_EPOCH: str(best_epoch)}
        if value is not None:
            self._outcome[T.OBJECTIVE] = repr(float(value))

    def end(self, status: TrialStatus, tags: Mapping[str, str] | None = None) -> None:
        """Close the run with ``status`` after its metrics are stored (once: later calls are
        no-ops). A pruned trial's run is KILLED with ``mltune.pruned``."""
        if self.ended:
            return
        self.ended = True
        self._close(status, self._closing_tags(status, tags))

    def end_later(self, status: TrialStatus, tags: Mapping[str, str] | None = None
                  ) -> Future[None]:
        """``end`` in the background, after everything this run sent before (its closing tags
        join what waits to be sent: with the last epoch's metrics, often one call); the
        future raises what the server answered."""
        self.ended = True
        self._batch.write(tags=self._closing_tags(status, tags), queue=False)
        return send_later(self._close, status, [])

    def _closing_tags(self, status: TrialStatus, tags: Mapping[str, str] | None
                      ) -> list[RunTag]:
        closing = {**self._outcome, **(tags or {})}
        self._outcome = {}
        if status is TrialStatus.PRUNED:
            closing[T.PRUNED] = "true"
        return [RunTag(k, tag_value(v)) for k, v in closing.items()]

    def _close(self, status: TrialStatus, tags: Sequence[RunTag]) -> None:
        """Everything sent, then the status. In the sender's own thread (``end_later``) what
        it queued before has run: nothing here waits on a send queued after it."""
        self.stop_monitor()
        self._batch.write(tags=tags, queue=False)
        try:
            self.flush()
        finally:
            self._batch.send_now()
            self.client.set_terminated(self.run_id, status.run_status)

    def fail(self, error: str, tags: Mapping[str, str] | None = None) -> None:
        """FAILED with ``mltune.error``; the metrics already sent are kept when they can be."""
        if self.ended:
            return
        try:
            self.flush()
        except Exception:  # the error being recorded matters more than a lost metric
            pass
        self.end(TrialStatus.FAILED, {**(tags or {}), T.ERROR: error})

