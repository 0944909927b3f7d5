"""The YAML search space -> a hyperopt space, and sampled points -> plain Python params.

A space is a mapping of hyperparameter names to either a literal (fixed value) or a one-key
mapping ``{distribution: arguments}`` named like hyperopt's ``hp.*`` functions. Options of a
``choice`` may be mappings themselves (conditional hyperparameters)::

    optimizer:
      choice:
        - {name: adam}
        - {name: sgd, momentum: {uniform: [0.0, 0.99]}}

Decoded params are flat: ``{"optimizer": "sgd", "optimizer.momentum": 0.42}``. Bounds of log
distributions are real values (``loguniform: [1e-4, 1e-1]``), and q-distributions whose step
and bounds are whole numbers come back as ``int``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from hyperopt import hp
from hyperopt.pyll import scope

from mltune.core.errors import SpecError

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
        raise SpecError(f"{path}: low bound {low:g} must be > 0 (log scale)")
    if low >= high:
        raise SpecError(f"{path}: low bound {low:g} must be < high bound {high:g}")


def _step(path: str, q: float) -> None:
    if q <= 0:
        raise SpecError(f"{path}: step q={q:g} must be > 0")


def _whole(*values: float) -> bool:
    return all(float(v).is_integer() for v in values)


def _as_int_if_whole(expr: Any, *values: float) -> Any:
    return scope.int(expr) if _whole(*values) else expr


def _uniform(label: str, path: str, args: Any) -> Any:
    low, high = _numbers(path, args, 2, "[low, high]")
    _bounds(path, low, high)
    return hp.uniform(label, low, high)


def _quniform(label: str, path: str, args: Any) -> Any:
    low, high, q = _numbers(path, args, 3, "[low, high, q]")
    _bounds(path, low, high)
    _step(path, q)
    return _as_int_if_whole(hp.quniform(label, low, high, q), low, high, q)


def _loguniform(label: str, path: str, args: Any) -> Any:
    low, high = _numbers(path, args, 2, "[low, high] as real values")
    _bounds(path, low, high, positive=True)
    return hp.loguniform(label, math.log(low), math.log(high))


def _qloguniform(label: str, path: str, args: Any) -> Any:
    low, high, q = _numbers(path, args, 3, "[low, high, q] as real values")
    _bounds(path, low, high, positive=True)
    _step(path, q)
    expr = hp.qloguniform(label, math.log(low), math.log(high), q)
    return _as_int_if_whole(expr, low, high, q)


def _normal(label: str, path: str, args: Any) -> Any:
    mu, sigma = _numbers(path, args, 2, "[mu, sigma]")
    if sigma <= 0:
        raise SpecError(f"{path}: sigma={sigma:g} must be > 0")
    return hp.normal(label, mu, sigma)


def _qnormal(label: str, path: str, args: Any) -> Any:
    mu, sigma, q = _numbers(path, args, 3, "[mu, sigma, q]")
    if sigma <= 0:
        raise SpecError(f"{path}: sigma={sigma:g} must be > 0")
    _step(path, q)
    return _as_int_if_whole(hp.qnormal(label, mu, sigma, q), mu, q)


def _lognormal(label: str, path: str, args: Any) -> Any:
    mu, sigma = _numbers(path, args, 2, "[mu, sigma] of the value's logarithm")
    if sigma <= 0:
        raise SpecError(f"{path}: sigma={sigma:g} must be > 0")
    return hp.lognormal(label, mu, sigma)


def _randint(label: str, path: str, args: Any) -> Any:
    if isinstance(args, list) and len(args) == 1:
        args = [0, args[0]]
    low, high = _numbers(path, args, 2, "[upper] or [low, high] (whole numbers, high exclusive)")
    if not _whole(low, high):
        raise SpecError(f"{path}: bounds {args!r} must be whole numbers")
    _bounds(path, low, high)
    return hp.randint(label, int(low), int(high))


def _choice(label: str, path: str, args: Any) -> Any:
    if not isinstance(args, list) or not args:
        raise SpecError(f"{path}: expected a non-empty list of options, got {args!r}")
    options = [_option(f"{label}[{i}]", f"{path}[{i}]", o) for i, o in enumerate(args)]
    return hp.choice(label, options)


def _pchoice(label: str, path: str, args: Any) -> Any:
    form = "a list of [probability, option] pairs whose probabilities sum to 1"
    if not isinstance(args, list) or not args:
        raise SpecError(f"{path}: expected {form}, got {args!r}")
    pairs = []
    for i, pair in enumerate(args):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], _Number)):
            raise SpecError(f"{path}[{i}]: expected [probability, option], got {pair!r}")
        if not 0 <= pair[0] <= 1:
            raise SpecError(f"{path}[{i}]: probability {pair[0]!r} must be within [0, 1]")
        pairs.append((float(pair[0]), _option(f"{label}[{i}]", f"{path}[{i}]", pair[1])))
    total = sum(p for p, _ in pairs)
    if abs(total - 1.0) > 1e-6:
        raise SpecError(f"{path}: probabilities sum to {total:g}; expected {form}")
    return hp.pchoice(label, pairs)


DISTRIBUTIONS: dict[str, Callable[[str, str, Any], Any]] = {
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


def _value(label: str, path: str, value: Any) -> Any:
    """A hyperparameter's value: a distribution or a literal."""
    if is_distribution(value):
        (name, args), = value.items()
        return DISTRIBUTIONS[name](label, f"{path}.{name}", args)
    if isinstance(value, Mapping):
        keys = ", ".join(map(str, value))
        raise SpecError(
            f"{path}: unknown distribution {keys!r}; available: {', '.join(sorted(DISTRIBUTIONS))}"
        )
    return value


def _option(label: str, path: str, option: Any) -> Any:
    """One option of a choice: a distribution, a literal, or a mapping (conditional params)."""
    if isinstance(option, Mapping) and not is_distribution(option):
        return {k: _value(f"{label}.{k}", f"{path}.{k}", v) for k, v in option.items()}
    return _value(label, path, option)


def build_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a YAML space and return the hyperopt space it describes."""
    if not isinstance(space, Mapping):
        raise SpecError(f"space: expected a mapping of hyperparameters, got {space!r}")
    return {str(k): _value(str(k), f"space.{k}", v) for k, v in space.items()}


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
    """A point as hyperopt hands it to the objective -> flat, native params."""
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
