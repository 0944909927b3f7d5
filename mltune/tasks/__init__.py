"""The tasks mltune can tune, by name. A new task is one subpackage that registers itself in
``TASKS`` (the catalog a spec is validated against)."""

from __future__ import annotations

from mltune.data.splits import TaskData
from mltune.spec.model import SearchSpec
from mltune.spec.tasks import TASKS
from mltune.tasks.base import Task


def get_task(name: str) -> Task:
    """The task called ``name``, whatever the data (a served model rebuilds its network so)."""
    return TASKS.get(name, field="task")


def task_for(spec: SearchSpec) -> Task:
    """The task as it applies to the spec's data and network: the one place a search looks
    its task up. A user's network named by reference is not imported here
    (``mltune.models.network.load``): the promotion gate reads specs whose file is gone."""
    return get_task(spec.task).for_data(spec.data).for_model(spec.model, spec.space)


def drawn_split_seed(spec: SearchSpec) -> int | None:
    """The seed that draws the spec's splits and folds; ``None`` when its task cuts them
    without drawing (timeseries: by time), so that two seeds then split alike."""
    return spec.split_seed if get_task(spec.task).random_split else None


from mltune.tasks import (  # noqa: E402,F401  (registers the built-in tasks)
    image,
    tabular,
    text,
    timeseries,
)

__all__ = ["TASKS", "Task", "TaskData", "drawn_split_seed", "get_task", "task_for"]
