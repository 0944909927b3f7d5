"""MLflow's tags of where a run or a model was made (user, source, git commit...): the same
for everything one process logs, so resolved once (about 10 ms a run otherwise)."""

from __future__ import annotations

from functools import cache

from mlflow.tracking.context.registry import resolve_tags


@cache
def context_tags() -> dict[str, str]:
    """MLflow's context tags of this process, resolved once."""
    return dict(resolve_tags({}))
