"""Everything that talks to MLflow about runs: the search's parent run, trial runs, metrics,
models. MLflow's limits (param length, batching) are known here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import mlflow
import torch
import yaml
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

import mltune
from mltune.environ import temporarily
from mltune.pyfunc import WEIGHTS, ServedModel, save_task_artifacts
from mltune.remote import best_effort, is_outage
from mltune.spec import SearchSpec

MAX_PARAM_LENGTH = 6000  # MLflow refuses longer param values
MAX_TAG_LENGTH = 5000
ROLE, SEARCH_ID, TRIAL, TASK, DEVICE = (
    "mltune.role", "mltune.search_id", "mltune.trial", "mltune.task", "mltune.device")
ERROR, MODEL_URI = "mltune.error", "mltune.model_uri"
VALS, OBJECTIVE, PRUNED = "mltune.hyperopt_vals", "mltune.objective", "mltune.pruned"
EPOCHS_RUN, BEST_EPOCH, INTERRUPTED = "mltune.epochs_run", "mltune.best_epoch", "mltune.interrupted"
REPORT, REPORT_ERROR = "mltune.report", "mltune.report_error"  # on the parent run
PRECISION = "mltune.precision"
PACKAGE_DIR = str(Path(mltune.__file__).parent)


def param_value(value: Any) -> str:
    """A param as MLflow stores it: plain text, JSON for structures, cut to MLflow's limit."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_LENGTH]


def flat_spec(spec: SearchSpec) -> dict[str, str]:
    """The spec as dotted params under ``spec.`` (``spec.data.source``...).

    The prefix keeps them apart from the params ``mlflow run`` logs for its entry point.
    """
    values = spec.to_dict()
    flat = {f"spec.space.{k}": param_value(v) for k, v in values.pop("space").items()}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, child in value.items():
                walk(f"{prefix}.{key}", child)
        elif value is not None:
            flat[prefix] = param_value(value)

    walk("spec", values)
    return flat


@cache
def pip_requirements() -> tuple[str, ...]:
    """Pinned requirements of the served model (never inferred: that costs seconds a trial)."""
    from importlib.metadata import version

    names = ("mlflow", "torch", "numpy", "pandas", "scikit-learn", "cloudpickle", "pyyaml")
    return tuple(f"{name}=={version(name).split('+')[0]}" for name in names)


@contextmanager
def quiet_model_io() -> Iterator[None]:
    """Silence what MLflow says on every model logged or loaded that is no news to a user.

    (cloudpickle advice, type-hint advice, an artifact progress bar per model)
    """
    logger = logging.getLogger("mlflow.pyfunc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with temporarily({"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def _now_ms() -> int:
    return int(time.time() * 1000)


@cache
def _sender() -> ThreadPoolExecutor:
    """One thread that sends metrics in the order they were logged, while training goes on.

    mltune's own rather than MLflow's async logging: MLflow's queue is shared by every run of
    the store and torn down by any ``set_terminated``, which races with a search that ends one
    trial's run in the background while the next trial logs.
    """
    return ThreadPoolExecutor(1, thread_name_prefix="mltune-metrics")


def send_later(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
    """Queue a tracking call; its future raises what the server answered."""
    return _sender().submit(call, *args, **kwargs)


@dataclass
class SearchRun:
    """The parent run of one search."""

    run_id: str
    experiment_id: str
    search_id: str
    client: MlflowClient

    def log_best(self, metric: str, value: float, trial: int) -> None:
        send_later(self.client.log_metric, self.run_id, f"best_{metric}", value, step=trial)

    def log_summary(self, params: Mapping[str, Any], metrics: Mapping[str, float],
                    tags: Mapping[str, Any]) -> None:
        """The search's result. Params MLflow already holds with another value (a resumed
        search that found a new best) go to tags of the same name: params cannot change."""
        logged = self.client.get_run(self.run_id).data.params
        values = {k: param_value(v) for k, v in params.items()}
        changed = {k: v for k, v in values.items() if k in logged and logged[k] != v}
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), _now_ms(), 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in values.items() if k not in logged],
            tags=[RunTag(k, str(v)[:MAX_TAG_LENGTH]) for k, v in {**tags, **changed}.items()],
        )

    def end(self, status: str) -> None:
        send_later(lambda: None).result()  # what was queued before is sent
        self.client.set_terminated(self.run_id, status)


