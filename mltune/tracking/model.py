"""The served model: raw user input -> the task's preprocessing -> network -> user-facing output.

Every model is logged as MLflow's "models from code": its code is ``served_model.py`` (a fixed
module of mltune's that calls ``set_model(ServedModel())``), and what rebuilds the network is
plain data in one folder artifact, ``mltune`` (``model_files``): ``settings.json`` (params, the
task's metadata; an ensemble's members and weights), the weights as safetensors, a task's
fitted objects as skops files checked against the task's trusted types. ``model_config`` names the
task and the network (a family's name, or the reference to the user's callable, whose source
files travel among the model's ``code_paths`` beside mltune's own code, zipped:
``packaged_code``). No file of a model is a pickle, so it loads where MLflow's
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is false. Rebuilding the network goes through the task,
so every task is served by this one class. Models pickled by older versions load through
``legacy`` where pickle is allowed.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import mlflow.models
import mlflow.pyfunc
import pandas as pd
import torch
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient

from mltune.core.environ import temporarily
from mltune.core.errors import DataError, MltuneError
from mltune.models.ensemble import Averaged
from mltune.models.network import is_reference, load_served, write_code
from mltune.tracking.context import context_tags
from mltune.tracking.model_files import (
    FILES,
    TASK_ARTIFACT,
    WEIGHTS,
    load_task_artifacts,
    read_settings,
    read_weights,
    save_task_artifacts,
    task_files,
    write_settings,
    write_weights,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # mltune/: travels with every model
SERVED_MODEL_CODE = str(Path(__file__).resolve().with_name("served_model.py"))  # the models' code
MODEL_TYPE = "mltune-{task}"  # a LoggedModel's model_type: mltune-image, mltune-tabular...

__all__ = ["FILES", "TASK_ARTIFACT", "WEIGHTS", "BadInput", "EnsembleModel", "ServedModel",
           "load_network", "log_ensemble_model", "log_model", "quiet_model_io"]


class BadInput(DataError, MlflowException):
    """Input a served model cannot use: a DataError in Python, and for ``mlflow models serve``
    an MlflowException, so the HTTP answer is a 400 that carries the one clear line."""

    def __init__(self, message: str) -> None:
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


class ServedModel(mlflow.pyfunc.PythonModel):
    """An mltune network as an MLflow pyfunc model.

    Made empty by the model's code (``served_model.py``); ``load_context`` rebuilds it from
    the model's files: ``task``, ``params`` (the first member's, for an ensemble: what the
    gate's ``val_loss`` is measured with), ``meta`` (with the task's objects) and ``network``
    (an ensemble's members averaged by ``Averaged``), all that the promotion gate reads."""

    def __init__(self) -> None:
        self.task = ""
        self.params: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self._network: torch.nn.Module | None = None

    def load_context(self, context: Any) -> None:
        """Rebuild the network from the model's settings, weights and config."""
        if FILES not in context.artifacts:  # pickled by an older mltune
            from mltune.tracking.legacy import load_pickled

            load_pickled(self, context)
            return
        config = dict(context.model_config or {})
        folder = context.artifacts[FILES]  # <model>/artifacts/mltune
        settings = read_settings(folder)
        code = Path(folder).parents[1] / "code"  # the model's code/
        task = _served_task(str(config["task"]), config.get("network"), code)
        meta, members = settings["meta"], settings["members"]
        names = [WEIGHTS] if len(members) == 1 else [f"{WEIGHTS}.{i}" for i in
                                                     range(len(members))]
        networks = [read_weights(task.build_model(params, meta),
                                 os.path.join(folder, f"{name}.safetensors"))
                    for params, name in zip(members, names, strict=True)]
        weights = settings.get("weights")
        network = (networks[0] if weights is None else
                   Averaged(networks, weights, bool(settings["probabilities"])))
        self.task, self.params, self._network = task.name, members[0], network.eval()
        self.meta = {**meta, **load_task_artifacts(task_files(folder), task.artifact_types)}

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


class EnsembleModel(ServedModel):
    """Kept so that ensembles pickled by an older mltune unpickle (``legacy``); today an
    ensemble is a ``ServedModel`` whose settings list several members."""


def _served_task(name: str, network: str | None, code: Path) -> Any:
    """The task ``name`` with the model's network: its own family (None), a family by name,
    or the user's callable found by its reference in the model's ``code`` folder."""
    from mltune.tasks import get_task

    task = get_task(name)
    if network is None:
        return task
    if is_reference(network):
        return task.with_network(load_served(network, code))
    return task.for_model(network)


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
def pip_requirements(objects: bool = False) -> tuple[str, ...]:
    """Pinned requirements of the served model (never inferred: that costs seconds a trial).
    ``objects``: the model holds a task's skops files."""
    from importlib.metadata import version

    names = ("mlflow", "torch", "numpy", "pandas", "scikit-learn", "pyyaml", "safetensors",
             *(("skops",) if objects else ()))
    return tuple(f"{name}=={version(name).split('+')[0]}" for name in names)


@contextmanager
def quiet_model_io() -> Iterator[None]:
    """No artifact progress bar and no INFO line per model logged or loaded (a trial's, the
    gate's): "Validating input example against model signature" on every trial is no news.

    MLflow's warnings about a model are let through (it has none for models from code; one
    about an old pickled model is news to its user)."""
    logger = logging.getLogger("mlflow.pyfunc")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        with temporarily({"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}):
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
    settings = {"members": [dict(params)], "weights": None, "probabilities": None,
                "meta": data.meta}
    return _log_pyfunc(run_id, experiment_id, task, settings, {WEIGHTS: network}, data, name,
                       step, model_params, tags)


def log_ensemble_model(run_id: str, experiment_id: str, task: Any,
                       networks: Sequence[torch.nn.Module], params: Sequence[Mapping[str, Any]],
                       weights: Sequence[float], probabilities: bool, data: Any,
                       name: str = "model", model_params: Mapping[str, str] | None = None,
                       tags: Mapping[str, str] | None = None, step: int = 0) -> ModelInfo:
    """Log an ensemble of ``task``'s trained ``networks`` (with their ``params``, averaged
    with ``weights``: ``Averaged``) as one pyfunc LoggedModel of run ``run_id``, one weights
    file per member (``weights.<i>``); the rest as ``log_model``. It is read and decoded by
    the task exactly as a single network's: the same output columns, checks and refusals."""
    settings = {"members": [dict(p) for p in params], "weights": [float(w) for w in weights],
                "probabilities": bool(probabilities), "meta": data.meta}
    files = {f"{WEIGHTS}.{i}": network for i, network in enumerate(networks)}
    return _log_pyfunc(run_id, experiment_id, task, settings, files, data, name, step,
                       model_params, tags)


def _log_pyfunc(run_id: str, experiment_id: str, task: Any, settings: Mapping[str, Any],
                networks: Mapping[str, torch.nn.Module], data: Any, name: str, step: int,
                model_params: Mapping[str, str] | None, tags: Mapping[str, str] | None,
                ) -> ModelInfo:
    """A model of ``settings`` with the weights of ``networks`` (artifact name -> network) as
    a LoggedModel of run ``run_id``: created, saved, uploaded, linked to the run, READY."""
    chosen = task.network  # None: the task's own family, rebuilt as models before ``model:``
    client = MlflowClient()
    model = client.create_logged_model(
        experiment_id, name=name, source_run_id=run_id,
        tags={**context_tags(), **(tags or {})}, params=dict(model_params or {}),
        model_type=MODEL_TYPE.format(task=task.name))
    try:
        with tempfile.TemporaryDirectory() as tmp, quiet_model_io():
            files = os.path.join(tmp, FILES)  # one artifact: one copy by MLflow, not three
            os.mkdir(files)
            write_settings(settings, files)
            for key, network in networks.items():
                write_weights(network, os.path.join(files, f"{key}.safetensors"))
            save_task_artifacts(data.artifacts, files, task.artifact_types)
            user_code = write_code(chosen.code, os.path.join(tmp, "code")) if chosen else []
            folder = os.path.join(tmp, "model")
            described = Model(artifact_path=model.artifact_location, run_id=run_id,
                              model_uuid=model.model_id, model_id=model.model_id)
            mlflow.pyfunc.save_model(
                folder, mlflow_model=described,
                python_model=SERVED_MODEL_CODE,
                model_config={"task": task.name, "network": chosen.builder if chosen else None},
                artifacts={FILES: files},
                code_paths=[*packaged_code(), *user_code],
                signature=task.signature(data),
                input_example=task.input_example(data),
                pip_requirements=list(pip_requirements(bool(data.artifacts))),
            )
            _without_cloudpickle(described, folder)
            _forget_model_code()
            for cache_folder in Path(folder).rglob("__pycache__"):  # a user's code's
                shutil.rmtree(cache_folder, ignore_errors=True)
            client.log_model_artifacts(model.model_id, folder)
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)])
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    return described.get_model_info(
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY))


