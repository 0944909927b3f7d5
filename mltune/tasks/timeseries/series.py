"""Reading and checking one time series: the same rules for the training file and served rows.

The rules, stated once:

- The time column is optional. Given, it holds timestamps (anything ``pandas.to_datetime``
  reads in one consistent format) or whole-number steps (1, 2, 3... or years); every row has
  one, each appears once, and rows are in time order (an unsorted file is refused, not
  sorted: disorder usually means a day/month mix-up or concatenated exports).
- The step of the series is ``data.freq`` when given (a pandas offset alias such as ``D``,
  ``h``, ``MS``; a whole number for step times), else inferred. Timestamps must lie on that
  grid. A missing step is a *gap*.
- Target and covariates are numbers. Gaps and empty cells are refused, unless ``data.fill``
  says how to fill them: ``interpolate`` (linear between neighbours, the edges take the
  nearest value) or ``ffill`` (the last value carried forward, a leading hole takes the first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from mltune.core.errors import DataError

FILLS = ("none", "interpolate", "ffill")
Freq = str | int


@dataclass(frozen=True)
class Columns:
    """Which columns make the series: the target first, then covariates, and the time."""

    target: str
    covariates: tuple[str, ...] = ()
    time: str | None = None

    @property
    def values(self) -> list[str]:
        return [self.target, *self.covariates]


@dataclass(frozen=True)
class Series:
    """A checked series: values (n, 1 + covariates) in time order, target in column 0."""

    values: np.ndarray
    times: pd.Index | None
    freq: Freq | None


class Labels:
    """How messages name things and what they advise: spec fields and spec keys for the
    training file; ``input`` and the model's own rules for served rows."""

    def __init__(self, training: bool) -> None:
        self.training = training

    def __call__(self, role: str) -> str:
        if not self.training:
            return "input"
        return {"target": "data.target", "covariate": "data.covariates",
                "time": "data.time"}[role]

    def fill_hint(self) -> str:
        return ("set data.fill: interpolate or ffill to fill them" if self.training else
                "this model was trained without data.fill, so send complete rows")

    def freq_hint(self, freq: Freq) -> str:
        return ("set data.freq to the series' step (D, h, W-MON, MS, ... or a whole number)"
                if self.training else f"this model's step is {freq}")


