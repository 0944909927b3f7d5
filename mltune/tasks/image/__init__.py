"""The image task (registered as `image`)."""

from mltune.tasks.image.task import ImageTask

__all__ = ["ImageTask"]
