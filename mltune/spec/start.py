"""``start:``, the points a search trains first, before any sampler is asked.

By default one: the task's default hyperparameters (``Task.default_params``), so a search is
never worse than not searching. ``start:`` in the spec replaces it with a list of partial
points, written as a trial's params are (decoded, flat: ``optimizer: sgd``,
``optimizer.momentum: 0.9``); ``start: []`` starts with the sampler's own points.

A given point is checked against the space when the spec is built (``check_start``): every key
a hyperparameter of the space (an option's own key belongs to its option, so giving it picks
that option), every value one the space can draw (inside a range, on its step, one of the
choices; a fixed value as the space fixes it). ``start_points`` completes each point from the
task's defaults, and where a default is not a value of the space, from the nearest one it has:
a number is clipped into its range and rounded to its step, a choice takes the option equal to
the default, else the nearest number among numeric options, else its first option; a fixed
value of the space is always the space's. The result is what a sampler proposes: flat, native,
typed as the space draws (``int`` for whole-number distributions), one entry per distinct point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mltune.core.errors import SpecError
from mltune.spec.distributions import Categorical, Float, Int, Normal, is_conditional
from mltune.spec.distributions import is_distribution as drawn
from mltune.spec.space import Params, to_native

_TOLERANCE = 1e-9


def check_start(value: Any, space: Mapping[str, Any], max_evals: int | None = None
                ) -> tuple[dict[str, Any], ...] | None:
    """``start:`` as written, checked against ``space`` (mltune's, ``build_space``): None
    (absent: the task's defaults), or a tuple of partial points, each refused in one line
    naming ``start[i].key``, the value and what the space allows; more points than
    ``max_evals`` trials refused too."""
    if value is None:
        return None
    if isinstance(value, Mapping):  # one point written without the list
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"start: expected a list of points (mappings of space keys to values) "
                        f"or [] for none, got {value!r}")
    points = []
    for i, point in enumerate(value):
        if not isinstance(point, Mapping):
            raise SpecError(f"start[{i}]: expected a mapping of space keys to values "
                            f"(learning_rate: 0.001), got {point!r}")
        given = {str(k): to_native(v) for k, v in point.items()}
        _complete(space, given, {}, f"start[{i}]")  # raises on a bad key or value
        points.append(given)
    if max_evals is not None and len(points) > max_evals:
        raise SpecError(f"start: {len(points)} points, more than max_evals ({max_evals}) "
                        "trials; give at most max_evals points or raise max_evals")
    return tuple(points)


def start_points(spec: Any, task: Any, space: Mapping[str, Any]) -> list[Params]:
    """The points the search trains first, in order, complete and distinct: the spec's
    ``start:`` points (or, without one, the task's defaults) completed from
    ``task.default_params()`` inside ``space`` (mltune's, as the samplers get it).

    ``spec``: a ``SearchSpec``; ``task``: the task with its network loaded (a user's network's
    defaults are the first values of its keys in the space).
    """
    given = [{}] if spec.start is None else list(spec.start)
    return completed(given, task, space)


def completed(given: Sequence[Mapping[str, Any]], task: Any, space: Mapping[str, Any],
              field: str = "start") -> list[Params]:
    """Partial points (each a point of ``space`` as far as it goes) completed from the task's
    defaults, in order, the repeats left out: the ``start:`` points, and an earlier search's
    best points that lack a key the space has since gained."""
    defaults = task.default_params()
    points: list[Params] = []
    for i, point in enumerate(given):
        full = _complete(space, dict(point), defaults, f"{field}[{i}]")
        if full not in points:
            points.append(full)
    return points


WARM_START = ("auto", "off")


def check_warm_start(value: Any) -> str | tuple[str, ...]:
    """``warm_start:`` as written: ``auto``, ``off`` (YAML reads a bare ``off`` as false and
    ``on`` as true), or the earlier searches to learn from: a list of parent run ids or search
    names (from the command line, one text with commas). An empty list is ``off``."""
    allowed = "expected auto, off, or a list of parent run ids or search names (a, b)"
    if value is None or value is True or value == "":
        return "auto"
    if value is False:
        return "off"
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in WARM_START:
            return text.lower()
        value = [part for part in text.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"warm_start: {value!r} is not allowed; {allowed}")
    sources: list[str] = []
    for entry in value:
        if isinstance(entry, bool) or not isinstance(entry, (str, int)) or not str(
                entry).strip() or str(entry).strip().lower() in WARM_START:
            raise SpecError(f"warm_start: entry {entry!r} of {list(value)!r} is not allowed; "
                            f"{allowed}")
        if str(entry).strip() not in sources:
            sources.append(str(entry).strip())
    return tuple(sources) if sources else "off"


def not_yet_run(points: Sequence[Params], seen: Sequence[Mapping[str, Any]]) -> list[Params]:
    """``points`` less those a resumed search already ran or has queued (``seen``: their
    params)."""
    return [p for p in points if not any(dict(s) == p for s in seen)]


# -- completing and checking a point -----------------------------------------------------------

def _complete(space: Mapping[str, Any], given: Mapping[str, Any], defaults: Mapping[str, Any],
              field: str) -> Params:
    point: Params = {}
    _fill(point, space, given, defaults, "", field)
    for key in given:
        if key not in point:
            raise SpecError(_unknown(space, key, given, field))
    return point


def _fill(point: Params, space: Mapping[str, Any], given: Mapping[str, Any],
          defaults: Mapping[str, Any], prefix: str, field: str) -> None:
    for name, value in space.items():
        key = f"{prefix}{name}"
        if isinstance(value, Categorical):
            _fill_choice(point, value, key, given, defaults, field)
        elif drawn(value):
            point[key] = _number(value, key, given, defaults, field)
        else:
            if key in given and not _same(given[key], value):
                raise SpecError(f"{field}.{key}: {given[key]!r} is not allowed; the space "
                                f"fixes it to {value!r}")
            point[key] = value


def _fill_choice(point: Params, choice: Categorical, key: str, given: Mapping[str, Any],
                 defaults: Mapping[str, Any], field: str) -> None:
    if key in given:
        index = _option_of(choice, given[key])
        if index is None:
            raise SpecError(f"{field}.{key}: {given[key]!r} is not one of the choices: "
                            f"{_shown(choice)}")
    elif any(k.startswith(f"{key}.") for k in given):  # an option's own key picks the option
        own = {k.removeprefix(f"{key}.") for k in given if k.startswith(f"{key}.")}
        index = next((i for i, o in enumerate(choice.options)
                      if is_conditional(o) and own <= set(o) - {"name"}), None)
        if index is None:
            keys = ", ".join(f"{key}.{k}" for k in sorted(own))
            raise SpecError(f"{field}.{keys}: no option of {key!r} has "
                            f"{'this key' if len(own) == 1 else 'these keys'}; its options: "
                            f"{_shown(choice)}")
    else:
        index = _nearest_option(choice, defaults.get(key), key in defaults)
    option = choice.options[index]
    if is_conditional(option):
        if "name" in option:
            point[key] = option["name"]
        own = {k: v for k, v in option.items() if k != "name"}
        _fill(point, own, given, defaults, f"{key}.", field)
    elif drawn(option):
        point[key] = _number(option, key, given, defaults, field)
    else:
        point[key] = option


def _option_of(choice: Categorical, value: Any) -> int | None:
    """The option a given value names: a literal equal to it, a conditional option of that
    ``name``, or a distribution that can draw it."""
    for i, option in enumerate(choice.options):
        shown = option.get("name") if is_conditional(option) else option
        if not drawn(option) and _same(shown, value):
            return i
    for i, option in enumerate(choice.options):
        if drawn(option) and _number_problem(option, value) is None:
            return i
    return None


def _nearest_option(choice: Categorical, default: Any, known: bool) -> int:
    if known:
        index = _option_of(choice, default)
        if index is not None:
            return index
        numbers = [(i, o) for i, o in enumerate(choice.options) if _is_number(o)]
        if _is_number(default) and len(numbers) == len(choice.options):
            return min(numbers, key=lambda pair: abs(pair[1] - default))[0]
    return 0


def _number(dist: Float | Int | Normal, key: str, given: Mapping[str, Any],
            defaults: Mapping[str, Any], field: str) -> int | float:
    if key in given:
        value = _yaml_number(given[key])
        problem = _number_problem(dist, value)
        if problem:
            raise SpecError(f"{field}.{key}: {given[key]!r} is not allowed; expected {problem}")
        return _typed(dist, value)
    default = defaults.get(key)
    if _is_number(default) and math.isfinite(default):
        return _typed(dist, _nearest(dist, float(default)))
    return _typed(dist, _first(dist))


def _number_problem(dist: Float | Int | Normal, value: Any) -> str | None:
    """What ``dist`` allows when it cannot draw ``value``; None when it can."""
    if isinstance(dist, Normal):
        what = "a number" + (" > 0" if dist.log else "")
        if dist.step:
            what += f" that is a multiple of {dist.step:g}"
        if not _is_number(value) or not math.isfinite(value) or dist.log and value <= 0 or (
                dist.step and not _on_step(value, dist.step)):
            return what
        return None
    whole = isinstance(dist, Int)
    stepped = dist.step is not None and not (whole and dist.step == 1)
    what = (f"a {'whole ' if whole else ''}number within [{dist.low:g}, {dist.high:g}]"
            + (f", a multiple of {dist.step:g}" if stepped else ""))
    if not _is_number(value) or not math.isfinite(value):
        return what
    if whole and not float(value).is_integer():
        return what
    if not dist.low - _TOLERANCE <= value <= dist.high + _TOLERANCE:
        return what
    if dist.step and not _on_step(value, dist.step):
        return what
    return None


def _nearest(dist: Float | Int | Normal, value: float) -> float:
    """The value of ``dist`` nearest ``value``: clipped into its range, on its step."""
    if isinstance(dist, Normal):
        if dist.log and value <= 0:
            value = math.exp(dist.mu)
        return round(value / dist.step) * dist.step if dist.step else value
    value = min(max(value, dist.low), dist.high)
    if dist.step:
        step = dist.step
        first = math.ceil(dist.low / step - _TOLERANCE) * step
        last = math.floor(dist.high / step + _TOLERANCE) * step
        value = min(max(round(value / step) * step, first), last) if first <= last else value
    return value


def _first(dist: Float | Int | Normal) -> float:
    """A value with no default to go by: as ``first_point`` takes it (the low end, a mean)."""
    if isinstance(dist, Normal):
        return _nearest(dist, math.exp(dist.mu) if dist.log else dist.mu)
    return _nearest(dist, dist.low)


def _typed(dist: Float | Int | Normal, value: float) -> int | float:
    """As the samplers give it: ``int`` for whole-number draws, a tidy ``float`` otherwise."""
    if isinstance(dist, Int) or isinstance(dist, Normal) and dist.whole:
        return int(round(value))
    value = float(value)
    return float(f"{value:.12g}") if dist.step else value


def _on_step(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) <= 1e-6 * max(1.0, abs(ratio))


def _yaml_number(value: Any) -> Any:
    """``'1e-3'`` -> ``0.001``: YAML 1.1 (PyYAML) reads an exponent without a dot as text."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind (``True`` is not ``1``; ``64`` is ``64.0``)."""
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _shown(choice: Categorical) -> str:
    shown = []
    for option in choice.options:
        if is_conditional(option):
            shown.append(repr(option.get("name", "(unnamed option)")))
        elif drawn(option):
            shown.append(f"a {option.source} draw")
        else:
            shown.append(repr(option))
    return ", ".join(shown)


def _all_keys(space: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for name, value in space.items():
        key = f"{prefix}{name}"
        keys.append(key)
        if isinstance(value, Categorical):
            for option in value.options:
                if is_conditional(option):
                    own = {k: v for k, v in option.items() if k != "name"}
                    keys += [k for k in _all_keys(own, f"{key}.") if k not in keys]
    return keys


def _unknown(space: Mapping[str, Any], key: str, given: Mapping[str, Any], field: str) -> str:
    parent = key.rpartition(".")[0]
    if key in _all_keys(space) and parent:
        return (f"{field}.{key}: belongs to another option of {parent!r} than "
                f"{given.get(parent, '(the one chosen)')!r}; give {parent} the option it "
                "belongs to, or leave it out")
    return f"{field}.{key}: unknown key; the space's keys: {', '.join(_all_keys(space))}"
