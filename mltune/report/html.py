"""``report.html``: the search on one self-contained page.

The page embeds its images as data URIs and has no script: MLflow's artifact viewer shows
HTML in a sandboxed frame where relative links do not resolve, and a browser without network
access must show it whole.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mltune.report.console import short
from mltune.report.trials import METRIC, OBJECTIVE, PARAM, SearchTrials, ranked

TABLE_ROWS = 100  # rows of the page's table; the CSV has them all

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#222;max-width:1400px}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em}
.meta{color:#555} figure{margin:12px 0} figcaption{color:#555;font-size:.9em}
img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.82em} th,td{border:1px solid #ddd;padding:3px 6px;
text-align:right;white-space:nowrap} th{background:#f4f4f4} .scroll{overflow-x:auto}
.note{background:#fff8e1;padding:6px 10px;border-left:3px solid #f0b400}
"""


@dataclass(frozen=True)
class Section:
    """One figure of the page: its PNG, or none and the caption says why it is not drawn."""

    title: str
    caption: str = ""
    png: bytes | None = None


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _head(trials: SearchTrials) -> list[str]:
    frame, esc = trials.frame, html.escape
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    return [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Search {esc(trials.name)}: report</title><style>{STYLE}</style></head><body>",
        f"<h1>Search {esc(trials.name)}</h1>",
        f'<p class="meta">Parent run <code>{esc(trials.run_id)}</code> ({esc(trials.status)}) · '
        f"optimising <b>{esc(trials.metric)}</b> ({esc(trials.mode)}) · {len(frame)} trials: "
        + ", ".join(f"{n} {esc(s.lower())}" for s, n in sorted(counts.items()))
        + f" · generated {esc(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}</p>",
    ]


def _best(trials: SearchTrials) -> list[str]:
    best = ranked(trials.frame, trials.metric, trials.mode).head(1)
    if best.empty:
        return []
    esc, row = html.escape, best.iloc[0]
    shown = ", ".join(f"{esc(p)}={esc(short(row[PARAM + p]))}" for p in trials.params
                      if pd.notna(row[PARAM + p]))
    return [f"<p><b>Best:</b> trial {int(row['trial'])}, {esc(trials.metric)} = "
            f"{row[OBJECTIVE]:.4g} (run <code>{esc(row['run_id'])}</code>)<br>{shown}</p>"]


def _section(section: Section) -> list[str]:
    esc = html.escape
    if section.png is None:  # a plot that could not be drawn: the reason instead
        return [f"<h2>{esc(section.title)}</h2>", f'<p class="note">{esc(section.caption)}</p>']
    return [f"<h2>{esc(section.title)}</h2>",
            f'<figure><img src="{data_uri(section.png)}" alt="{esc(section.title)}">'
            f"<figcaption>{esc(section.caption)}</figcaption></figure>"]


def _table(trials: SearchTrials) -> list[str]:
    """Every trial, ranked ones first, up to ``TABLE_ROWS``."""
    frame = trials.frame
    order = ranked(frame, trials.metric, trials.mode)
    table = pd.concat([order, frame.drop(order.index)]).head(TABLE_ROWS)
    table = table.rename(columns=lambda c: c.removeprefix(METRIC).removeprefix(PARAM))
    more = (f" (the best {TABLE_ROWS}; all {len(frame)} in trials.csv)"
            if len(frame) > TABLE_ROWS else "")
    return [f"<h2>Trials, best first{more}</h2><div class=\"scroll\">",
            table.to_html(index=False, na_rep="", escape=True, border=0,
                          float_format=lambda v: f"{v:.4g}"),
            "</div></body></html>"]


def render_html(trials: SearchTrials, sections: Sequence[Section]) -> str:
    """One self-contained page: no script, no stylesheet or image fetched from anywhere."""
    parts = _head(trials)
    if trials.status == "RUNNING":
        parts.append('<p class="note">The search was still running when this report was made.'
                     "</p>")
    parts += _best(trials)
    for section in sections:
        parts += _section(section)
    parts += _table(trials)
    return "\n".join(parts)
