"""The model registry: the best trial's model becomes a version with the alias ``challenger``.

Aliases, never stages. Whether it also becomes ``champion`` is the gate's decision
(``mltune.registry.gate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mltune.core._version import __version__
from mltune.tracking import tags as T

CHAMPION, CHALLENGER = "champion", "challenger"


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding ``alias``, or None when no version holds it."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register(model_uri: str, name: str, tags: Mapping[str, Any],
             description: str) -> ModelVersion:
    """Register ``model_uri`` as a new version of ``name``, aliased ``challenger``."""
    client = MlflowClient()
    tags = {**tags, T.VERSION: __version__}
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return client.get_model_version(name, version.version)
