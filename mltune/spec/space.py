"""The YAML search space -> mltune's distributions, and sampled points -> plain Python params.

A space is a mapping of hyperparameter names to either a literal (fixed value) or a one-key
mapping ``{distribution: arguments}`` named like hyperopt's ``hp.*`` functions. Options of a
``choice`` may be mappings themselves (conditional hyperparameters)::

    optimizer:
      choice:
        - {name: adam}
        - {name: sgd, momentum: {uniform: [0.0, 0.99]}}

Decoded params are flat: ``{"optimizer": "sgd", "optimizer.momentum": 0.42}``. Bounds of log
distributions are real values (``loguniform: [1e-4, 1e-1]``), and q-distributions whose step
and bounds are whole numbers come back as ``int``. A decoded point is what a trial's run holds
as params and what every sampler asks and is told (``option_index`` finds the option a point
chose, ``parse_point`` reads a point back from MLflow's strings).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from mltune.core.errors import SpecError
from mltune.spec.distributions import Categorical, Distribution, Float, Int, Normal
from mltune.spec.distributions import is_distribution as is_distribution_object

Params = dict[str, Any]
_Number = (int, float)


def _numbers(path: str, args: Any, count: int, form: str) -> list[float]:
    if not isinstance(args, list) or len(args) != count:
        raise SpecError(f"{path}: expected {form}, got {args!r}")
    for value in args:
        if isinstance(value, bool) or not isinstance(value, _Number) or not math.isfinite(value):
            raise SpecError(f"{path}: {value!r} is not a finite number; expected {form}")
    return [float(v) for v in args]


def _bounds(path: str, low: float, high: float, positive: bool = False) -> None:
    if positive and low <= 0:
        raise SpecError(f"{path}: low bound {low:g} must be > 0 (log scale; the bounds are "
                        "the values themselves, not their logs as in hyperopt's hp.loguniform)")
    if low >= high:
        raise SpecError(f"{path}: low bound {low:g} must be < high bound {high:g}")


def _step(path: str, q: float) -> None:
    if q <= 0:
        raise SpecError(f"{path}: step q={q:g} must be > 0")


def _whole(*values: float) -> bool:
    return all(float(v).is_integer() for v in values)


def _number_for(low: float, high: float, log: bool, step: float | None, source: str
                ) -> Float | Int:
    """A q-distribution whose step and bounds are whole numbers draws ints (today's rule)."""
    if step is not None and _whole(low, high, step):
        return Int(int(low), int(high), log=log, step=int(step), source=source)
    return Float(low, high, log=log, step=step, source=source)


def _uniform(path: str, args: Any) -> Float:
    low, high = _numbers(path, args, 2, "[low, high]")
    _bounds(path, low, high)
    return Float(low, high, source="uniform")


def _quniform(path: str, args: Any) -> Float | Int:
    low, high, q = _numbers(path, args, 3, "[low, high, q]")
    _bounds(path, low, high)
    _step(path, q)
    return _number_for(low, high, False, q, "quniform")


def _loguniform(path: str, args: Any) -> Float:
    low, high = _numbers(path, args, 2, "[low, high] as real values")
    _bounds(path, low, high, positive=True)
    return Float(low, high, log=True, source="loguniform")


def _qloguniform(path: str, args: Any) -> Float | Int:
    low, high, q = _numbers(path, args, 3, "[low, high, q] as real values")
    _bounds(path, low, high, positive=True)
    _step(path, q)
    return _number_for(low, high, True, q, "qloguniform")


def _normal(path: str, args: Any) -> Normal:
    mu, sigma = _numbers(path, args, 2, "[mu, sigma]")
    if sigma <= 0:
        raise SpecError(f"{path}: sigma={sigma:g} must be > 0")
    return Normal(mu, sigma, source="normal")


def _qnormal(path: str, args: Any) -> Normal:
    mu, sigma, q = _numbers(path, args, 3, "[mu, sigma, q]")
    if sigma <= 0:
        raise SpecError(f"{path}: sigma={sigma:g} must be > 0")
    _step(path, q)
    return Normal(mu, sigma, step=q, whole=_whole(mu, q), source="qnormal")


def _lognormal(path: str, args: Any) -> Normal:
    mu, sigma = _numbers(path, args, 2, "[mu, sigma] of the value's logarithm")
    if sigma <= 0:
        raise SpecError(f"{path}: sigma={sigma:g} must be > 0")
    return Normal(mu, sigma, log=True, source="lognormal")


def _randint(path: str, args: Any) -> Int:
    if isinstance(args, list) and len(args) == 1:
        args = [0, args[0]]
    low, high = _numbers(path, args, 2, "[upper] or [low, high] (whole numbers, high exclusive)")
    if not _whole(low, high):
        raise SpecError(f"{path}: bounds {args!r} must be whole numbers")
    _bounds(path, low, high)
    return Int(int(low), int(high) - 1, source="randint")  # Int's high is included


def _choice(path: str, args: Any) -> Categorical:
    if not isinstance(args, list) or not args:
        raise SpecError(f"{path}: expected a non-empty list of options, got {args!r}")
    return Categorical(tuple(_option(f"{path}[{i}]", o) for i, o in enumerate(args)))


def _pchoice(path: str, args: Any) -> Categorical:
    form = "a list of [probability, option] pairs whose probabilities sum to 1"
    if not isinstance(args, list) or not args:
        raise SpecError(f"{path}: expected {form}, got {args!r}")
    pairs = []
    for i, pair in enumerate(args):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], _Number)):
            raise SpecError(f"{path}[{i}]: expected [probability, option], got {pair!r}")
        if not 0 <= pair[0] <= 1:
            raise SpecError(f"{path}[{i}]: probability {pair[0]!r} must be within [0, 1]")
        pairs.append((float(pair[0]), _option(f"{path}[{i}]", pair[1])))
    total = sum(p for p, _ in pairs)
    if abs(total - 1.0) > 1e-6:
        raise SpecError(f"{path}: probabilities sum to {total:g}; expected {form}")
    return Categorical(tuple(o for _, o in pairs), weights=tuple(p for p, _ in pairs),
                       source="pchoice")


