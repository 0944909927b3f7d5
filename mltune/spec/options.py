"""The shared validators of spec values: one place that says what a field allows.

Each reads ``key`` from a mapping (with a default), checks its type and range, and raises a
SpecError naming the field, the value received and what is allowed. The spec's top-level keys,
its sections (``pruning``, ``stop``) and the tasks' ``data:`` options all use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mltune.core.errors import SpecError


def integer(raw: Mapping[str, Any], key: str, default: int, minimum: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{key}: expected a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(f"{key}: {value} is not allowed; expected a whole number >= {minimum}")
    return value

def string(raw: Mapping[str, Any], key: str, default: str | None, allowed=None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise SpecError(f"{key}: expected a non-empty string, got {value!r}")
    if allowed is not None and value not in allowed:
        raise SpecError(f"{key}: {value!r} is not allowed; expected one of: {', '.join(allowed)}")
    return value

def boolean(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{key}: {value!r} is not allowed; expected true or false")
    return value

def non_negative(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SpecError(f"{key}: {value!r} is not allowed; expected a number >= 0")
    return float(value)

def fraction(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise SpecError(f"data.{key}: {value!r} is not allowed; expected a number in (0, 1)")
    return float(value)

def section(value: Any, name: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
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
    return {f"{name}.{k}": v for k, v in value.items()}

def optional_integer(raw: Mapping[str, Any], key: str, minimum: int) -> int | None:
    return None if raw.get(key) is None else integer(raw, key, 0, minimum=minimum)

def optional_positive(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SpecError(f"{key}: {value!r} is not allowed; expected a number of seconds > 0")
    return float(value)
