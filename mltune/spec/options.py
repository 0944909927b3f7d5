"""The shared validators of spec values: one place that says what a field allows.

Each reads ``key`` from a mapping (with a default), checks it with a rule of
``mltune.spec.rules`` and raises a SpecError naming the field, the value received and what is
allowed. The spec's top-level keys, its sections (``pruning``, ``stop``) and the tasks'
``data:`` options all use them; ``prefixed`` names a task's options as the spec does
(``data.max_length``), so every message names the field as the user wrote it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from mltune.core.errors import SpecError
from mltune.spec.rules import Flag, Number, OneOf, Rule, Text, WholeNumber


def _checked(raw: Mapping[str, Any], key: str, default: Any, rule: Rule) -> Any:
    value = raw.get(key, default)
    problem = rule.problem(value)
    if problem:
        raise SpecError(f"{key}: {problem}")
    return value


def prefixed(options: Mapping[str, Any], section: str) -> dict[str, Any]:
    """``{"max_length": 0}`` -> ``{"data.max_length": 0}``: a section's keys as fields."""
    return {f"{section}.{k}": v for k, v in options.items()}


def integer(raw: Mapping[str, Any], key: str, default: int | None, minimum: int | None = None,
            maximum: int | None = None, unit: str = "") -> int:
    """A whole number (``2.0`` counts), within ``minimum``..``maximum`` when given."""
    return int(_checked(raw, key, default, WholeNumber(minimum, maximum, unit=unit)))


def number(raw: Mapping[str, Any], key: str, default: float | None, *,
           minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, below: float | None = None, unit: str = "") -> float:
    """A finite number within bounds (``above``/``below``: exclusive)."""
    rule = Number(minimum, maximum, above, below, unit=unit)
    return float(_checked(raw, key, default, rule))


def non_negative(raw: Mapping[str, Any], key: str, default: float) -> float:
    return number(raw, key, default, minimum=0)


def fraction(raw: Mapping[str, Any], key: str, default: float) -> float:
    """A share strictly between 0 and 1 (``data.val_size``)."""
    return number(raw, key, default, above=0, below=1)


def string(raw: Mapping[str, Any], key: str, default: str | None,
           allowed: Iterable[str] | None = None) -> str:
    """A non-empty string; one of ``allowed`` when given."""
    value = _checked(raw, key, default, Text())
    return value if allowed is None else one_of(raw, key, default, allowed)


def one_of(raw: Mapping[str, Any], key: str, default: Any, allowed: Iterable[Any]) -> Any:
    return _checked(raw, key, default, OneOf.among(allowed))


def boolean(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    return bool(_checked(raw, key, default, Flag()))


def optional_integer(raw: Mapping[str, Any], key: str, minimum: int) -> int | None:
    return None if raw.get(key) is None else integer(raw, key, 0, minimum=minimum)


def optional_positive(raw: Mapping[str, Any], key: str, unit: str = "seconds") -> float | None:
    return None if raw.get(key) is None else number(raw, key, None, above=0, unit=unit)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str, key: str) -> float:
    """Seconds from ``600``, ``90s``, ``10m`` or ``1.5h`` (a time budget as typed): a number
    above 0, with a unit s, m or h (none: seconds); anything else a SpecError naming ``key``."""
    value = str(text).strip().lower()
    scale = _UNITS.get(value[-1:], None)
    number_text = value[:-1] if scale is not None else value
    try:
        seconds = float(number_text) * (scale or 1.0)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(f"{text!r} is not a duration; expected seconds (600) or a number above "
                        "0 with a unit: 90s, 10m, 1.5h", field=key)
    return seconds


def column_list(raw: Mapping[str, Any], key: str) -> list[str]:
    """Column names: a list of strings, or one string (``data.drop: id``); none by default."""
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{key}: expected a list of column names, got {value!r}")
    return value


def frequency(raw: Mapping[str, Any], key: str) -> str | int | None:
    """The step of a series: None, a pandas offset alias (``D``, ``h``, ``MS``; returned in
    pandas' spelling) or a whole-number step >= 1."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SpecError(f"{key}: {value} is not allowed; a step must be >= 1")
        return value
    if isinstance(value, str):
        from pandas.tseries.frequencies import to_offset  # pandas only where a series is

        try:
            return to_offset(value).freqstr
        except ValueError:
            pass
    raise SpecError(f"{key}: {value!r} is not a frequency; expected a pandas offset alias "
                    "(D, h, 15min, W-MON, MS, ...) or a whole-number step")


def section(value: Any, name: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    """A section of the spec (``pruning``, ``stop``) with its keys named as fields."""
    if value is None:
        return {}
    if isinstance(value, str) and name == "pruning":
        value = {"rule": value}
    if not isinstance(value, Mapping):
        raise SpecError(f"{name}: expected a mapping with keys {', '.join(allowed)}, "
                        f"got {value!r}")
    for key in value:
        if key not in allowed:
            raise SpecError(f"{name}.{key}: unknown key; allowed: {', '.join(allowed)}")
    return prefixed(value, name)