DISTRIBUTIONS: dict[str, Callable[[str, Any], Distribution]] = {
    "choice": _choice,
    "pchoice": _pchoice,
    "uniform": _uniform,
    "quniform": _quniform,
    "loguniform": _loguniform,
    "qloguniform": _qloguniform,
    "normal": _normal,
    "qnormal": _qnormal,
    "lognormal": _lognormal,
    "randint": _randint,
}


# Distributions whose draws spread over orders of magnitude: their params read best on a log axis.
LOG_SCALE = frozenset({"loguniform", "qloguniform", "lognormal"})


def is_distribution(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS


def log_scaled_params(space: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Names of the decoded (flat, dotted) params that a log distribution draws.

    The params of a choice's options count too (``optimizer.lr``), named as ``decode`` names
    them; a param that is itself a choice does not, whatever its options. Anything that is not
    a distribution is passed over, so a space read back from MLflow's params needs no checking.
    """
    found: set[str] = set()
    for key, value in space.items():
        if not is_distribution(value):
            continue
        (name, args), = value.items()
        if name in LOG_SCALE:
            found.add(f"{prefix}{key}")
        elif name in ("choice", "pchoice") and isinstance(args, list):
            for option in args:
                if name == "pchoice" and isinstance(option, list) and len(option) == 2:
                    option = option[1]  # [probability, option]
                if isinstance(option, Mapping) and not is_distribution(option):
                    rest = {k: v for k, v in option.items() if k != "name"}
                    found |= log_scaled_params(rest, prefix=f"{prefix}{key}.")
    return found


def _value(path: str, value: Any) -> Any:
    """A hyperparameter's value: a distribution or a literal."""
    if is_distribution(value):
        (name, args), = value.items()
        return DISTRIBUTIONS[name](f"{path}.{name}", args)
    if isinstance(value, Mapping):
        keys = ", ".join(map(str, value))
        raise SpecError(
            f"{path}: unknown distribution {keys!r}; available: {', '.join(sorted(DISTRIBUTIONS))}"
        )
    return value


def _option(path: str, option: Any) -> Any:
    """One option of a choice: a distribution, a literal, or a mapping (conditional params)."""
    if isinstance(option, Mapping) and not is_distribution(option):
        return {str(k): _value(f"{path}.{k}", v) for k, v in option.items()}
    return _value(path, option)


def build_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a YAML space and return mltune's space it describes (literals and
    ``spec.distributions``), which every sampler adapter translates for its library."""
    if not isinstance(space, Mapping):
        raise SpecError(f"space: expected a mapping of hyperparameters, got {space!r}")
    return {str(k): _value(f"space.{k}", v) for k, v in space.items()}


def to_native(value: Any) -> Any:
    """numpy scalars and containers -> plain Python values (what users and MLflow expect)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): to_native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_native(v) for v in value]
    return value


def flatten(values: Mapping[str, Any], prefix: str = "") -> Params:
    """Nested choice options -> dotted keys; an option's ``name`` becomes its parent's value."""
    flat: Params = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rest = dict(value)
            if "name" in rest:
                flat[full] = rest.pop("name")
            flat.update(flatten(rest, prefix=f"{full}."))
        else:
            flat[full] = value
    return flat


