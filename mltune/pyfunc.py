"""The served model: raw user input -> the task's preprocessing -> network -> user-facing output.

The logged model carries the weights (a state dict, loaded with ``weights_only=True``), the
decoded params and the task's metadata (class labels, input shape...). Rebuilding the network
goes through the task, so every task is served by this one class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow.pyfunc
import pandas as pd
import torch

WEIGHTS = "weights"


class ServedModel(mlflow.pyfunc.PythonModel):
    """An mltune network as an MLflow pyfunc model."""

    def __init__(self, task: str, params: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        self.task = task
        self.params = dict(params)
        self.meta = dict(meta)
        self._network: torch.nn.Module | None = None

    def load_context(self, context: Any) -> None:
        from mltune.tasks import get_task

        network = get_task(self.task).build_model(self.params, self.meta)
        state = torch.load(context.artifacts[WEIGHTS], map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        self._network = network.eval()

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

        if self._network is None:
            raise RuntimeError("the model was not loaded through mlflow.pyfunc.load_model")
        return get_task(self.task).predict(self._network, self.meta, model_input)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_network"] = None  # weights travel as an artifact, never pickled
        return state
