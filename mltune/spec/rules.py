"""What a value may be, stated once, and the check of every value a search space can produce.

A ``Rule`` says what it allows (``describe``), what is wrong with one value (``problem``) and
what is wrong with the numbers a distribution draws (``span_problem``); each problem is worded
to follow ``<field>: ``. The spec's own options use them through ``mltune.spec.options``. A task
declares one rule per hyperparameter it reads (``Task.param_rules``), and ``check_space`` walks
every literal and every distribution a YAML space can produce (the options of ``choice`` and
``pchoice``, and the conditional hyperparameters inside a choice's mappings), so that a value
no trial could use is refused when the spec is built, naming its path in the space, the value
and what is allowed, before any run opens.

The names a ``OneOf`` allows are read when checking (``Catalog.names``): an activation or a
model family added to its catalog is allowed with no change here or in a task.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from numbers import Real
from typing import Any, ClassVar

from mltune.core.catalog import Catalog
from mltune.core.errors import SpecError
from mltune.spec.space import flatten, is_distribution

Problem = str | None  # what is wrong with a value, to follow "<field>: "; None when nothing is


def show(value: float) -> str:
    """A bound as people write it: ``1``, ``0.5``, ``1e-05``."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


@dataclass(frozen=True)
class Span:
    """The numbers a distribution draws: from ``low`` to ``high``, None where unbounded."""

    low: float | None
    high: float | None
    low_open: bool = False  # every draw lies above ``low`` (lognormal: > 0, never 0)
    note: str = ""  # why a bound is not the one written (a q-distribution's rounding)


def span_of(distribution: str, args: Sequence[Any]) -> Span:
    """What a (validated) numeric distribution of ``mltune.spec.space`` can draw."""
    if distribution in ("uniform", "loguniform"):
        return Span(float(args[0]), float(args[1]))
    if distribution in ("quniform", "qloguniform"):  # hyperopt: round(x / q) * q
        low, high, q = (float(a) for a in args)
        span = Span(round(low / q) * q, round(high / q) * q)
        if (span.low, span.high) != (low, high):
            span = replace(span, note=f" (draws are rounded to multiples of q={show(q)})")
        return span
    if distribution == "randint":
        low, high = (0, args[0]) if len(args) == 1 else args
        return Span(float(low), float(high) - 1)
    if distribution == "lognormal":
        return Span(0.0, None, low_open=True)
    return Span(None, None)  # normal, qnormal


class Rule:
    """What one value may be."""

    def describe(self) -> str:
        raise NotImplementedError

    def problem(self, value: Any) -> Problem:
        """What is wrong with ``value``, or None."""
        raise NotImplementedError

    def span_problem(self, span: Span) -> Problem:
        """What is wrong with drawing numbers from ``span``, or None."""
        return f"draws numbers; expected {self.describe()}"


@dataclass(frozen=True)
class Number(Rule):
    """A finite number within bounds (``minimum``/``maximum`` inclusive, ``above``/``below``
    exclusive); ``unit`` reads "a number of seconds > 0"."""

    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    unit: str = ""
    noun: ClassVar[str] = "a number"

    def describe(self) -> str:
        noun = f"{self.noun} of {self.unit}" if self.unit else self.noun
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} from {show(self.minimum)} to {show(self.maximum)}"
        if self.above is not None and self.below is not None:
            return f"{noun} in ({show(self.above)}, {show(self.below)})"
        low = (f">= {show(self.minimum)}" if self.minimum is not None else
               f"> {show(self.above)}" if self.above is not None else "")
        high = (f"<= {show(self.maximum)}" if self.maximum is not None else
                f"< {show(self.below)}" if self.below is not None else "")
        return " ".join(p for p in (noun, " and ".join(p for p in (low, high) if p)) if p)

    def _low_ok(self, low: float | None, open_: bool = False) -> bool:
        if low is None:
            return self.minimum is None and self.above is None
        return not ((self.minimum is not None and low < self.minimum) or
                    (self.above is not None and (low < self.above or
                                                 (low == self.above and not open_))))

    def _high_ok(self, high: float | None) -> bool:
        if high is None:
            return self.maximum is None and self.below is None
        return not ((self.maximum is not None and high > self.maximum) or
                    (self.below is not None and high >= self.below))

    def problem(self, value: Any) -> Problem:
        if not is_number(value) or not (self._low_ok(value) and self._high_ok(value)):
            return f"{value!r} is not allowed; expected {self.describe()}"
        return None

    def span_problem(self, span: Span) -> Problem:
        if not self._low_ok(span.low, span.low_open):
            drawn = ("values with no lower bound" if span.low is None else
                     f"values just above {show(span.low)}" if span.low_open else show(span.low))
        elif not self._high_ok(span.high):
            drawn = "values with no upper bound" if span.high is None else show(span.high)
        else:
            return None
        hint = (" (use a bounded distribution: choice, uniform, quniform, randint...)"
                if span.low is None or span.high is None else "")
        return (f"can draw {drawn}{span.note}, which is not allowed; expected "
                f"{self.describe()}{hint}")


