"""What a served model refuses before its network sees it: one line naming the row, the column
and the value (``mlflow models serve`` answers it with HTTP 400).

A network answers anything with a number: NaN pixels give NaN probabilities and label 0, a
table sent in the wrong units gives a confident nonsense. So every task checks its input here:
an empty request, numbers that are not finite, values that can only be a mistake (far outside
what the model was trained on), and values of the wrong type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mltune.core.errors import DataError


def not_empty(rows: int, what: str = "rows") -> None:
    """An empty request is a mistake, not a question with an empty answer."""
    if rows == 0:
        raise DataError(f"input: the request holds no {what}; send at least one")


def _cell(value: Any) -> str:
    """A value as the user wrote it: 255 (not 255.0), inf, nan, 'text'."""
    value = value.item() if isinstance(value, np.generic) else value
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _place(index: tuple[int, ...], columns: Sequence[str] | None, name: str) -> str:
    """Where in a row: its column by name, or the position of the value in the row."""
    if len(index) == 1:
        return name
    if columns is not None:
        return f"column {columns[index[1]]!r}"
    inner = index[1:]
    return f"{name} {inner[0] if len(inner) == 1 else inner}"


def numbers(values: Any, name: str = "value", dtype: Any = np.float64) -> np.ndarray:
    """``values`` as floats of ``dtype``; a string or other non-number names its row, rows of
    different lengths are refused."""
    try:
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        pass
    ragged = DataError(f"input: the rows of {name}s differ in shape; send rows of one shape")
    try:
        array = np.asarray(values, dtype=object)
    except ValueError:
        raise ragged from None
    for index in np.ndindex(array.shape):
        if isinstance(array[index], (list, tuple, np.ndarray)):
            raise ragged
        try:
            float(array[index])
        except (TypeError, ValueError):
            raise DataError(f"input: row {index[0]}: {name} {_cell(array[index])} is not a "
                            "number") from None
    raise ragged


def finite(values: np.ndarray, columns: Sequence[str] | None = None,
           allow_nan: bool = False, name: str = "value", where: str = "input") -> None:
    """Refuse NaN and infinities (NaN too unless ``allow_nan``: a task that imputes gaps);
    the message names the first one's row and column (or position)."""
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if not bad.any():
        return
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    place = _place(index, columns, name)
    raise DataError(f"{where}: row {index[0]}, {place}: {_cell(values[index])} is not a finite "
                    "number" + ("" if allow_nan else " (NaN and infinity cannot be answered)"))


def within(values: np.ndarray, low: float, high: float, trained: tuple[float, float],
           name: str = "value") -> None:
    """Refuse values outside ``[low, high]``, saying the range the model was trained on."""
    bad = (values < low) | (values > high)
    if not bad.any():
        return
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    position = f", {_place(index, None, name)}" if len(index) > 1 else ""
    raise DataError(
        f"input: row {index[0]}{position}: {_cell(values[index])} is outside what this model "
        f"was trained on ({name}s from {trained[0]:g} to {trained[1]:g}; it takes {low:g} to "
        f"{high:g}): is the input on another scale?")