def cell(value: Any) -> str:
    """A value from the user's file as they would write it in Python (``1990``, not
    ``np.int64(1990)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def show(time: Any) -> str:
    """A time as a user wrote it: a date alone when it is midnight."""
    if isinstance(time, pd.Timestamp) and time == time.normalize() and time.tz is None:
        return time.date().isoformat()
    return str(time)


def _row(i: int, raw_times: Sequence[Any] | None) -> str:
    return f"row {i + 1}" + (f" ({show(raw_times[i])})" if raw_times is not None else "")


def parse_times(raw: pd.Series, label: str) -> pd.Index:
    """The time column as a DatetimeIndex, or an integer Index for whole-number steps."""
    where = f"{label}: column {raw.name!r}"
    empty = np.flatnonzero(raw.isna().to_numpy())
    if len(empty):
        raise DataError(f"{where} is empty at row {empty[0] + 1}; every row needs a time")
    if pd.api.types.is_bool_dtype(raw):
        raise DataError(f"{where} holds booleans; expected timestamps or whole-number steps")
    if pd.api.types.is_numeric_dtype(raw):
        values = raw.to_numpy(dtype=float)
        if not np.all(np.isfinite(values) & (values == np.round(values))):
            bad = int(np.flatnonzero(~(np.isfinite(values) & (values == np.round(values))))[0])
            raise DataError(f"{where} has {cell(raw.iloc[bad])} at row {bad + 1}; numeric times "
                            "must be whole-number steps (or use timestamps)")
        return pd.Index(values.astype(np.int64))
    if pd.api.types.is_datetime64_any_dtype(raw):
        return pd.DatetimeIndex(raw)
    try:
        parsed = pd.to_datetime(raw, errors="coerce")
    except ValueError:  # offsets that change (daylight saving): one clock, UTC
        try:
            parsed = pd.to_datetime(raw, errors="coerce", utc=True)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{where} cannot be read as timestamps: {exc}") from None
    except TypeError as exc:
        raise DataError(f"{where} cannot be read as timestamps: {exc}") from None
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        raise DataError(
            f"{where} has {cell(raw.iloc[bad[0]])} at row {bad[0] + 1}, which is not a timestamp "
            f"in the format of the first row ({cell(raw.iloc[0])}); {len(bad)} such value(s) in "
            "all")
    return pd.DatetimeIndex(parsed)


def check_order(times: pd.Index, raw: pd.Series, label: str) -> None:
    """Each time once, rows in time order; both refused with the first offending rows."""
    where = f"{label}: column {raw.name!r}"
    duplicated = np.flatnonzero(times.duplicated(keep=False))
    if len(duplicated):
        first = times[duplicated[0]]
        rows = np.flatnonzero(times == first) + 1
        raise DataError(
            f"{where} repeats {cell(raw.iloc[duplicated[0]])}: rows "
            f"{', '.join(map(str, rows[:5]))}; each time must appear once")
    steps = np.flatnonzero(np.diff(times.asi8 if isinstance(times, pd.DatetimeIndex)
                                   else times.to_numpy()) < 0)
    if len(steps):
        i = int(steps[0])
        raise DataError(
            f"{where} is not in time order: row {i + 2} ({cell(raw.iloc[i + 1])}) comes after row "
            f"{i + 1} ({cell(raw.iloc[i])}); sort the rows by {raw.name!r}")


def infer_freq(times: pd.Index) -> Freq:
    """The series' step: pandas' inferred frequency, else the most common difference."""
    if isinstance(times, pd.DatetimeIndex):
        inferred = pd.infer_freq(times) if len(times) >= 3 else None
        if inferred:
            return to_offset(inferred).freqstr
        delta = pd.Series(times[1:] - times[:-1]).mode().iloc[0]
        days = delta / pd.Timedelta(days=1)
        if days.is_integer():  # calendar days, as a user writes them (not 24h)
            return "D" if days == 1 else f"{int(days)}D"
        return to_offset(delta).freqstr
    deltas = pd.Series(np.diff(times.to_numpy()))
    return int(deltas.mode().iloc[0])


def grid(first: Any, last: Any, freq: Freq) -> pd.Index:
    """Every step from ``first`` to ``last``."""
    if isinstance(freq, int):
        return pd.Index(np.arange(first, last + 1, freq, dtype=np.int64))
    return pd.date_range(first, last, freq=freq)


def future(last: Any, freq: Freq, steps: int) -> pd.Index:
    """The ``steps`` times after ``last``."""
    if isinstance(freq, int):
        return pd.Index(last + freq * np.arange(1, steps + 1, dtype=np.int64))
    return pd.date_range(last, periods=steps + 1, freq=freq)[1:]


def numeric(frame: pd.DataFrame, columns: Columns, raw_times: Sequence[Any] | None,
            labels: Labels) -> pd.DataFrame:
    """Target and covariates as floats; text or infinite values are refused."""
    out = {}
    for column in columns.values:
        role = "target" if column == columns.target else "covariate"
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce") if not pd.api.types.is_bool_dtype(raw) \
            else raw.astype(float)
        bad = np.flatnonzero((values.isna() & raw.notna()).to_numpy())
        if len(bad):
            raise DataError(
                f"{labels(role)}: column {column!r} has {cell(raw.iloc[bad[0]])} at "
                f"{_row(bad[0], raw_times)}, which is not a number; {len(bad)} such value(s) in "
                "all")
        values = values.astype(float)
        infinite = np.flatnonzero(np.isinf(values.to_numpy()))
        if len(infinite):
            raise DataError(f"{labels(role)}: column {column!r} is infinite at "
                            f"{_row(infinite[0], raw_times)}; expected finite numbers")
        out[column] = values.to_numpy()
    return pd.DataFrame(out)


def prepare(frame: pd.DataFrame, columns: Columns, *, fill: str, freq: Freq | None,
            training: bool) -> Series:
    """Check ``frame`` by the rules above and return its values in time order."""
    labels = Labels(training)
    missing = [c for c in [columns.time, *columns.values] if c and c not in frame.columns]
    if missing:
        role = ("time" if missing[0] == columns.time else
                "target" if missing[0] == columns.target else "covariate")
        raise DataError(f"{labels(role)}: column {missing[0]!r} is not in the "
                        f"{'file' if training else 'input'}; its columns: "
                        f"{', '.join(map(str, frame.columns))}")
    frame = frame.reset_index(drop=True)
    times = raw_times = None
    if columns.time:
        raw_times = frame[columns.time]
        times = parse_times(raw_times, labels("time"))
        check_order(times, raw_times, labels("time"))
    raw_list = None if raw_times is None else list(raw_times)
    values = numeric(frame, columns, raw_list, labels)
    if times is not None:
        values.index = times
        freq = freq if freq is not None else infer_freq(times)
        values = _regular(values, freq, raw_times, labels, fill)
        times = values.index
    holes = values.isna().to_numpy()
    if holes.any():
        if fill == "none":
            row, col = (int(v[0]) for v in np.nonzero(holes))
            column = values.columns[col]
            role = "target" if column == columns.target else "covariate"
            raise DataError(
                f"{labels(role)}: column {column!r} is empty at {_row(row, raw_list)}; "
                f"{int(holes.sum())} empty value(s) in all; {labels.fill_hint()}")
        values = (values.interpolate(method="linear", limit_direction="both")
                  if fill == "interpolate" else values.ffill().bfill())
        empty = [c for c in values.columns if values[c].isna().all()]
        if empty:
            raise DataError(f"{labels('target')}: column {empty[0]!r} has no values to fill "
                            "from")
    return Series(values.to_numpy(dtype=np.float64), times, freq)


def _regular(values: pd.DataFrame, freq: Freq, raw_times: pd.Series, labels: Labels,
             fill: str) -> pd.DataFrame:
    """Put the rows on the series' grid; missing steps (gaps) are refused or become holes."""
    times = values.index
    if isinstance(freq, int) == isinstance(times, pd.DatetimeIndex):
        kind = "a whole-number step" if isinstance(freq, int) else f"a frequency ({freq})"
        raise DataError(f"{labels('time')}: the step is {kind}, which does not fit the "
                        f"times in column {raw_times.name!r} ({cell(raw_times.iloc[0])}, ...)")
    full = grid(times[0], times[-1], freq)
    off = np.flatnonzero(~times.isin(full))
    if len(off):
        raise DataError(
            f"{labels('time')}: column {raw_times.name!r} has {cell(raw_times.iloc[off[0]])} at "
            f"row {off[0] + 1}, off the series' step of {freq} from {cell(raw_times.iloc[0])}; "
            f"{labels.freq_hint(freq)}")
    gaps = full.difference(times)
    if len(gaps) and fill == "none":
        after = times[times < gaps[0]][-1]
        raise DataError(
            f"{labels('time')}: column {raw_times.name!r} has a gap: no row for {show(gaps[0])} "
            f"(after {show(after)}; the step is {freq}); {len(gaps)} missing step(s) in all; "
            f"{labels.fill_hint()}")
    return values.reindex(full)
