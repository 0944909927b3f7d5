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
    return repr(value.item() if isinstance(value, np.generic) else value)


def numbers(values: Any, name: str = "value") -> np.ndarray:
    """``values`` as floats; a string or other non-number names its row."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.asarray(values, dtype=object)
        for index in np.ndindex(array.shape):
            try:
                float(array[index])
            except (TypeError, ValueError):
                raise DataError(f"input: row {index[0]}: {name} {_cell(array[index])} is not a "
                                "number") from None
        raise


def finite(values: np.ndarray, columns: Sequence[str] | None = None,
           allow_nan: bool = False, name: str = "value") -> None:
    """Refuse NaN and infinities (NaN too unless ``allow_nan``: a task that imputes gaps);
    the message names the first one's row and column (or position)."""
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if not bad.any():
        return
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    where = (f"column {columns[index[1]]!r}" if columns is not None and len(index) > 1 else
             f"{name} {index[1:]}" if len(index) > 2 else
             f"{name} {index[1]}" if len(index) == 2 else name)
    raise DataError(f"input: row {index[0]}, {where}: {_cell(values[index])} is not a finite "
                    "number" + ("" if allow_nan else " (NaN and infinity cannot be answered)"))


def within(values: np.ndarray, low: float, high: float, trained: tuple[float, float],
           name: str = "value") -> None:
    """Refuse values outside ``[low, high]``, saying the range the model was trained on."""
    bad = (values < low) | (values > high)
    if not bad.any():
        return
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    position = f", {name} {index[1:]}" if len(index) > 1 else ""
    raise DataError(
        f"input: row {index[0]}{position}: {_cell(values[index])} is outside what this model "
        f"was trained on ({name}s from {trained[0]:g} to {trained[1]:g}; it takes {low:g} to "
        f"{high:g}): is the input on another scale?")
