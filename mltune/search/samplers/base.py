"""What a sampler is: the search asks it for points and tells it their results.

In the manner of Optuna's ``BaseSampler`` and Ray Tune's ``Searcher``, reduced to what a search
of packs needs. A point is a trial's decoded params (flat, native: ``{"optimizer": "sgd",
"optimizer.momentum": 0.42}``), the same dict a trial's MLflow run holds as params, so a
resumed search rebuilds any sampler from what MLflow already has. Values told are losses
(lower is better: ``Direction.as_loss``); None is a trial that measured nothing (failed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction
from mltune.spec.distributions import Space

Params = dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """A trial that ended, as a sampler learns from it: its point and its loss (None:
    failed)."""

    point: Params
    loss: float | None


class Sampler(Protocol):
    """Proposes points of one space; knows which are pending (asked, not yet told)."""

    def ask(self, n: int = 1, fixed: Mapping[str, Any] | None = None) -> list[Params]:
        """Up to ``n`` new points, each marked pending; ``fixed``: hyperparameters (decoded
        names) that every point takes as given (a pack's shape key); a fixed choice keeps
        its option's own hyperparameters free unless ``fixed`` names them. A pending point is
        never returned twice; fewer than ``n`` come back when no more distinct points can be
        had."""
        ...

    def tell(self, point: Params, loss: float | None) -> None:
        """A pending point's result (None: it failed); it is pending no more."""
        ...

    def pending(self, point: Params) -> None:
        """Mark ``point`` as asked and not yet told (a resumed search's interrupted trials,
        run again before anything new)."""
        ...

    def rebuild(self, finished: Sequence[Finished]) -> None:
        """Learn every finished trial of a resumed search at once, before the first ask."""
        ...


class Warmable(Protocol):
    """A sampler that learns from earlier searches of the same problem (a warm start,
    ``search.history.priors``): every sampler of the catalog is one; a sampler that is not
    says so in one line and its search starts cold."""

    def warm(self, finished: Sequence[Finished]) -> int:
        """Learn earlier searches' trials before the first ask; a point may lack keys of
        this space (the earlier space had no such key): the sampler learns the rest, or
        passes the point over. Returns how many it learnt."""
        ...


class SamplerFactory(Protocol):
    """How a catalog entry makes a sampler: the search's space, budget and seed."""

    def __call__(self, space: Space, budget: int, seed: int) -> Sampler: ...


def loss_of(outcome: TrialOutcome, metric: str, direction: Direction) -> float | None:
    """What a sampler learns from a trial: its measured metric as a loss, whatever happened
    after (a pruned trial's best value counts; so does a trial whose model could not be
    logged). A trial that measured nothing is None: a failed point."""
    value = outcome.metrics.get(metric)
    return None if value is None else direction.as_loss(value)
