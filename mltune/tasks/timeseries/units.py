"""A series' scaled values and row positions back in the user's units and times.

Shared by the task (scores, served forecasts) and its figure (``plot.py``), which therefore
need not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset


def times_around(meta: Mapping[str, Any], start: int, count: int) -> pd.Index | None:
    """Times of ``count`` rows from row ``start`` (counted from the validation start)."""
    if meta["time"] is None:
        return None
    freq = meta["freq"]
    if isinstance(freq, int):
        return pd.Index(meta["val_start"] + freq * np.arange(start, start + count))
    anchor = pd.Timestamp(meta["val_start"])
    first = anchor + start * to_offset(freq)
    return pd.date_range(first, periods=count, freq=freq)


def unscale(scaled: np.ndarray, meta: Mapping[str, Any]) -> np.ndarray:
    """Scaled target values -> the target's own units."""
    return scaled.astype(np.float64) * meta["scale"][0] + meta["mean"][0]


def unscale_rows(scaled: np.ndarray, meta: Mapping[str, Any]) -> np.ndarray:
    """Scaled rows (target and covariates) -> original units."""
    return scaled.astype(np.float64) * np.asarray(meta["scale"]) + np.asarray(meta["mean"])
