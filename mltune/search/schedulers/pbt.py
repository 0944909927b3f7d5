"""``pbt``: population-based training (Jaderberg et al. 2017; Ray Tune's
``PopulationBasedTraining``) within a pack. Every ``every`` epochs a trial is ranked among
itself and its pack's peers on the latest values (a diverged, NaN value ranks last); a trial in
the bottom ``fraction`` answers EXPLOIT: it takes the weights and optimizer state of a member
of the top ``fraction`` (chosen by a seeded draw) and goes on with that member's params, its
explored values (``values``) replacing theirs.

Explore (as Ray Tune's ``_explore``): each perturbable hyperparameter of the source's params
whose space entry is a distribution is, with probability ``resample_probability``, drawn anew
from it (Float and Int: uniform or log-uniform within [low, high]; Normal: its normal; a
choice: one of its options), else scaled by 0.8 or 1.2 (a choice: a neighbouring option) and
clipped to [low, high] (an Int rounded, a step kept). Perturbable (``PERTURBABLE``): a key
whose last dotted part is ``learning_rate``, ``lr``, ``weight_decay`` or ``momentum`` or ends
in ``dropout`` (``optimizer.momentum``, ``word_dropout``). Literals, shapes (layers, sizes,
``optimizer`` itself) and everything else keep the source's value, so members of a pack keep
one shape and one optimizer's state.

The population is the pack: a trial that trains alone (``pack: 1``, or the last of its
pack) has no one to copy and is never exploited. No exploit comes at or after the last epoch
(nothing would train after it). Every draw is seeded by ``(seed, trial, epoch)``: the same
search makes the same choices, whichever member reports first.

When to use it: schedules that matter more than where they start (learning rate, dropout),
with packs of several members and many epochs. PBT is greedy: it copies whoever leads now,
so over long horizons it can fall behind random search when early leaders are not late ones
(MF-PBT, 2025); for a short search, or one whose hyperparameters are mostly shapes, prefer
``asha`` or ``hyperband``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mltune.core.errors import SpecError
from mltune.search.schedulers.base import (
    CONTINUE,
    Context,
    Decision,
    Replayed,
    epochs_list,
    exploit,
)
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.distributions import Categorical, Float, Int, Normal, Space
from mltune.spec.options import integer, number
from mltune.spec.space import option_index

PERTURBABLE = ("learning_rate", "lr", "weight_decay", "momentum")  # and ``*dropout``
FACTORS = (0.8, 1.2)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def perturbable(key: str) -> bool:
    name = key.rsplit(".", 1)[-1]
    return name in PERTURBABLE or name.endswith("dropout")


def distribution_of(space: Space, key: str, params: Mapping[str, Any], prefix: str = "") -> Any:
    """The space's entry for the flat param ``key`` (``optimizer.momentum`` inside the option
    ``params`` chose), None when there is none."""
    if key in space:
        return space[key]
    head, dot, rest = key.partition(".")
    parent = space.get(head)
    if not dot or not isinstance(parent, Categorical):
        return None
    index = option_index(parent, prefix + head, params)
    option = None if index is None else parent.options[index]
    if not isinstance(option, Mapping):
        return None
    own = {k: v for k, v in option.items() if k != "name"}
    return distribution_of(own, rest, params, f"{prefix}{head}.")


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _on_step(value: float, step: float | None) -> float:
    """Rounded to a multiple of ``step``, as hyperopt's q-distributions round."""
    return value if step is None else round(value / step) * step


def resample(dist: Any, rng: random.Random) -> Any:
    """A new draw from ``dist`` (a Float, Int, Normal or a choice of literals)."""
    if isinstance(dist, Categorical):
        return rng.choice(dist.options)
    if isinstance(dist, Normal):
        value = rng.gauss(dist.mu, dist.sigma)
        value = math.exp(value) if dist.log else value
        value = _on_step(value, dist.step)
        return round(value) if dist.whole else value
    low, high = float(dist.low), float(dist.high)
    if dist.log:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    return perturb_within(dist, value)


def perturb_within(dist: Float | Int, value: float) -> float | int:
    """``value`` on ``dist``'s grid and clipped to its bounds (an Int: a whole number)."""
    value = _clip(_on_step(value, dist.step), dist.low, dist.high)
    if isinstance(dist, Int):
        return int(_clip(round(value), dist.low, dist.high))
    return value


