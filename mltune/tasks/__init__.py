"""The tasks mltune can tune, by name. A new task is one module that registers itself here."""

from __future__ import annotations

from mltune.catalog import Catalog
from mltune.tasks.base import Task, TaskData

TASKS: Catalog[Task] = Catalog("task")


def get_task(name: str) -> Task:
    return TASKS.get(name, field="task")


from mltune.tasks import (  # noqa: E402,F401  (registers the built-in tasks)
    image,
    tabular,
    text,
    timeseries,
)

__all__ = ["TASKS", "Task", "TaskData", "get_task"]