def _without_cloudpickle(described: Model, folder: str) -> None:
    """MLflow records its cloudpickle version in every pyfunc model, models from code too,
    where nothing is pickled; the MLmodel of mltune's says no such thing. (The line is taken
    out of the written file: writing the YAML again costs 10 ms a model.)"""
    flavor = described.flavors[mlflow.pyfunc.FLAVOR_NAME]
    if flavor.pop("cloudpickle_version", None) is None:
        return
    path = Path(folder, "MLmodel")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines
                            if not line.lstrip().startswith("cloudpickle_version:")))


def _forget_model_code() -> None:
    """MLflow runs the model's code to save it, as a module of a new name each time
    (``code_model_<uuid>``) that it leaves in ``sys.modules``: one more per trial, never used
    again. That of ``served_model.py`` is dropped (among the newest modules: a look at the
    last few, not a scan of them all)."""
    try:
        newest = list(itertools.islice(reversed(sys.modules), 64))
    except RuntimeError:  # another thread imported meanwhile: left for the next model
        return
    for name in newest:
        if name.startswith("code_model_") and getattr(sys.modules.get(name), "__file__",
                                                      None) == SERVED_MODEL_CODE:
            sys.modules.pop(name, None)


def load_logged(model_uri: str) -> mlflow.pyfunc.PyFuncModel:
    """A logged model as ``mlflow.pyfunc.load_model`` gives it. MLflow keeps the model a
    code file last set (``set_model``) in a global of its own, which would hold this model's
    network for as long as the process lives: it is let go of once the model is loaded."""
    with quiet_model_io():
        model = mlflow.pyfunc.load_model(model_uri)
    mlflow.models.model.__mlflow_model__ = None  # type: ignore[attr-defined]
    return model


def load_network(model_uri: str) -> torch.nn.Module:
    """The network of a logged mltune model, rebuilt on the CPU in eval mode."""
    return load_logged(model_uri).unwrap_python_model().network