def start_search(spec: SearchSpec, data_fingerprint: str) -> SearchRun:
    """Open (or, under ``mlflow run``, adopt) the search's parent run and record the spec.

    ``mlflow run`` passes its run in ``MLFLOW_RUN_ID``; it becomes the parent, and the variable
    is removed so that nothing started later (workers, children) logs into it by mistake.
    """
    client = MlflowClient()
    search_id = uuid.uuid4().hex[:12]
    tags = {ROLE: "search", SEARCH_ID: search_id, TASK: spec.task,
            "mltune.version": mltune.__version__, "mltune.data_fingerprint": data_fingerprint,
            "mltune.spec_hash": spec.fingerprint()}
    existing = os.environ.pop("MLFLOW_RUN_ID", None)
    if existing:
        run = client.get_run(existing)
        experiment_id = run.info.experiment_id
        run_id = existing
        tags["mlflow.runName"] = spec.name
    else:
        experiment_id = mlflow.tracking.fluent._get_experiment_id()
        run = client.create_run(experiment_id, run_name=spec.name, tags=resolve_tags(tags))
        run_id = run.info.run_id
    client.log_batch(
        run_id,
        params=[Param(k, v) for k, v in flat_spec(spec).items()],
        tags=[RunTag(k, str(v)) for k, v in tags.items()],
    )
    client.log_text(run_id, yaml.safe_dump(spec.to_dict(), sort_keys=False), "spec.yaml")
    return SearchRun(run_id, experiment_id, search_id, client)


class TrialRun:
    """One trial's run: params at the start, one batched call per epoch, the model at the end.

    Epoch metrics are sent in the background (``send_later``), so a slow tracking server
    never holds up training; they are flushed before the run ends.
    """

    def __init__(self, run_id: str, client: MlflowClient) -> None:
        self.run_id = run_id
        self.client = client
        self.model_uri: str | None = None
        self.deferred = False  # the run is ended by a background job, not by ``trial_run``
        self.ended = False
        self._pending: list[Future[Any]] = []

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        stamp = _now_ms()
        self._pending.append(send_later(
            self.client.log_batch, self.run_id,
            metrics=[Metric(k, float(v), stamp, epoch) for k, v in metrics.items()]))

    def flush(self) -> None:
        """Wait until every metric sent so far is stored (raises what the server answered)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def log_artifacts(self, files: Mapping[str, Any]) -> None:
        """Small files by name: dict/list -> JSON, str -> text, a matplotlib Figure -> image."""
        for name, content in files.items():
            if isinstance(content, (dict, list)):
                self.client.log_dict(self.run_id, content, name)
            elif isinstance(content, str):
                self.client.log_text(self.run_id, content, name)
            else:
                self.client.log_figure(self.run_id, content, name)

    def log_model(self, task: Any, network: torch.nn.Module, params: Mapping[str, Any],
                  data: Any) -> str:
        """Log the trained network as a pyfunc model named ``model``; return its URI.

        ``Model.log`` with the run id rather than the fluent ``log_model``: it works from any
        thread (a background job logs it), with no active fluent run.
        """
        with tempfile.TemporaryDirectory() as tmp, quiet_model_io():
            weights = os.path.join(tmp, "weights.pt")
            torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, weights)
            artifacts = {WEIGHTS: weights, **save_task_artifacts(data.artifacts, tmp)}
            info = Model.log(
                artifact_path=None,  # required positionally; ``name`` is MLflow 3's way
                name="model",
                flavor=mlflow.pyfunc,
                run_id=self.run_id,
                python_model=ServedModel(task.name, params, data.meta),
                artifacts=artifacts,
                code_paths=[PACKAGE_DIR],
                signature=task.signature(data),
                input_example=task.input_example(data),
                pip_requirements=list(pip_requirements()),
            )
        self.model_uri = info.model_uri
        self.client.set_tag(self.run_id, MODEL_URI, info.model_uri)
        return info.model_uri

    def log_outcome(self, value: float | None, epochs_run: int, best_epoch: int) -> None:
        """The value the search scored the trial by, and which epoch's weights were logged."""
        tags = {EPOCHS_RUN: str(epochs_run), BEST_EPOCH: str(best_epoch)}
        if value is not None:
            tags[OBJECTIVE] = repr(float(value))
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def end(self, status: RunStatus | int, tags: Mapping[str, str] | None = None) -> None:
        """Close the run with ``status`` after its metrics are stored (once: later calls are
        no-ops, so a run a background job closed is not closed again)."""
        if self.ended:
            return
        self.ended = True
        try:
            self.flush()
        finally:
            if tags:
                self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            self.client.set_terminated(self.run_id, RunStatus.to_string(status))

    def fail(self, exc: BaseException) -> None:
        """FAILED with ``mltune.error``; the metrics already sent are kept when they can be."""
        if self.ended:
            return
        try:
            self.flush()
        except Exception:  # the error being recorded matters more than a lost metric
            pass
        self.end(RunStatus.FAILED, {ERROR: describe_error(exc)[:MAX_TAG_LENGTH]})