def decode(sample: Mapping[str, Any]) -> Params:
    """A nested sample (a chosen conditional option as a mapping, numpy scalars) -> flat,
    native params."""
    return flatten(to_native(sample))


def first_point(space: Mapping[str, Any]) -> Params:
    """One point of a YAML space, drawn by no one: each choice's first option, each range's
    low end (rounded as its ``q`` rounds), a normal's mean. Decoded like a sampled point.

    It is what a user's network is first built with (the default params of its own keys).
    """
    return decode({str(k): _first(v) for k, v in space.items()})


def _first(value: Any) -> Any:
    if isinstance(value, Mapping) and not is_distribution(value):  # a choice's option
        return {k: _first(v) for k, v in value.items()}
    if not is_distribution(value):
        return value
    (name, args), = value.items()
    if name == "choice":
        return _first(args[0])
    if name == "pchoice":
        return _first(args[0][1])
    if name == "randint":
        return int(args[0]) if len(args) == 2 else 0
    if name == "lognormal":
        return math.exp(args[0])
    low = float(args[0])  # uniform, loguniform: the low end; normal: the mean
    if name in ("quniform", "qloguniform", "qnormal"):
        q = float(args[-1])
        low = round(low / q) * q
        return int(low) if _whole(low, q) else low
    return low


def option_index(choice: Categorical, key: str, point: Mapping[str, Any]) -> int | None:
    """Which option of ``choice`` (hyperparameter ``key``) the decoded ``point`` took, None
    when none matches: a conditional option by its ``name`` (or, unnamed, by its own keys
    being present), a distribution by its draw being there, a literal by value (``True`` is
    not ``1``)."""
    value = point.get(key)
    named = [i for i, o in enumerate(choice.options) if not _unnamed(o)]
    for i in named:  # what names itself first
        option = choice.options[i]
        shown = option["name"] if isinstance(option, Mapping) else option
        if key in point and _same(shown, value):
            return i
    for i, option in enumerate(choice.options):  # then a draw, or an unnamed option's keys
        if i in named:
            continue
        if isinstance(option, Mapping):
            if key not in point and all(f"{key}.{k}" in point for k in option):
                return i
        elif key in point:
            return i
    return None


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (
        isinstance(a, _Number) and isinstance(b, _Number)
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def parse_point(space: Mapping[str, Any], raw: Mapping[str, str]) -> Params | None:
    """A trial's point read back from its run's params (MLflow keeps them as strings), typed
    as the space draws them; None when the params do not hold a point of ``space`` (a run
    that logged none, or a space changed since)."""
    point: Params = {}
    try:
        _parse_into(point, space, raw, "")
    except (KeyError, ValueError):
        return None
    return point


def _parse_into(point: Params, space: Mapping[str, Any], raw: Mapping[str, str],
                prefix: str) -> None:
    for name, value in space.items():
        key = f"{prefix}{name}"
        if isinstance(value, Categorical):
            _parse_choice(point, value, key, raw)
        elif isinstance(value, Float | Normal) and not (isinstance(value, Normal)
                                                         and value.whole):
            point[key] = float(raw[key])
        elif isinstance(value, Int | Normal):
            point[key] = int(float(raw[key]))
        else:
            point[key] = value  # a literal: as the space gives it, not as text


def _parse_choice(point: Params, choice: Categorical, key: str, raw: Mapping[str, str]) -> None:
    for option in sorted(choice.options, key=_unnamed):  # as ``option_index``: named first
        if isinstance(option, Mapping):
            own = {k: v for k, v in option.items() if k != "name"}
            if "name" in option and not _written(raw.get(key), option["name"]):
                continue
            if "name" not in option and key in raw:
                continue
            if all(f"{key}.{k}" in raw for k in own if is_distribution_object(own[k])):
                if "name" in option:
                    point[key] = option["name"]
                _parse_into(point, own, raw, f"{key}.")
                return
        elif is_distribution_object(option):
            if key in raw:
                _parse_into(point, {key: option}, raw, "")
                return
        elif key in raw and _written(raw[key], option):
            point[key] = option
            return
    raise KeyError(key)


def _unnamed(option: Any) -> bool:
    """An option known by its draw or its keys, not by a value of its own."""
    return is_distribution_object(option) or isinstance(option, Mapping) and "name" not in option


def _written(text: str | None, value: Any) -> bool:
    """Whether MLflow's ``text`` is ``value`` as a run's params hold it: strings as they are,
    anything else as JSON (``tracking.runs.param_value``), or as ``str`` (older mltune)."""
    if isinstance(value, str):
        return text == value
    return text in (json.dumps(value, default=str), str(value))
