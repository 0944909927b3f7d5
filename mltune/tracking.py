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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import mlflow
import torch
import yaml
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

import mltune
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
    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class SearchRun:
    """The parent run of one search."""

    run_id: str
    experiment_id: str
    search_id: str
    client: MlflowClient

    def log_best(self, metric: str, value: float, trial: int) -> None:
        self.client.log_metric(self.run_id, f"best_{metric}", value, step=trial)

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
    """One trial's run: params at the start, one batched call per epoch, the model at the end."""

    def __init__(self, run_id: str, client: MlflowClient) -> None:
        self.run_id = run_id
        self.client = client
        self.model_uri: str | None = None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        stamp = _now_ms()
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, float(v), stamp, epoch) for k, v in metrics.items()]
        )

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
        """Log the trained network as a pyfunc model named ``model``; return its URI."""
        with tempfile.TemporaryDirectory() as tmp, quiet_model_io():
            weights = os.path.join(tmp, "weights.pt")
            torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, weights)
            artifacts = {WEIGHTS: weights, **save_task_artifacts(data.artifacts, tmp)}
            info = mlflow.pyfunc.log_model(
                name="model",
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


@contextmanager
def trial_run(
    search: SearchRun | None,
    number: int,
    params: Mapping[str, Any],
    device: torch.device,
    run_name: str | None = None,
    vals: Mapping[str, Any] | None = None,
) -> Iterator[TrialRun]:
    """A child run of ``search`` (or a standalone run without one), closed with its status.

    Opened with ``parent_run_id`` rather than fluent nesting, so it works the same from a
    thread or a worker process. An exception marks the run FAILED with ``mltune.error`` and is
    re-raised; an interrupt marks it KILLED, and so does a pruning rule (with ``mltune.pruned``).
    ``vals`` (hyperopt's raw point) is kept as a tag so a resumed search can rebuild its history.
    """
    from mltune.pruning import TrialPruned

    tags = {ROLE: "trial" if search else "train", TRIAL: str(number), DEVICE: str(device)}
    if search is not None:
        tags[SEARCH_ID] = search.search_id
    if vals is not None:
        tags[VALS] = json.dumps(vals)
    run = mlflow.start_run(
        run_name=run_name or f"trial-{number:04d}",
        parent_run_id=search.run_id if search else None,
        experiment_id=search.experiment_id if search else None,
        tags=tags,
    )
    client = MlflowClient()
    client.log_batch(run.info.run_id,
                     params=[Param(k, param_value(v)) for k, v in params.items()])
    try:
        yield TrialRun(run.info.run_id, client)
    except TrialPruned as pruned:
        client.log_batch(run.info.run_id, tags=[
            RunTag(PRUNED, "true"), RunTag(OBJECTIVE, repr(float(pruned.best))),
            RunTag(EPOCHS_RUN, str(pruned.epoch)), RunTag(ERROR, str(pruned))])
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except (KeyboardInterrupt, SystemExit):
        client.set_tag(run.info.run_id, INTERRUPTED, "true")
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as exc:
        if is_outage(exc):  # the server is gone: a resume re-runs this trial; don't wait again
            best_effort(client.set_tag, run.info.run_id, INTERRUPTED, "true")
            best_effort(mlflow.end_run, RunStatus.to_string(RunStatus.KILLED))
            raise
        client.set_tag(run.info.run_id, ERROR, describe_error(exc)[:MAX_TAG_LENGTH])
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))
