"""The runs mltune writes: a search's parent run and one run per trial.

MLflow's limits (param length, batching) are known here and nowhere else. These classes record
what they are told; which status a trial ends with is decided by its ``Trial``
(``search.packs.trial``), and its run is written by the tracker (``tracking.tracker``).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import mlflow
import yaml
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from mltune.core._version import __version__
from mltune.core.errors import SearchInterrupted, TrackingLost
from mltune.spec.model import SearchSpec, SpecOrigin
from mltune.tracking import tags as T
from mltune.tracking.background import Batch, sent
from mltune.tracking.datasets import SplitDatasets
from mltune.tracking.remote import best_effort, is_outage, outage_reason

SPEC_FILE = "spec.yaml"  # on the parent run


def param_value(value: Any) -> str:
    """A param as MLflow stores it: plain text, JSON for structures, cut to MLflow's limit."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:T.MAX_PARAM_LENGTH]


def tag_value(value: Any) -> str:
    return str(value)[:T.MAX_TAG_LENGTH]


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


def logged_model_name(*parts: str) -> str:
    """A LoggedModel's name from its parts (``digits-cnn``, ``trial-0007``): MLflow refuses
    ``/ : . % " '`` in one, so those become ``-``."""
    return re.sub(r"[/:.%\"']", "-", "-".join(parts))


def now_ms() -> int:
    return int(time.time() * 1000)


def describe_error(exc: BaseException) -> str:
    """``Type: message``, marked ``out of memory:`` when it is one (CUDA or host)."""
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if "out of memory" in lowered or "can't allocate memory" in lowered:
        return f"out of memory: {text}"
    return text


def mark_experiment(client: MlflowClient, experiment_id: str) -> None:
    """Tag the experiment as custom model development (when it has no kind yet), so the MLflow
    UI opens it on Model training -> Runs rather than the GenAI overview.

    Cosmetic: an experiment this user may not tag is left as it is.
    """
    try:
        if T.EXPERIMENT_KIND not in client.get_experiment(experiment_id).tags:
            client.set_experiment_tag(experiment_id, T.EXPERIMENT_KIND,
                                      T.CUSTOM_MODEL_DEVELOPMENT)
    except MlflowException:
        pass


@dataclass
class SearchRun:
    """The parent run of one search.

    ``name`` (the search's) and ``datasets`` (its splits) are what its trials name their models
    after and log as inputs; a ``SearchRun`` made without them (in a worker process) reads them
    from the parent run once, when a trial first needs them.
    """

    run_id: str
    experiment_id: str
    search_id: str
    client: MlflowClient
    name: str | None = None
    datasets: SplitDatasets | None = None
    _best: Batch | None = field(default=None, repr=False, compare=False)

    def trial_context(self) -> tuple[str, SplitDatasets]:
        """(the search's name, its splits) for a trial's run and model."""
        if self.name is None or self.datasets is None:
            parent = self.client.get_run(self.run_id)
            self.name = parent.info.run_name or self.run_id
            self.datasets = SplitDatasets.from_inputs(parent.inputs.dataset_inputs
                                                      if parent.inputs else [])
        return self.name, self.datasets

    def log_best(self, metric: str, value: float, trial: int) -> None:
        """The best so far after trial ``trial`` (a step of ``best_<metric>``), sent in the
        background with whatever other trials' bests wait (one call for many)."""
        if self._best is None:
            self._best = Batch(lambda metrics, params, tags: self.client.log_batch(
                self.run_id, metrics=metrics))
        self._best.write([Metric(f"best_{metric}", float(value), now_ms(), trial)])

    def log_summary(self, params: Mapping[str, Any], metrics: Mapping[str, float],
                    tags: Mapping[str, Any]) -> None:
        """The search's result. Params MLflow already holds with another value (a resumed
        search that found a new best) go to tags of the same name: params cannot change."""
        logged = self.client.get_run(self.run_id).data.params
        values = {k: param_value(v) for k, v in params.items()}
        changed = {k: v for k, v in values.items() if k in logged and logged[k] != v}
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now_ms(), 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in values.items() if k not in logged],
            tags=[RunTag(k, tag_value(v)) for k, v in {**tags, **changed}.items()],
        )

    def set_tag(self, key: str, value: Any) -> None:
        self.client.set_tag(self.run_id, key, tag_value(value))

    def log_datasets(self, datasets: SplitDatasets) -> None:
        """The search's splits as the run's inputs (a store keeps each input once), and as
        what its trials log."""
        self.datasets = datasets
        if datasets.for_search:
            self.client.log_inputs(self.run_id, datasets=datasets.for_search)

    def end(self, status: str) -> None:
        sent()  # what was queued before is sent
        self.client.set_terminated(self.run_id, status)

    @contextmanager
    def closing(self) -> Iterator[None]:
        """Within: the search; then its run ends as the search did: FINISHED, KILLED when it
        was interrupted (``SearchInterrupted``: resume it), FAILED otherwise, and a lost
        tracking server (``TrackingLost``) says how to go on once it is back."""
        try:
            yield
        except (KeyboardInterrupt, SystemExit) as exc:
            self.end(RunStatus.to_string(RunStatus.KILLED))
            raise SearchInterrupted(self.run_id, str(exc) or "SIGINT") from None
        except BaseException as exc:
            if is_outage(exc):  # finished trials are on the server
                best_effort(self.end, RunStatus.to_string(RunStatus.FAILED))
                raise TrackingLost(self.run_id, outage_reason(exc)) from None
            self.end(RunStatus.to_string(RunStatus.FAILED))
            raise
        self.end(RunStatus.to_string(RunStatus.FINISHED))


