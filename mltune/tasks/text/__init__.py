"""The text task (registered as `text`)."""

from mltune.tasks.text.task import TextTask

__all__ = ["TextTask"]