@dataclass(frozen=True)
class WholeNumber(Number):
    """A whole number within bounds (``2.0`` counts as 2)."""

    noun: ClassVar[str] = "a whole number"

    def problem(self, value: Any) -> Problem:
        if is_number(value) and float(value).is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected a whole number, got {value!r}"
        if not (self._low_ok(value) and self._high_ok(value)):
            return f"{value} is not allowed; expected {self.describe()}"
        return None


@dataclass(frozen=True)
class OneOf(Rule):
    """One of the names ``names()`` gives, read when checking (a catalog's, or a fixed list).

    With a ``kind`` the wording is a catalog's ("unknown activation 'x'; available: ...");
    ``known`` is the whole catalog when only part of it suits (``suits``: "task 'timeseries'").
    """

    names: Callable[[], Sequence[Any]]
    kind: str = ""
    known: Callable[[], Sequence[Any]] | None = None
    suits: str = ""

    @classmethod
    def among(cls, values: Iterable[Any]) -> OneOf:
        values = tuple(values)
        return cls(lambda: values)

    @classmethod
    def catalog(cls, catalog: Catalog[Any], only: Iterable[str] | None = None,
                suits: str = "") -> OneOf:
        """The names of ``catalog`` (or those of ``only`` it has, in that order)."""
        if only is None:
            return cls(catalog.names, catalog.kind)
        part = tuple(only)
        return cls(lambda: [n for n in part if n in catalog], catalog.kind, catalog.names, suits)

    def describe(self) -> str:
        return f"one of: {', '.join(map(str, self.names()))}"

    def problem(self, value: Any) -> Problem:
        names = list(self.names())
        if _member(value, names):
            return None
        available = ", ".join(map(str, names))
        if not self.kind:
            return f"{value!r} is not allowed; expected one of: {available}"
        if self.known is not None and _member(value, self.known()):
            return f"{self.kind} {value!r} does not suit {self.suits}; available: {available}"
        return f"unknown {self.kind} {value!r}; available: {available}"


@dataclass(frozen=True)
class Flag(Rule):
    """``true`` or ``false``."""

    def describe(self) -> str:
        return "true or false"

    def problem(self, value: Any) -> Problem:
        if isinstance(value, bool):
            return None
        return f"{value!r} is not allowed; expected true or false"


@dataclass(frozen=True)
class Text(Rule):
    """A non-empty string."""

    def describe(self) -> str:
        return "a non-empty string"

    def problem(self, value: Any) -> Problem:
        if isinstance(value, str) and value:
            return None
        return f"expected {self.describe()}, got {value!r}"


def is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _member(value: Any, names: Iterable[Any]) -> bool:
    """``value in names`` without ``True == 1`` or ``1 == 1.0`` passing for one another."""
    return any(value == name and type(value) is type(name) for name in names)


# -- every value a space can produce ---------------------------------------------------------

Rules = Mapping[str, Rule]


def check_space(space: Mapping[str, Any], rules: Rules) -> None:
    """Refuse the first value ``space`` can produce that its hyperparameter's rule does not
    allow: one SpecError naming its path (``space.optimizer.choice[2].momentum.uniform``).

    ``space`` is a YAML-form space already validated by ``build_space``; hyperparameters
    without a rule are not checked.
    """
    for key, value in space.items():
        _check(str(key), f"space.{key}", value, rules)


