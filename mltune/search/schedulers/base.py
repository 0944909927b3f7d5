"""What a scheduler is: after each epoch of each trial it decides CONTINUE, STOP or EXPLOIT.

In the manner of Ray Tune's ``TrialScheduler.on_trial_result``: a decision is a value the
driver applies, never an exception. A pruning rule answers STOP (the trial ends PRUNED: a KILLED
run tagged ``mltune.pruned``); population-based training answers EXPLOIT: take the weights and
optimizer state of trial ``source`` and go on with ``values`` for the free hyperparameters (the
pack trainer copies the row; the change is logged on the trial's run).

Each scheduler owns its options (a frozen dataclass, ``Options``, validated by its ``options``
from the spec's ``pruning:`` section: another rule's option is refused there), says what it
will do with them before a search runs (``outline(options, epochs)``: one line, what
``mltune check`` prints, its rungs or brackets), and rebuilds its
state from recorded trials (``rebuild``): a resumed search judges its next trials exactly as the
uninterrupted search would have. The state of every built-in rule is a function of the values
it was told, so replaying each ended trial's recorded curve rebuilds it (``Replayed``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from mltune.core.terms import Direction
from mltune.spec.distributions import Space


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


def epochs_list(epochs: list[int] | tuple[int, ...]) -> str:
    """``epochs 1, 3 and 9`` (``epoch 4``): epochs as an outline says them."""
    words = [str(e) for e in epochs]
    if len(words) == 1:
        return f"epoch {words[0]}"
    return "epochs " + ", ".join(words[:-1]) + " and " + words[-1]


@dataclass(frozen=True)
class TrialCurve:
    """An ended trial as a scheduler is rebuilt from it: its number, its starting params and
    the search's metric at each epoch it trained."""

    number: int
    params: Mapping[str, Any]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Context:
    """What every scheduler is made with besides its options: the search's direction, its
    space (names -> literals and distributions: PBT draws from it), seed and epochs."""

    direction: Direction
    space: Space = field(default_factory=dict)
    seed: int = 0
    epochs: int = 10


class Scheduler(Protocol):
    """Judges trials epoch by epoch, against each other."""

    def start(self, trial: int, params: Mapping[str, Any]) -> None:
        """Trial ``trial`` starts with these decoded params (flat: ``optimizer.momentum``)."""

    def decide(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> Decision:
        """Trial ``trial`` measured ``value`` (the search's metric, NaN when it diverged) at
        ``epoch``; ``peers``: the same epoch's values of the other trials of its pack."""

    def end(self, trial: int) -> None:
        """The trial ended (finished, stopped or failed)."""

    def rebuild(self, trials: Sequence[TrialCurve]) -> None:
        """Learn the ended trials of a resumed search, before any new one starts."""


class Replayed:
    """``rebuild`` by replay: each recorded trial started, told its values epoch by epoch
    (the answers are not applied: the trial already ended) and ended, in trial order."""

    def start(self, trial: int, params: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def decide(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> Decision:
        raise NotImplementedError

    def end(self, trial: int) -> None:
        raise NotImplementedError

    def rebuild(self, trials: Sequence[TrialCurve]) -> None:
        for trial in sorted(trials, key=lambda t: t.number):
            self.start(trial.number, trial.params)
            for epoch, value in enumerate(trial.values, start=1):
                self.decide(trial.number, epoch, value)
            self.end(trial.number)
