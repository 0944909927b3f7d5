"""The shared words of a search, as enums compared in one place.

A trial's status and a metric's direction are written into MLflow and read back by resume,
report and registry code; as enums they cannot be misspelt, and ``max``/``min`` comparisons
live here only.
"""

from __future__ import annotations

from enum import Enum


class TrialStatus(str, Enum):
    """How a trial ended. The values are MLflow's run statuses, plus PRUNED (a KILLED run
    tagged ``mltune.pruned``), so a status compares equal to the text MLflow stores."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    PRUNED = "PRUNED"
    KILLED = "KILLED"  # interrupted: a resume runs it again

    def __str__(self) -> str:
        return self.value

    @property
    def run_status(self) -> str:
        """The status MLflow keeps for the run (a pruned run is KILLED there)."""
        return "KILLED" if self is TrialStatus.PRUNED else self.value

    @property
    def scored(self) -> bool:
        """Whether the trial's metric counts: TPE learns from finished and pruned trials."""
        return self in (TrialStatus.FINISHED, TrialStatus.PRUNED)


class Direction(str, Enum):
    """Whether a metric is better higher (``max``) or lower (``min``)."""

    MAX = "max"
    MIN = "min"

    def __str__(self) -> str:
        return self.value

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self is Direction.MAX else a < b

    def at_least(self, a: float, b: float) -> bool:
        """Whether ``a`` is as good as ``b`` or better."""
        return a == b or self.better(a, b)

    def gain(self, new: float, old: float) -> float:
        """How much better ``new`` is than ``old`` (negative when worse)."""
        return new - old if self is Direction.MAX else old - new

    def as_loss(self, value: float) -> float:
        """The value as a loss to minimise (hyperopt minimises)."""
        return -value if self is Direction.MAX else value

    def sort_key(self, value: float) -> float:
        """A key that sorts the best value first."""
        return -value if self is Direction.MAX else value


def holdout_metric(metric: str) -> str:
    """``val_accuracy`` -> ``test_accuracy``: the same measure on the holdout split."""
    return "test_" + metric.removeprefix("val_")
