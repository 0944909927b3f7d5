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


def registered(client: MlflowClient, name: str, search_id: str, run_id: str
               ) -> ModelVersion | None:
    """The version of ``name`` that search ``search_id`` registered for run ``run_id``, if
    any (a search stopped during its registration and resumed finds it here)."""
    query = (f"name = '{name}' and tags.`{T.SEARCH_ID}` = '{search_id}' "
             f"and tags.`{T.RUN_ID}` = '{run_id}'")
    try:
        versions = client.search_model_versions(query)
    except MlflowException:
        return None
    return min(versions, key=lambda v: int(v.version)) if versions else None


def register(model_uri: str, name: str, tags: Mapping[str, Any],
             description: str) -> ModelVersion:
    """Register ``model_uri`` as a new version of ``name``, aliased ``challenger``; when the
    same search already registered the same run, that version again (never a second one)."""
    client = MlflowClient()
    tags = {**tags, T.VERSION: __version__}
    version = None
    if T.SEARCH_ID in tags and T.RUN_ID in tags:
        version = registered(client, name, str(tags[T.SEARCH_ID]), str(tags[T.RUN_ID]))
    if version is None:
        version = mlflow.register_model(model_uri, name,
                                        tags={k: str(v) for k, v in tags.items()})
    client.update_model_version(name, version.version, description=description)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return client.get_model_version(name, version.version)
