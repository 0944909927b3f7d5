"""The search in a terminal: the top trials side by side, and values shortened to fit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from mltune.report.trials import METRIC, OBJECTIVE, PARAM, ranked

TOP_K = 5
WIDTH = 24  # characters of a value in a table cell


def short(value: Any, width: int | None = WIDTH) -> str:
    """A value as a table cell shows it: floats to 4 significant digits, ``-`` for none, text
    cut to ``width`` characters (``None``: never cut)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if width is None or len(text) <= width else text[:width - 1] + "…"


def top_trials_text(frame: pd.DataFrame, metric: str, mode: str, k: int = TOP_K) -> str:
    """The top trials side by side, one row per metric/param: fits a terminal, shows what the
    best trials have in common."""
    top = ranked(frame, metric, mode).head(k)
    if top.empty:
        return f"No trial has {metric} yet."
    rows = [OBJECTIVE, "duration_s",
            *sorted(c for c in frame.columns if c.startswith(METRIC) and c != METRIC + metric),
            *sorted(c for c in frame.columns if c.startswith(PARAM))]
    names = [metric if c == OBJECTIVE else c.removeprefix(METRIC).removeprefix(PARAM)
             for c in rows]
    table = pd.DataFrame(
        {f"#{rank} trial {int(row['trial'])}": [short(row.get(c)) for c in rows]
         for rank, (_, row) in enumerate(top.iterrows(), start=1)},
        index=names,
    )
    title = f"Top {len(top)} of {len(frame)} trials by {metric} ({mode}):"
    return title + "\n" + table.to_string()


def outcomes_frame(outcomes: Iterable[Any], metric: str) -> pd.DataFrame:
    """A search's in-memory outcomes (``TrialOutcome``) as rows shaped like the report's."""
    rows = []
    for t in outcomes:
        rows.append({"trial": t.number, "run_id": t.run_id, "status": t.status,
                     OBJECTIVE: t.metrics.get(metric), "duration_s": round(t.seconds, 2),
                     **{METRIC + k: v for k, v in t.metrics.items()},
                     **{PARAM + k: v for k, v in t.params.items()}})
    return pd.DataFrame(rows)
