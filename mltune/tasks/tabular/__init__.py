"""The tabular task (registered as `tabular`)."""

from mltune.tasks.tabular.task import TabularTask

__all__ = ["TabularTask"]
