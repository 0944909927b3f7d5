"""mltune's space as Optuna sees it: compiled once into nodes that suggest a point through an
Optuna trial (define-by-run) and turn a recorded point back into Optuna's params. Optuna's
parameter names are the decoded names (``optimizer.momentum``); a categorical is suggested by
option index, so any literal can be an option and Optuna never has to store it. What Optuna
cannot express is refused with one line (``Compiler.refuse``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mltune.core.errors import SpecError
from mltune.search.samplers.base import Params
from mltune.spec.distributions import (
    Categorical,
    Float,
    Int,
    Normal,
    is_conditional,
    is_distribution,
)

# --- the space, compiled once into nodes that suggest and record points --------------------


@dataclass(frozen=True)
class _Literal:
    name: str
    value: Any


@dataclass(frozen=True)
class _Number:
    name: str  # the decoded name, the point's key
    key: str  # Optuna's parameter name (the decoded name, unless two options clash)
    dist: Any  # optuna.distributions.FloatDistribution | IntDistribution
    whole: bool  # the point's value is an int
    scale: float | None = None  # a log scale with a step: Optuna draws k, the point k * scale

    def value(self, drawn: float) -> Any:
        """The point's value of what Optuna drew."""
        if self.scale is not None:
            x = drawn * self.scale
            return int(round(x)) if self.whole else _tidy(x)
        if self.whole:
            return int(drawn)
        d = self.dist
        return _tidy(d.low + round((drawn - d.low) / d.step) * d.step) if d.step else drawn

    def drawn(self, value: float) -> Any:
        """What Optuna drew for a point's value."""
        if self.scale is not None:
            return int(round(value / self.scale))
        return int(value) if self.whole else value


@dataclass(frozen=True)
class _Option:
    value: Any  # what the parent takes in a point (a literal, or a conditional option's name)
    named: bool  # an unnamed conditional option leaves its parent out of the point
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class Choice:
    name: str
    key: str
    dist: Any  # optuna.distributions.CategoricalDistribution over option indices
    options: tuple[_Option, ...]


_Node = _Literal | _Number | Choice


class Compiler:
    """mltune's distributions -> nodes holding Optuna's; refuses what Optuna cannot draw."""

    def __init__(self, optuna: Any, algo: str) -> None:
        self.optuna, self.algo = optuna, algo
        self.seen: dict[str, Any] = {}  # Optuna name -> distribution, to keep names unique

    def refuse(self, name: str, what: str, instead: str) -> SpecError:
        by = "auto (Optuna's samplers)" if self.algo == "auto" else self.algo
        return SpecError(f"{what} cannot be sampled by {by}; use {instead}, or algo: tpe",
                         field=f"space.{name}")

    def key(self, name: str, dist: Any) -> str:
        """Optuna's name for a parameter: its decoded name, suffixed only when another option
        declared the same name with another distribution (Optuna requires one per name)."""
        key, n = name, 1
        while key in self.seen and self.seen[key] != dist:
            n += 1
            key = f"{name}#{n}"
        self.seen[key] = dist
        return key

    def nodes(self, space: Mapping[str, Any], prefix: str = "") -> tuple[_Node, ...]:
        return tuple(self.node(f"{prefix}{k}", v) for k, v in space.items())

    def node(self, name: str, value: Any) -> _Node:
        d = self.optuna.distributions
        if isinstance(value, Normal):
            raise self.refuse(name, value.source, "uniform or loguniform")
        if isinstance(value, (Float, Int)):
            whole = isinstance(value, Int)
            if value.log and value.step is not None and not (whole and value.step == 1):
                # Optuna takes no step on a log scale: draw k log-uniformly over the step's
                # multiples inside [low, high] (low > 0, so k >= 1); the value is k * step
                k_low = math.ceil(value.low / value.step - 1e-9)
                k_high = math.floor(value.high / value.step + 1e-9)
                if k_low > k_high:
                    raise self.refuse(name, f"{value.source} with no multiple of its step "
                                      "inside its bounds", "loguniform or quniform")
                dist = d.IntDistribution(k_low, k_high, log=True)
                return _Number(name, self.key(name, dist), dist, whole, float(value.step))
            low, high = _grid(value)
            if isinstance(value, Int):
                dist = d.IntDistribution(int(low), int(high), log=value.log,
                                         step=int(value.step))
            else:
                dist = d.FloatDistribution(low, high, log=value.log, step=value.step)
            return _Number(name, self.key(name, dist), dist, whole)
        if isinstance(value, Categorical):
            if value.weights is not None:
                raise self.refuse(name, f"{value.source} weights", "choice (equal weights)")
            options = tuple(self.option(name, o) for o in value.options)
            dist = d.CategoricalDistribution(tuple(range(len(options))))
            return Choice(name, self.key(name, dist), dist, options)
        if is_distribution(value):  # a distribution type added without an adapter case
            raise self.refuse(name, type(value).__name__, "uniform, quniform or choice")
        return _Literal(name, value)

    def option(self, name: str, option: Any) -> _Option:
        if is_distribution(option):
            raise self.refuse(name, "a choice of distributions",
                              "named options with their own ranges ({name: low, value: "
                              "{uniform: [0, 1]}})")
        if is_conditional(option):
            rest = {k: v for k, v in option.items() if k != "name"}
            return _Option(option.get("name"), "name" in option,
                           self.nodes(rest, prefix=f"{name}."))
        return _Option(option, True, ())


