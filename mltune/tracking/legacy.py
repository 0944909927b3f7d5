"""Models logged by mltune before models from code: a cloudpickled ``ServedModel`` (or
``EnsembleModel``) whose state is the task, params, metadata and builder, with its weights as
``torch.save`` files and a task's objects as joblib files.

They load only where MLflow allows pickle (``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``, true by
default); with it false MLflow refuses them before this code runs, with its own message. To
serve such a model where pickle is off, re-register it from a search run again by today's mltune
(``docs/operations.md``, "Models without pickle").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from mltune.models.ensemble import Averaged
from mltune.models.network import Network
from mltune.tracking.model_files import TASK_ARTIFACT, WEIGHTS


def load_pickled(model: Any, context: Any) -> None:
    """Fill ``model`` (an unpickled ``ServedModel``, its state as the old code left it) with
    its network and the task's objects, as the old ``load_context`` did."""
    import joblib

    from mltune.tasks import get_task

    task = get_task(model.task)
    builder = getattr(model, "builder", None)  # none before ``model:`` existed
    if isinstance(builder, str):
        task = task.for_model(builder)
    elif builder is not None:  # the user's callable, unpickled by value with the model
        task = task.with_network(Network(getattr(builder, "__name__", "network"), builder))
    members = getattr(model, "members", None)
    names = [f"{WEIGHTS}.{i}" for i in range(len(members))] if members else [WEIGHTS]
    networks = []
    for params, name in zip(members or [model.params], names, strict=True):
        network = task.build_model(params, model.meta)
        network.load_state_dict(torch.load(context.artifacts[name], map_location="cpu",
                                           weights_only=True))
        networks.append(network)
    model._network = (Averaged(networks, model.weights, model.probabilities) if members
                      else networks[0]).eval()
    model.meta = {**model.meta, **_joblib_objects(context.artifacts, joblib)}


def _joblib_objects(artifacts: Mapping[str, str], joblib: Any) -> dict[str, Any]:
    return {name[len(TASK_ARTIFACT):]: joblib.load(path) for name, path in artifacts.items()
            if name.startswith(TASK_ARTIFACT)}