def perturb(dist: Any, value: Any, rng: random.Random) -> Any:
    """``value`` scaled by 0.8 or 1.2 within ``dist`` (a choice: a neighbouring option)."""
    if isinstance(dist, Categorical):
        index = dist.options.index(value) if value in dist.options else 0
        index += rng.choice((-1, 1))
        return dist.options[min(max(index, 0), len(dist.options) - 1)]
    factor = rng.choice(FACTORS)
    if isinstance(dist, Normal):
        scaled = _on_step(value * factor, dist.step)
        return round(scaled) if dist.whole else scaled
    return perturb_within(dist, value * factor)


def explorable(dist: Any) -> bool:
    """A distribution PBT can move: numbers, or a choice among literals."""
    if isinstance(dist, Categorical):
        return all(not isinstance(o, Mapping) and not isinstance(o, (Float, Int, Normal,
                                                                      Categorical))
                   for o in dist.options)
    return isinstance(dist, Float | Int | Normal)


def explore(space: Space, params: Mapping[str, Any], probability: float,
            rng: random.Random) -> dict[str, Any]:
    """New values for the perturbable params of ``params`` (what a target goes on with)."""
    values: dict[str, Any] = {}
    for key in sorted(params):
        dist = distribution_of(space, key, params)
        if not perturbable(key) or not explorable(dist):
            continue
        current = params[key]
        if rng.random() < probability:
            values[key] = resample(dist, rng)
        elif isinstance(dist, Categorical) or is_number(current):
            values[key] = perturb(dist, current, rng)
    return values


@dataclass(frozen=True)
class PbtOptions:
    every: int = 4  # epochs between two exploits
    fraction: float = 0.25  # the bottom fraction of a pack copies its top fraction
    resample_probability: float = 0.25  # a value drawn anew instead of scaled 0.8x/1.2x


@SCHEDULERS.register("pbt")
class PbtScheduler(Replayed):
    """Keeps each trial's current params and latest value; exploits within a pack."""

    Options = PbtOptions

    @staticmethod
    def options(raw: Mapping[str, Any], epochs: int) -> PbtOptions:
        options = PbtOptions(
            every=integer(raw, "pruning.every", 4, minimum=1),
            fraction=number(raw, "pruning.fraction", 0.25, above=0, maximum=0.5),
            resample_probability=number(raw, "pruning.resample_probability", 0.25, minimum=0,
                                        maximum=1))
        if options.every >= epochs:
            raise SpecError(f"pruning.every: {options.every} is not allowed with rule pbt and "
                            f"{epochs} epochs; expected 1 to {epochs - 1} (an exploit at the "
                            "last epoch trains nothing after it)")
        return options

    @staticmethod
    def outline(options: PbtOptions, epochs: int) -> str:
        at = list(range(options.every, epochs, options.every))
        return (f"pbt: at {epochs_list(at)} of {epochs}, a pack's bottom "
                f"{options.fraction:.0%} copies a top member and goes on with its learning "
                "rate, weight decay, momentum and dropout scaled 0.8x/1.2x (drawn anew with "
                f"probability {options.resample_probability:g})")

    def __init__(self, options: PbtOptions, context: Context) -> None:
        self.options_, self.direction = options, context.direction
        self.space, self.seed, self.epochs = context.space or {}, context.seed, context.epochs
        self.params: dict[int, dict[str, Any]] = {}  # trial -> its current params

    def start(self, trial: int, params: Mapping[str, Any]) -> None:
        self.params[trial] = dict(params)

    def _rank_key(self, item: tuple[int, float]) -> tuple[bool, float, int]:
        trial, value = item
        nan = math.isnan(value)
        return nan, 0.0 if nan else self.direction.sort_key(value), trial

    def decide(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> Decision:
        options = self.options_
        if epoch % options.every or not peers or epoch >= self.epochs:
            return CONTINUE  # not its epoch; no one to copy; nothing trains after the last
        ranked = sorted({**peers, trial: value}.items(), key=self._rank_key)
        share = max(1, math.floor(len(ranked) * options.fraction))
        top, bottom = ranked[:share], ranked[-share:]
        if trial not in dict(bottom):
            return CONTINUE
        rng = random.Random(f"{self.seed}:{trial}:{epoch}")
        source, best = rng.choice(top)
        if math.isnan(best) or not (math.isnan(value) or self.direction.better(best, value)):
            return CONTINUE  # no one to learn from: all equal, or all diverged
        values = explore(self.space, self.params.get(source, {}),
                         options.resample_probability, rng)
        self.params[trial] = {**self.params.get(source, {}), **values}
        return exploit(source, values)

    def end(self, trial: int) -> None:
        self.params.pop(trial, None)
