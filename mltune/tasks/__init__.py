"""The tasks mltune can tune, by name. A new task is one module that registers itself here."""

from __future__ import annotations

from mltune.catalog import Catalog
from mltune.tasks.base import Task, TaskData

TASKS: Catalog[Task] = Catalog("task")


def get_task(name: str) -> Task:
    return TASKS.get(name, field="task")


from mltune.tasks import image, text  # noqa: E402,F401  (registers the built-in tasks)

__all__ = ["TASKS", "Task", "TaskData", "get_task"]
