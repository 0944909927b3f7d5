"""What a scheduler is: after each epoch of each member it says CONTINUE, STOP or EXPLOIT.

In the manner of Ray Tune's ``TrialScheduler.on_trial_result``: a pruning rule answers STOP
(the trial ends KILLED, ``mltune.pruned``); population-based training answers EXPLOIT: take
the weights and optimizer state of trial ``source`` and go on with ``values`` for the free
hyperparameters (the engine copies the row in the pack; the change is logged on the run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


class Action(str, Enum):
    CONTINUE = "continue"
    STOP = "stop"
    EXPLOIT = "exploit"


@dataclass(frozen=True)
class Decision:
    """A scheduler's answer for one trial after one epoch."""

    action: Action
    source: int | None = None  # EXPLOIT: the trial whose weights are copied
    values: Mapping[str, Any] = field(default_factory=dict)  # EXPLOIT: new free values


CONTINUE = Decision(Action.CONTINUE)
STOP = Decision(Action.STOP)


def exploit(source: int, values: Mapping[str, Any]) -> Decision:
    return Decision(Action.EXPLOIT, source, dict(values))


class Scheduler(Protocol):
    """Judges trials epoch by epoch, against each other.

    A factory (the class ``SCHEDULERS`` names) is called as ``factory(spec, direction, space,
    seed)``: the search's ``PruningSpec``, its ``Direction``, its space (``spec.space``'s
    ``build_space``: names -> literals and distributions; None when unknown) and its seed.
    A rule that needs neither space nor seed ignores them.
    """

    def on_start(self, trial: int, params: Mapping[str, Any]) -> None:
        """Trial ``trial`` starts with these decoded params (flat: ``optimizer.momentum``)."""
        ...

    def on_result(self, trial: int, epoch: int, value: float,
                  peers: Mapping[int, float] | None = None) -> Decision:
        """Trial ``trial`` measured ``value`` (the search's metric, NaN when it diverged) at
        ``epoch``; ``peers``: the same epoch's values of the other members of its pack."""
        ...

    def on_end(self, trial: int) -> None:
        """The trial ended (finished, stopped or failed)."""
        ...