def _grid(value: Float | Int) -> tuple[float, float]:
    """The bounds Optuna draws between. With a step, the multiples of it inside [low, high]
    (hyperopt's q-distributions round to multiples of q, and so do mltune's), where there are
    any; Optuna's own grid starts at ``low``."""
    if not value.step or value.log:
        return value.low, value.high
    first = math.ceil(value.low / value.step - 1e-9) * value.step
    last = math.floor(value.high / value.step + 1e-9) * value.step
    if first > last:
        return value.low, value.high
    if isinstance(value, Int):
        return int(round(first)), int(round(last))
    return _tidy(first), _tidy(last)


def _tidy(x: float) -> float:
    """A multiple of a decimal step without binary noise (0.30000000000000004 -> 0.3): it is
    what MLflow shows as the trial's param."""
    return float(f"{x:.12g}")


def has_kind(nodes: Sequence[_Node], kind: type) -> bool:
    """Whether any node (options' children included) is a ``kind``."""
    for node in nodes:
        if isinstance(node, kind):
            return True
        if isinstance(node, Choice) and any(has_kind(o.children, kind) for o in node.options):
            return True
    return False


def conditional(nodes: Sequence[_Node]) -> bool:
    """Whether some option carries hyperparameters of its own to draw (only when chosen)."""
    return any(isinstance(n, Choice) and any(not isinstance(c, _Literal)
                                              for o in n.options for c in o.children)
               for n in nodes)


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind (True is not 1)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def suggest(trial: Any, nodes: Sequence[_Node], point: Params) -> None:
    """Draw ``nodes`` through an Optuna trial into ``point`` (decoded, flat, native)."""
    for node in nodes:
        if isinstance(node, _Literal):
            point[node.name] = node.value
        elif isinstance(node, _Number):
            d = node.dist
            if node.whole or node.scale is not None:  # Optuna's IntDistribution
                drawn = trial.suggest_int(node.key, d.low, d.high, step=d.step, log=d.log)
            else:
                drawn = trial.suggest_float(node.key, d.low, d.high, step=d.step, log=d.log)
            point[node.name] = node.value(drawn)
        else:
            option = node.options[trial.suggest_categorical(node.key, node.dist.choices)]
            if option.named:
                point[node.name] = option.value
            suggest(trial, option.children, point)


def _chosen(node: Choice, point: Mapping[str, Any]) -> int | None:
    """The index of the option a point took: by its value, or (an unnamed conditional option)
    by its hyperparameters being there."""
    if node.name in point:
        return next((i for i, o in enumerate(node.options)
                     if o.named and _same(o.value, point[node.name])), None)
    return next((i for i, o in enumerate(node.options) if not o.named and o.children
                 and all(c.name in point for c in o.children)), None)


def recorded(nodes: Sequence[_Node], point: Mapping[str, Any], params: dict[str, Any],
              dists: dict[str, Any]) -> bool:
    """A point's Optuna params and distributions; False if the point does not fit the space
    (a value missing or of the wrong kind, an unknown option). Optuna's ``create_trial``
    checks the rest (ranges, steps)."""
    for node in nodes:
        if isinstance(node, _Literal):
            continue
        if isinstance(node, _Number):
            value = point.get(node.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            if node.whole and value != int(value):
                return False
            params[node.key], dists[node.key] = node.drawn(value), node.dist
            continue
        index = _chosen(node, point)
        if index is None:
            return False
        params[node.key], dists[node.key] = index, node.dist
        if not recorded(node.options[index].children, point, params, dists):
            return False
    return True


def fixed_params(nodes: Sequence[_Node], fixed: Mapping[str, Any],
                  params: dict[str, Any]) -> None:
    """Fixed decoded values -> Optuna params to enqueue (a categorical by option index; its
    options' own hyperparameters stay free unless fixed too)."""
    for node in nodes:
        if isinstance(node, _Number) and node.name in fixed:
            params[node.key] = node.drawn(fixed[node.name])
        elif isinstance(node, Choice):
            if node.name in fixed:
                index = _chosen(node, {node.name: fixed[node.name]})
                if index is None:
                    raise ValueError(f"fixed {node.name}={fixed[node.name]!r} is not one of "
                                     "its options")
                params[node.key] = index
            for option in node.options:
                fixed_params(option.children, fixed, params)


def names(nodes: Sequence[_Node]) -> set[str]:
    out: set[str] = set()
    for node in nodes:
        out.add(node.name)
        if isinstance(node, Choice):
            for option in node.options:
                out |= names(option.children)
    return out
