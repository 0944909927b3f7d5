"""The served model: raw user input -> the task's preprocessing -> network -> user-facing output.

The logged model carries the weights (a state dict, loaded with ``weights_only=True``), the
decoded params, the task's metadata (class labels, input shape...), the task's extra
artifacts (a fitted scikit-learn transformer...), one joblib file each, and what builds the
network: a family's name, or the user's callable pickled by value (its source files travel too,
among the model's ``code_paths``, beside mltune's own code, zipped: ``packaged_code``).
Rebuilding the network goes through the task, so every task is served by this one class; a
model logged before ``model:`` existed has no builder and is rebuilt by its task's own family.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import mlflow.pyfunc
import pandas as pd
import torch
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from mltune.core.environ import temporarily
from mltune.core.errors import DataError, MltuneError
from mltune.models.ensemble import Averaged
from mltune.models.network import write_code

WEIGHTS = "weights"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # mltune/: travels with every model
TASK_ARTIFACT = "task."  # prefix of a task's own artifacts among the model's artifacts


def save_task_artifacts(objects: Mapping[str, Any], folder: str) -> dict[str, str]:
    """Write a task's extra objects with joblib; return MLflow artifact names -> paths.

    joblib (pickle) is what scikit-learn documents for its estimators; it adds no trust
    boundary here, since the pyfunc model itself is a cloudpickle.
    """
    paths = {}
    for name, value in objects.items():
        path = os.path.join(folder, f"{name}.joblib")
        joblib.dump(value, path)
        paths[f"{TASK_ARTIFACT}{name}"] = path
    return paths


def load_task_artifacts(artifacts: Mapping[str, str]) -> dict[str, Any]:
    """The task's objects back from the model's artifacts, under their own names."""
    return {name[len(TASK_ARTIFACT):]: joblib.load(path) for name, path in artifacts.items()
            if name.startswith(TASK_ARTIFACT)}


class BadInput(DataError, MlflowException):
    """Input a served model cannot use: a DataError in Python, and for ``mlflow models serve``
    an MlflowException, so the HTTP answer is a 400 that carries the one clear line."""

    def __init__(self, message: str) -> None:
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


class ServedModel(mlflow.pyfunc.PythonModel):
    """An mltune network as an MLflow pyfunc model."""

    def __init__(self, task: str, params: Mapping[str, Any], meta: Mapping[str, Any],
                 builder: Any = None) -> None:
        self.task = task
        self.params = dict(params)
        self.meta = dict(meta)
        self.builder = builder  # a family's name or the user's callable; None: the task's own
        self._network: torch.nn.Module | None = None
        self._artifact_names: list[str] = []

    def load_context(self, context: Any) -> None:
        """Rebuild the network from params and meta; add the task's artifacts to ``meta``."""
        from mltune.tasks import get_task

        task = get_task(self.task).for_model(getattr(self, "builder", None))  # old: none
        network = task.build_model(self.params, self.meta)
        state = torch.load(context.artifacts[WEIGHTS], map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        self._network = network.eval()
        extras = load_task_artifacts(context.artifacts)
        self.meta = {**self.meta, **extras}
        self._artifact_names = list(extras)

    @property
    def network(self) -> torch.nn.Module:
        """The loaded network (eval mode), for code that needs more than ``predict``."""
        if self._network is None:
            raise RuntimeError("the model was not loaded through mlflow.pyfunc.load_model")
        return self._network

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Raw input -> labelled output. Arrays and lists are taken too: MLflow treats a
        DataFrame hint as "no schema from hints", which is what a multi-form input needs."""
        from mltune.tasks import get_task

        try:
            return get_task(self.task).predict(self.network, self.meta, model_input)
        except MltuneError as exc:
            raise BadInput(str(exc)) from None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_network"] = None  # weights travel as an artifact, never pickled
        names = set(state.get("_artifact_names", ()))  # so do the task's artifacts
        state["meta"] = {k: v for k, v in self.meta.items() if k not in names}
        state["_artifact_names"] = []
        return state


class EnsembleModel(ServedModel):
    """Several networks of one search as one pyfunc model: each member rebuilt from its params
    (weights ``weights.<i>``), their outputs averaged with ``weights`` (``Averaged``), then
    read and decoded by the task exactly as a single network's (``ServedModel.predict``): the
    same output columns, the same input checks and refusals. ``params``: the first member's
    (what the gate's ``val_loss`` is measured with)."""

    def __init__(self, task: str, members: Sequence[Mapping[str, Any]], weights: Sequence[float],
                 probabilities: bool, meta: Mapping[str, Any], builder: Any = None) -> None:
        super().__init__(task, members[0], meta, builder)
        self.members = [dict(p) for p in members]
        self.weights = [float(w) for w in weights]
        self.probabilities = probabilities

    def load_context(self, context: Any) -> None:
        from mltune.tasks import get_task

        task = get_task(self.task).for_model(self.builder)
        networks = []
        for i, params in enumerate(self.members):
            network = task.build_model(params, self.meta)
            state = torch.load(context.artifacts[f"{WEIGHTS}.{i}"], map_location="cpu",
                               weights_only=True)
            network.load_state_dict(state)
            networks.append(network)
        self._network = Averaged(networks, self.weights, self.probabilities).eval()
        extras = load_task_artifacts(context.artifacts)
        self.meta = {**self.meta, **extras}
        self._artifact_names = list(extras)


# The ``mltune/__init__.py`` a logged model carries: it runs the package's own ``__init__``
# from the archive beside it, whose folder is then where submodules are found.
_LOADER = '''"""mltune as it travels with a logged model: the package is in mltune.zip beside this
folder (one file to copy and upload per model, not a hundred)."""
import os as _os
import zipimport as _zipimport

_archive = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))),
                         "mltune.zip")
__path__ = [_os.path.join(_archive, "mltune")]
__file__ = _os.path.join(_archive, "mltune", "__init__.py")
exec(_zipimport.zipimporter(_archive).get_code("mltune"), globals())
'''


@cache
def packaged_code() -> tuple[str, str]:
    """mltune's code for the models' ``code_paths``: ``mltune/`` holding only a loader, and
    ``mltune.zip`` holding the package (sources only, no ``__pycache__``). Made once per
    process.

    Copied as files, the package is a hundred files per model: a hundred copies on a local
    store, a hundred HTTP uploads to a tracking server, and as many downloads whenever the
    promotion gate loads a model. MLflow puts the model's ``code/`` folder on ``sys.path``,
    where the loader is found as ``mltune``; Python imports from the archive itself.
    """
    folder = Path(tempfile.mkdtemp(prefix="mltune-code-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    loader = folder / "mltune"
    loader.mkdir()
    (loader / "__init__.py").write_text(_LOADER)
    archive = folder / "mltune.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(PACKAGE_DIR.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, Path("mltune") / path.relative_to(PACKAGE_DIR))
    return str(loader), str(archive)


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


def log_model(run_id: str, experiment_id: str, task: Any, network: torch.nn.Module,
              params: Mapping[str, Any], data: Any, name: str = "model", step: int = 0,
              model_params: Mapping[str, str] | None = None,
              tags: Mapping[str, str] | None = None) -> ModelInfo:
    """Log a trained network of ``task`` as a pyfunc LoggedModel of run ``run_id``.

    ``name``: the model's name on the Models page (a trial's: ``<search>-trial-0007``);
    ``step``: the epoch whose weights these are (the run's output at that step);
    ``model_params``: its params as text (a trial's run holds the same); ``tags``: the model's.

    The steps of ``Model.log`` that a trial needs, taken with the client and the run id, so it
    works from any thread (a background job logs it) with no active fluent run: create the
    model, save it into a folder, upload it, link it to the run, mark it READY. What it leaves
    out is a third of the cost of logging a model on a local store: reading the run back for its
    params (the trial's are ``model_params``), reading every metric's history to link the
    step-0 points (mltune's epochs start at 1 and link the kept epoch's metrics themselves),
    and loading the model back to run its input example (the tests serve each task's).
    """
    chosen = task.network  # None: the task's own family, rebuilt as models before ``model:``
    served = ServedModel(task.name, params, data.meta, chosen.builder if chosen else None)
    return _log_pyfunc(run_id, experiment_id, task, served, {WEIGHTS: network}, data, name,
                       step, model_params, tags)


def log_ensemble_model(run_id: str, experiment_id: str, task: Any,
                       networks: Sequence[torch.nn.Module], params: Sequence[Mapping[str, Any]],
                       weights: Sequence[float], probabilities: bool, data: Any,
                       name: str = "model", model_params: Mapping[str, str] | None = None,
                       tags: Mapping[str, str] | None = None, step: int = 0) -> ModelInfo:
    """Log an ensemble of ``task``'s trained ``networks`` (with their ``params``, averaged
    with ``weights``) as one pyfunc LoggedModel of run ``run_id`` (``EnsembleModel``); the
    rest as ``log_model``."""
    chosen = task.network
    served = EnsembleModel(task.name, params, weights, probabilities, data.meta,
                           chosen.builder if chosen else None)
    files = {f"{WEIGHTS}.{i}": network for i, network in enumerate(networks)}
    return _log_pyfunc(run_id, experiment_id, task, served, files, data, name, step,
                       model_params, tags)


def _log_pyfunc(run_id: str, experiment_id: str, task: Any, served: ServedModel,
                networks: Mapping[str, torch.nn.Module], data: Any, name: str, step: int,
                model_params: Mapping[str, str] | None, tags: Mapping[str, str] | None,
                ) -> ModelInfo:
    """``served`` with the weights of ``networks`` (artifact name -> network) as a LoggedModel
    of run ``run_id``: created, saved, uploaded, linked to the run, marked READY."""
    chosen = task.network
    client = MlflowClient()
    model = client.create_logged_model(
        experiment_id, name=name, source_run_id=run_id,
        tags=resolve_tags(dict(tags or {})),
        params=dict(model_params or {}))
    try:
        with tempfile.TemporaryDirectory() as tmp, quiet_model_io():
            artifacts = {}
            for key, network in networks.items():
                path = os.path.join(tmp, f"{key}.pt")
                torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, path)
                artifacts[key] = path
            artifacts.update(save_task_artifacts(data.artifacts, tmp))
            user_code = write_code(chosen.code, os.path.join(tmp, "code")) if chosen else []
            folder = os.path.join(tmp, "model")
            described = Model(artifact_path=model.artifact_location, run_id=run_id,
                              model_uuid=model.model_id, model_id=model.model_id)
            mlflow.pyfunc.save_model(
                folder, mlflow_model=described,
                python_model=served,
                artifacts=artifacts,
                code_paths=[*packaged_code(), *user_code],
                signature=task.signature(data),
                input_example=task.input_example(data),
                pip_requirements=list(pip_requirements()),
            )
            for cache_folder in Path(folder).rglob("__pycache__"):  # a user's code's
                shutil.rmtree(cache_folder, ignore_errors=True)
            client.log_model_artifacts(model.model_id, folder)
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)])
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    return described.get_model_info(
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY))


def load_network(model_uri: str) -> torch.nn.Module:
    """The network of a logged mltune model, rebuilt on the CPU in eval mode."""
    with quiet_model_io():
        model = mlflow.pyfunc.load_model(model_uri)
    return model.unwrap_python_model().network