class Finisher:
    """Logs finished trials' models in one background thread, overlapping the next trial.

    A model is dozens of files; against a tracking server that is dozens of HTTP calls
    (1-2 s a trial on 127.0.0.1). Jobs run in order, one at a time; ``drain`` waits for them
    (the search does before it picks the best trial).
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mltune-finish")
        self._pending: list[Future[None]] = []

    def submit(self, job: Callable[[], None]) -> None:
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(job))

    def drain(self) -> None:
        """Wait for every job submitted so far (a job records its own failure)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        self.drain()
        self._pool.shutdown()


def describe_error(exc: BaseException) -> str:
    """``Type: message``, marked ``out of memory:`` when it is one (CUDA or host)."""
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if "out of memory" in lowered or "can't allocate memory" in lowered:
        return f"out of memory: {text}"
    return text


def load_network(model_uri: str) -> torch.nn.Module:
    """The network of a logged mltune model, rebuilt on the CPU in eval mode."""
    with quiet_model_io():
        model = mlflow.pyfunc.load_model(model_uri)
    return model.unwrap_python_model().network


def log_figures(client: MlflowClient, run_id: str, figures: Mapping[str, Any]) -> None:
    """Log matplotlib figures as image artifacts of ``run_id`` (which may have finished)."""
    for name, figure in figures.items():
        client.log_figure(run_id, figure, name)


def gpu_metrics_available() -> bool:
    """MLflow's system metrics read GPUs through NVML (nvidia-ml-py) and the host via psutil."""
    from importlib.util import find_spec

    return find_spec("pynvml") is not None and find_spec("psutil") is not None


GPU_METRICS_NOTICE = ("GPU utilisation and memory are not logged per trial: "
                      "pip install nvidia-ml-py psutil")


def _system_metrics(run_id: str, device: torch.device) -> Any:
    """MLflow's system metrics monitor (GPU utilisation, memory...) for a trial on CUDA, sampled
    every second while it trains; None on the CPU or without NVML."""
    if device.type != "cuda" or not gpu_metrics_available():
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=1.0)
    monitor.start()
    return monitor


@contextmanager
def trial_run(
    search: SearchRun | None,
    number: int,
    params: Mapping[str, Any],
    device: torch.device,
    run_name: str | None = None,
    vals: Mapping[str, Any] | None = None,
    precision: str | None = None,
) -> Iterator[TrialRun]:
    """A child run of ``search`` (or a standalone run without one), closed with its status.

    Created with the client and an explicit parent id rather than fluent nesting, so it works
    the same from a thread or a worker process and can be finished by a background job (the
    run stays open when the body sets ``run.deferred``). An exception marks the run FAILED
    with ``mltune.error`` and is re-raised; an interrupt marks it KILLED, and so does a pruning
    rule (with ``mltune.pruned``). ``vals`` (hyperopt's raw point) is kept as a tag so a
    resumed search can rebuild its history.
    """
    from mltune.pruning import TrialPruned

    client = MlflowClient()
    tags = {ROLE: "trial" if search else "train", TRIAL: str(number), DEVICE: str(device)}
    if search is not None:
        tags[SEARCH_ID] = search.search_id
        tags[MLFLOW_PARENT_RUN_ID] = search.run_id
    if vals is not None:
        tags[VALS] = json.dumps(vals)
    if precision is not None:
        tags[PRECISION] = precision
    experiment_id = (search.experiment_id if search
                     else mlflow.tracking.fluent._get_experiment_id())
    info = client.create_run(experiment_id, run_name=run_name or f"trial-{number:04d}",
                             tags=resolve_tags(tags)).info
    client.log_batch(info.run_id, params=[Param(k, param_value(v)) for k, v in params.items()])
    run = TrialRun(info.run_id, client)
    monitor = _system_metrics(info.run_id, device)
    try:
        try:
            yield run
        finally:
            if monitor is not None:
                monitor.finish()
    except TrialPruned as pruned:
        run.end(RunStatus.KILLED, {PRUNED: "true", OBJECTIVE: repr(float(pruned.best)),
                                   EPOCHS_RUN: str(pruned.epoch), ERROR: str(pruned)})
        raise
    except (KeyboardInterrupt, SystemExit):
        run.end(RunStatus.KILLED, {INTERRUPTED: "true"})
        raise
    except BaseException as exc:
        if is_outage(exc):  # the server is gone: a resume re-runs this trial; don't wait again
            best_effort(run.end, RunStatus.KILLED, {INTERRUPTED: "true"})
            raise
        run.fail(exc)
        raise
    else:
        if not run.deferred:
            run.end(RunStatus.FINISHED)