def _check(name: str, path: str, value: Any, rules: Rules) -> None:
    rule = rules.get(name)
    if is_distribution(value):
        (distribution, args), = value.items()
        path = f"{path}.{distribution}"
        if distribution in ("choice", "pchoice"):
            options = args if distribution == "choice" else [pair[1] for pair in args]
            for i, option in enumerate(options):
                _check_option(name, f"{path}[{i}]", option, rules)
            return
        problem = rule.span_problem(span_of(distribution, args)) if rule else None
    else:
        problem = rule.problem(value) if rule else None
    if problem:
        raise SpecError(problem, field=path)


def _check_option(name: str, path: str, option: Any, rules: Rules) -> None:
    """One option of a choice. In a mapping, ``name`` is the hyperparameter's value and every
    other key a conditional hyperparameter ``<name>.<key>`` (as ``space.flatten`` names it)."""
    if isinstance(option, Mapping) and not is_distribution(option):
        for key, value in option.items():
            _check(name if key == "name" else f"{name}.{key}", f"{path}.{key}", value, rules)
    else:
        _check(name, path, option, rules)


def check_params(params: Mapping[str, Any], rules: Rules, field: str = "params") -> None:
    """Refuse a value of one configuration (``mltune train --params``) its rule does not
    allow: the same rules as the space's, before the run opens."""
    for name, value in flatten(params).items():
        rule = rules.get(name)
        problem = rule.problem(value) if rule else None
        if problem:
            raise SpecError(f"{name}: {problem}", field=field)


# -- every name a space gives ------------------------------------------------------------------

def check_space_names(space: Mapping[str, Any], names: Iterable[str], reader: str,
                      open_names: Iterable[str] = ()) -> None:
    """Refuse a hyperparameter no one reads: a key of ``space`` (or a conditional key inside
    one of its choices: ``optimizer.momentm``) that is not among ``names``, what ``reader``
    (``task 'tabular' with model mlp``) reads. A typo would otherwise be tuned in vain, logged
    on every trial as if it mattered. One SpecError naming the key, the nearest name and the
    allowed ones. ``open_names``: names whose conditional keys are the reader's own business
    (a user's network's)."""
    known, opened = frozenset(names), frozenset(open_names)
    top = sorted(n for n in known if "." not in n)
    for key, value in space.items():
        key = str(key)
        if key not in known:
            raise SpecError(_unknown(key, top, f"for {reader}"), field=f"space.{key}")
        if key not in opened:
            _check_option_names(key, f"space.{key}", value, known, reader)


def _check_option_names(name: str, path: str, value: Any, known: frozenset[str],
                        reader: str) -> None:
    """The keys of a choice's mapping options: ``name.<key>`` must be read too."""
    if not is_distribution(value):
        return
    (distribution, args), = value.items()
    if distribution not in ("choice", "pchoice"):
        return
    options = args if distribution == "choice" else [pair[1] for pair in args]
    for i, option in enumerate(options):
        if not isinstance(option, Mapping) or is_distribution(option):
            continue
        for key, inner in option.items():
            if key == "name":
                continue
            where = f"{path}.{distribution}[{i}].{key}"
            if f"{name}.{key}" not in known:
                own = sorted(n[len(name) + 1:] for n in known if n.startswith(f"{name}."))
                raise SpecError(_unknown(str(key), own, f"in an option of {name} for {reader}"),
                                field=where)
            _check_option_names(f"{name}.{key}", where, inner, known, reader)


def check_param_names(params: Mapping[str, Any], names: Iterable[str], reader: str,
                      open_names: Iterable[str] = (), field: str = "params") -> None:
    """The same check for one configuration (``mltune train --params``), flat or nested."""
    known, opened = frozenset(names), frozenset(open_names)
    for name in flatten(params):
        if name in known or name.split(".")[0] in opened:
            continue
        raise SpecError(f"{name}: " + _unknown(name, sorted(known), f"for {reader}"),
                        field=field)


def _unknown(key: str, allowed: Sequence[str], where: str) -> str:
    """``unknown hyperparameter; did you mean hidden_size? Allowed for ...: a, b, c``."""
    near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    listed = f"llowed {where}: {', '.join(allowed) or 'none'}"
    return (f"unknown hyperparameter; did you mean {near[0]}? A{listed}" if near else
            f"unknown hyperparameter; a{listed}")
