"""A point of an earlier search's space as a point of this one: what a warm start tells the
sampler (``mltune.search.history.priors``).

Spaces move between searches of one problem: a key is dropped, a key is added, a bound is
narrowed, an option is removed. An earlier trial keeps what still means the same thing:

- a key the space no longer has is dropped (the point is still a point of the rest);
- a value the space cannot draw (outside the bounds, off the step, not one of the choices, a
  fixed value other than the space's) drops the whole trial: its score was earned by a
  configuration this search cannot propose;
- a key the space has and the trial lacks is left out (``missing``): a sampler that can hold a
  partial point learns the rest of it, one that cannot drops it.

The values come back typed as the space draws them (``int`` for whole-number draws).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mltune.spec.distributions import Categorical, Float, Int, Normal, is_conditional
from mltune.spec.distributions import is_distribution as drawn
from mltune.spec.space import Params, option_index

_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Fitted:
    """An earlier trial's point inside this space: its values, the keys it lacks."""

    point: Params
    missing: tuple[str, ...] = ()


def fit_point(space: Mapping[str, Any], point: Mapping[str, Any]) -> Fitted | None:
    """``point`` (decoded, flat: an earlier trial's params) as a point of ``space``
    (mltune's, ``build_space``); None when one of its values is not one ``space`` can draw."""
    fitted: Params = {}
    missing: list[str] = []
    if not _fit(space, point, "", fitted, missing):
        return None
    return Fitted(fitted, tuple(missing))


def _fit(space: Mapping[str, Any], point: Mapping[str, Any], prefix: str, fitted: Params,
         missing: list[str]) -> bool:
    for name, value in space.items():
        key = f"{prefix}{name}"
        if isinstance(value, Categorical):
            if not _fit_choice(value, key, point, fitted, missing):
                return False
        elif drawn(value):
            if key not in point:
                missing.append(key)
            elif not _fits(value, point[key]):
                return False
            else:
                fitted[key] = _typed(value, point[key])
        elif key in point and not _same(point[key], value):
            return False  # the space fixes it to another value now
        else:
            fitted[key] = value
    return True


def _fit_choice(choice: Categorical, key: str, point: Mapping[str, Any], fitted: Params,
                missing: list[str]) -> bool:
    if key not in point and not any(k.startswith(f"{key}.") for k in point):
        missing.append(key)  # the choice and whatever its options hold
        return True
    index = option_index(choice, key, point)
    if index is None:
        return False
    option = choice.options[index]
    if is_conditional(option):
        if "name" in option:
            fitted[key] = option["name"]
        own = {k: v for k, v in option.items() if k != "name"}
        return _fit(own, point, f"{key}.", fitted, missing)
    if drawn(option):
        if not _fits(option, point[key]):
            return False
        fitted[key] = _typed(option, point[key])
        return True
    fitted[key] = option
    return True


def _fits(dist: Float | Int | Normal, value: Any) -> bool:
    """Whether ``dist`` can draw ``value``. A stepped range draws the multiples of its step
    that round from inside its bounds (hyperopt's q-distributions round, they do not clip),
    so half a step past either end still fits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        return False
    whole = isinstance(dist, Int) or isinstance(dist, Normal) and dist.whole
    if whole and not float(value).is_integer():
        return False
    if dist.step and not _on_step(value, dist.step):
        return False
    if isinstance(dist, Normal):
        return not dist.log or value > 0
    slack = dist.step / 2 if dist.step else 0.0
    return dist.low - slack - _TOLERANCE <= value <= dist.high + slack + _TOLERANCE


def _on_step(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) <= 1e-6 * max(1.0, abs(ratio))


def _typed(dist: Float | Int | Normal, value: float) -> int | float:
    if isinstance(dist, Int) or isinstance(dist, Normal) and dist.whole:
        return int(round(value))
    return float(value)


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind (``True`` is not ``1``; ``64`` is ``64.0``)."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(
            a, bool) and not isinstance(b, bool):
        return a == b
    return type(a) is type(b) and a == b
