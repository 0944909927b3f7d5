"""``report.html``: the search on one self-contained page.

The page embeds its images as data URIs and has no script: MLflow's artifact viewer shows
HTML in a sandboxed frame where relative links do not resolve, and a browser without network
access must show it whole. Run ids link to their pages in the MLflow UI when the tracking
server's address is known (a local store has none to give).
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mltune.report.console import short
from mltune.report.trials import METRIC, OBJECTIVE, PARAM, SearchEnd, SearchTrials, ranked
from mltune.tracking.links import run_url

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
.done{background:#e8f5e9;padding:6px 10px;border-left:3px solid #43a047}
table.result th{text-align:left} table.result td{text-align:left;white-space:normal}
"""
# What the page says of a search by its parent run's status.
STATUS_NOTES = {
    "RUNNING": ("note", "The search was still running when this report was made: the trials "
                        "so far, no holdout score, gate decision or registered version yet."),
    "FINISHED": ("done", "The search finished: every trial below is final."),
    "KILLED": ("note", "The search was stopped before its end (KILLED, e.g. interrupted): the "
                       "trials it ran are below; it can be resumed."),
    "FAILED": ("note", "The search failed (FAILED): the trials it ran are below."),
}


@dataclass(frozen=True)
class Section:
    """One figure of the page: its PNG, or none and the caption says why it is not drawn."""

    title: str
    caption: str = ""
    png: bytes | None = None


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _run(trials: SearchTrials, run_id: str, end: SearchEnd | None) -> str:
    """A run id as code, linked to its page in the MLflow UI when the server is known."""
    code = f"<code>{html.escape(run_id)}</code>"
    if end is None or not end.links or not trials.experiment_id:
        return code
    url = run_url(trials.experiment_id, run_id, base=end.links)
    return f'<a href="{html.escape(url)}">{code}</a>'


def _head(trials: SearchTrials, end: SearchEnd | None) -> list[str]:
    frame, esc = trials.frame, html.escape
    status = end.status if end is not None else trials.status
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Search {esc(trials.name)}: report</title><style>{STYLE}</style></head><body>",
        f"<h1>Search {esc(trials.name)}</h1>",
        f'<p class="meta">Parent run {_run(trials, trials.run_id, end)} ({esc(status)}) · '
        f"optimising <b>{esc(trials.metric)}</b> ({esc(trials.mode)}) · {len(frame)} trials: "
        + ", ".join(f"{n} {esc(s.lower())}" for s, n in sorted(counts.items()))
        + f" · generated {esc(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}</p>",
    ]
    kind, text = STATUS_NOTES.get(status, ("note", f"The search's run is {status}."))
    parts.append(f'<p class="{kind}">{esc(text)}</p>')
    return parts


def _best(trials: SearchTrials, end: SearchEnd | None = None) -> list[str]:
    best = ranked(trials.frame, trials.metric, trials.mode).head(1)
    if best.empty:
        return []
    esc, row = html.escape, best.iloc[0]
    shown = ", ".join(f"{esc(p)}={esc(short(row[PARAM + p]))}" for p in trials.params
                      if pd.notna(row[PARAM + p]))
    return [f"<p><b>Best:</b> trial {int(row['trial'])}, {esc(trials.metric)} = "
            f"{row[OBJECTIVE]:.4g} (run {_run(trials, row['run_id'], end)})<br>{shown}</p>"]


def _result(end: SearchEnd | None) -> list[str]:
    """The search's outcome beyond its trials: holdout scores, the gate, the version."""
    if end is None or end.status == "RUNNING":
        return []
    esc = html.escape
    none = "none recorded"
    holdout = ", ".join(f"{esc(k)} = {v:.4g}" for k, v in end.holdout.items()) or none
    champion = ""
    if end.champion_holdout:
        champion = " (the champion it was compared with: " + ", ".join(
            f"{esc(k)} = {v:.4g}" for k, v in end.champion_holdout.items()) + ")"
    registered = none
    if end.registered:
        name, _, version = end.registered.rpartition("/")
        registered = f"{esc(name)} version {esc(version)}"
    rows = [("Holdout score of the best model", holdout + champion
             + " <small>(the test split: never used to pick a trial)</small>"),
            ("Promotion gate", esc(end.gate) if end.gate else none),
            ("Registered version", registered)]
    return ['<h2>Result</h2><table class="result">',
            *(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows), "</table>"]


def _section(section: Section) -> list[str]:
    esc = html.escape
    if section.png is None:  # a plot that could not be drawn: the reason instead
        return [f"<h2>{esc(section.title)}</h2>", f'<p class="note">{esc(section.caption)}</p>']
    return [f"<h2>{esc(section.title)}</h2>",
            f'<figure><img src="{data_uri(section.png)}" alt="{esc(section.title)}">'
            f"<figcaption>{esc(section.caption)}</figcaption></figure>"]


def _table(trials: SearchTrials, end: SearchEnd | None = None) -> list[str]:
    """Every trial, ranked ones first, up to ``TABLE_ROWS``."""
    frame = trials.frame
    order = ranked(frame, trials.metric, trials.mode)
    table = pd.concat([order, frame.drop(order.index)]).head(TABLE_ROWS)
    table = table.rename(columns=lambda c: c.removeprefix(METRIC).removeprefix(PARAM))
    more = (f" (the best {TABLE_ROWS}; all {len(frame)} in trials.csv)"
            if len(frame) > TABLE_ROWS else "")
    text = table.to_html(index=False, na_rep="", escape=True, border=0,
                         float_format=lambda v: f"{v:.4g}")
    if end is not None and end.links:  # run ids are hex: found as they are, no escaping
        for run_id in table["run_id"].dropna():
            text = text.replace(f"<td>{run_id}</td>",
                                f"<td>{_run(trials, str(run_id), end)}</td>", 1)
    return [f"<h2>Trials, best first{more}</h2><div class=\"scroll\">", text,
            "</div></body></html>"]


def render_html(trials: SearchTrials, sections: Sequence[Section],
                end: SearchEnd | None = None) -> str:
    """One self-contained page: no script, no stylesheet or image fetched from anywhere.

    ``end``: how the search ended (status, holdout, gate, version); without it the status is
    the one the trials were read with.
    """
    parts = _head(trials, end)
    parts += _best(trials, end)
    parts += _result(end)
    for section in sections:
        parts += _section(section)
    parts += _table(trials, end)
    return "\n".join(parts)