def start_search(spec: SearchSpec, data_fingerprint: str,
                 datasets: SplitDatasets | None = None) -> SearchRun:
    """Open (or, under ``mlflow run``, adopt) the search's parent run and record the spec and
    the data's splits (``datasets``); tag its experiment as custom model development.

    ``mlflow run`` passes its run in ``MLFLOW_RUN_ID``; it becomes the parent, and the variable
    is removed so that nothing started later (workers, children) logs into it by mistake.
    """
    client = MlflowClient()
    search_id = uuid.uuid4().hex[:12]
    tags = {T.ROLE: "search", T.SEARCH_ID: search_id, T.TASK: spec.task,
            T.VERSION: __version__, T.DATA_FINGERPRINT: data_fingerprint,
            T.SPEC_HASH: spec.fingerprint()}
    origin = spec.origin.to_json() if spec.origin is not None else ""
    if origin and len(origin) <= T.MAX_TAG_LENGTH:  # longer: the resume hint uses its own
        tags[T.STARTED_WITH] = origin
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
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
    record_spec(client, run_id, spec)
    mark_experiment(client, experiment_id)
    search = SearchRun(run_id, experiment_id, search_id, client, spec.name)
    search.log_datasets(datasets or SplitDatasets({}))
    return search


def started_with(parent_run_id: str) -> SpecOrigin | None:
    """The spec file and overrides a search was started with, as its parent run keeps them
    (None: a search started from Python, by an older mltune, or a store that cannot be read
    now)."""
    try:
        run = MlflowClient().get_run(parent_run_id)
    except Exception:  # noqa: BLE001  (a hint is not worth an error of its own)
        return None
    return SpecOrigin.from_json(run.data.tags.get(T.STARTED_WITH))


def record_spec(client: MlflowClient, run_id: str, spec: SearchSpec) -> None:
    """The spec on the parent run: as ``spec.*`` params and as ``spec.yaml`` (what promotion
    and resume read back)."""
    client.log_batch(run_id, params=[Param(k, v) for k, v in flat_spec(spec).items()])
    client.log_text(run_id, yaml.safe_dump(spec.to_dict(), sort_keys=False), SPEC_FILE)


def log_figures(client: MlflowClient, run_id: str, figures: Mapping[str, Any]) -> None:
    """Log matplotlib figures as image artifacts of ``run_id`` (which may have finished)."""
    for name, figure in figures.items():
        client.log_figure(run_id, figure, name)
