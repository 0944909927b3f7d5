"""mltune's own search-space distributions: what a YAML space becomes, whatever samples it.

No sampler library's objects appear outside its adapter (``mltune.search.samplers``): each
adapter translates these into its own (hyperopt's ``hp.*``, Optuna's distributions) and refuses,
in one line, what it cannot express. A space is a mapping of names to ``Value``: a literal, a
distribution, or (inside a ``Categorical``) an option that is a mapping of its own keys, which
is how conditional hyperparameters are written::

    optimizer:
      choice:
        - {name: adam}
        - {name: sgd, momentum: {uniform: [0.0, 0.99]}}

``source`` keeps the YAML distribution's name (``quniform``, ``lognormal``...), so an adapter
can rebuild exactly what the user wrote and a message can quote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Float:
    """A real in [low, high]; ``log``: drawn on a log scale; ``step``: rounded to multiples
    of it (hyperopt's q-distributions round, they do not clip)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    source: str = "uniform"


@dataclass(frozen=True)
class Int:
    """A whole number in [low, high], both ends included; ``step`` between values."""

    low: int
    high: int
    log: bool = False
    step: int = 1
    source: str = "quniform"


@dataclass(frozen=True)
class Normal:
    """A normal (``log``: a log-normal) draw of mean ``mu`` and deviation ``sigma``, unbounded;
    ``step``: rounded to multiples of it. Only hyperopt's samplers can draw it."""

    mu: float
    sigma: float
    log: bool = False
    step: float | None = None
    whole: bool = False  # the rounded values come back as int
    source: str = "normal"


@dataclass(frozen=True)
class Categorical:
    """One of ``options``; an option is a literal, a distribution, or a mapping of its own
    hyperparameters (a conditional option; its ``name`` is the value shown for the choice).
    ``weights``: the probability of each option (``pchoice``), None for equal ones."""

    options: tuple[Any, ...]
    weights: tuple[float, ...] | None = None
    source: str = "choice"


Distribution = Float | Int | Normal | Categorical
Space = Mapping[str, Any]  # name -> literal | Distribution
DISTRIBUTION_TYPES = (Float, Int, Normal, Categorical)


def is_distribution(value: Any) -> bool:
    return isinstance(value, DISTRIBUTION_TYPES)


def is_conditional(option: Any) -> bool:
    """Whether a ``Categorical`` option is a mapping of hyperparameters of its own."""
    return isinstance(option, Mapping)
