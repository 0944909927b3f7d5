"""The timeseries task (registered as `timeseries`)."""

from mltune.tasks.timeseries.task import TimeseriesTask

__all__ = ["TimeseriesTask"]
