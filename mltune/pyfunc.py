"""The served model: raw user input -> the task's preprocessing -> network -> user-facing output.

The logged model carries the weights (a state dict, loaded with ``weights_only=True``), the
decoded params, the task's metadata (class labels, input shape...) and the task's extra
artifacts (a fitted scikit-learn transformer...), one joblib file each. Rebuilding the network
goes through the task, so every task is served by this one class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import joblib
import mlflow.pyfunc
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from mltune.errors import DataError, MltuneError

WEIGHTS = "weights"
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

    def __init__(self, task: str, params: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        self.task = task
        self.params = dict(params)
        self.meta = dict(meta)
        self._network: torch.nn.Module | None = None
        self._artifact_names: list[str] = []

    def load_context(self, context: Any) -> None:
        """Rebuild the network from params and meta; add the task's artifacts to ``meta``."""
        from mltune.tasks import get_task

        network = get_task(self.task).build_model(self.params, self.meta)
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
