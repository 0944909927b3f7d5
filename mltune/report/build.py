"""The search at a glance: a trials table, plots and ``report.html`` on the parent run.

Everything is read back from MLflow, so the report can be rebuilt at any time (``mltune report
PARENT_RUN_ID``), also while the search runs. MLflow is asked little: the parent run, one
paged ``search_runs`` for the children (their params and final metrics come with it), and
metric histories for the top trials only.

The page embeds its images as data URIs: MLflow's artifact viewer shows HTML in a sandboxed
frame where relative links do not resolve, and a browser without network access must show it
whole. The images are also logged as PNG files beside it.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mltune.core.errors import SpecError
from mltune.tracking.tags import (
    BEST_EPOCH,
    EPOCHS_RUN,
    ERROR,
    PRUNED,
    REPORT,
    REPORT_ERROR,
    ROLE,
    SEARCH_ID,
    TRIAL,
)
from mltune.tracking.tags import OBJECTIVE as OBJECTIVE_TAG

if TYPE_CHECKING:
    from mltune.report.importance import Importance


REPORT_DIR = "report"  # artifact folder on the parent run
PARAM, METRIC = "params.", "metrics."  # column prefixes, as in mlflow.search_runs' frame
# What the search ranked the trial by: its metric for the weights it logged (the best epoch's
# under early stopping, the best seen before a pruned trial was stopped), not the last epoch's.
OBJECTIVE = "objective"
HEAD = ["trial", "run_id", "status", OBJECTIVE, "duration_s", "epochs", "best_epoch"]
TOP_K = 5
LOSSES = ("train_loss", "val_loss")
LOG_DISTRIBUTIONS = {"loguniform", "qloguniform", "lognormal"}
TABLE_ROWS = 100  # rows of the page's table; the CSV has them all


@dataclass(frozen=True)
class SearchTrials:
    """A search as MLflow has it: the parent's spec and one table row per trial."""

    run_id: str
    name: str
    status: str
    metric: str
    mode: str
    frame: pd.DataFrame  # trial, run_id, status, duration_s, epochs, metrics.*, params.*, error
    params: list[str]
    categorical: set[str]
    log_scale: set[str]


@dataclass(frozen=True)
class Report:
    """What was written: files by name (in ``directory`` and under ``report/`` on the run)."""

    trials: SearchTrials
    directory: Path | None
    files: list[str]
    importance: Importance
    artifact_uri: str


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def typed(text: str) -> Any:
    """A param back from MLflow's text: JSON where it parses (3, 0.01, true), else the text."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text
    return value if isinstance(value, (int, float, bool, str)) or value is None else text


def log_scaled(space: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Names of the (flat, dotted) params drawn from a log distribution, conditionals too."""
    found: set[str] = set()
    for key, value in space.items():
        if not (isinstance(value, Mapping) and len(value) == 1):
            continue
        (name, args), = value.items()
        if name in LOG_DISTRIBUTIONS:
            found.add(f"{prefix}{key}")
        elif name in ("choice", "pchoice") and isinstance(args, list):
            options = [o[1] if name == "pchoice" and isinstance(o, list) else o for o in args]
            for option in options:
                if isinstance(option, Mapping) and "name" in option:
                    rest = {k: v for k, v in option.items() if k != "name"}
                    found |= log_scaled(rest, prefix=f"{prefix}{key}.")
    return found


def _parent(client: MlflowClient, run_id: str) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise SpecError(f"run_id: no run {run_id!r} in the tracking store "
                        f"({client.tracking_uri}); give a search's parent run id") from exc
    tags = run.data.tags
    if tags.get(ROLE) == "trial" and tags.get(MLFLOW_PARENT_RUN_ID):
        raise SpecError(f"run_id: {run_id!r} is a trial; its search is "
                        f"{tags[MLFLOW_PARENT_RUN_ID]!r}")
    if "spec.metric" not in run.data.params:
        raise SpecError(f"run_id: {run_id!r} is not an mltune search (it has no spec.metric "
                        "param); give a search's parent run id")
    return run


def _search_all(client: MlflowClient, experiment_id: str, where: str) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], where, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _children(client: MlflowClient, parent: Run) -> list[Run]:
    """The trials of a search: the parent's child runs (one paged query).

    Runs that carry the search id without the parent link (none that mltune makes today) are
    looked for only when there are no children, so the usual case stays one query.
    """
    trial = f"tags.`{ROLE}` = 'trial'"
    experiment = parent.info.experiment_id
    runs = _search_all(client, experiment, f"{trial} and tags.`{MLFLOW_PARENT_RUN_ID}` = "
                                           f"'{parent.info.run_id}'")
    search_id = parent.data.tags.get(SEARCH_ID)
    if not runs and search_id:
        runs = _search_all(client, experiment, f"{trial} and tags.`{SEARCH_ID}` = '{search_id}'")
    return runs


def _row(run: Run, metric: str) -> dict[str, Any]:
    info, data, tags = run.info, run.data, run.data.tags
    ended = info.end_time if info.status != "RUNNING" else None
    steps = [m.step for m in data.to_proto().metrics]  # final values and their epochs
    objective = float(tags[OBJECTIVE_TAG]) if OBJECTIVE_TAG in tags else data.metrics.get(metric)
    row: dict[str, Any] = {
        "trial": int(tags.get(TRIAL, 0)),
        "run_id": info.run_id,
        "status": "PRUNED" if tags.get(PRUNED) == "true" else info.status,
        OBJECTIVE: objective,
        "duration_s": round((ended - info.start_time) / 1000, 2) if ended else None,
        "epochs": int(tags[EPOCHS_RUN]) if EPOCHS_RUN in tags else max(steps, default=0),
        "best_epoch": int(tags[BEST_EPOCH]) if BEST_EPOCH in tags else None,
    }
    row.update({METRIC + k: v for k, v in sorted(data.metrics.items())})
    row.update({PARAM + k: typed(v) for k, v in sorted(data.params.items())})
    row["error"] = tags.get(ERROR)
    return row


def _tidy(frame: pd.DataFrame, params: list[str]) -> set[str]:
    """Give param columns one type each (numbers, else text); return the categorical ones."""
    categorical = set()
    for name in params:
        column = frame[PARAM + name]
        present = column.dropna()
        if len(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                for v in present):
            frame[PARAM + name] = pd.to_numeric(column)
        else:
            categorical.add(name)
            frame[PARAM + name] = column.map(lambda v: str(v) if pd.notna(v) else None)
    return categorical


def load_trials(client: MlflowClient, parent_run_id: str) -> SearchTrials:
    """The search's trials table, from the parent run and its children."""
    parent = _parent(client, parent_run_id)
    params = parent.data.params
    metric, mode = params["spec.metric"], params.get("spec.mode", "max")
    space = {k.removeprefix("spec.space."): _json(v) for k, v in params.items()
             if k.startswith("spec.space.")}
    rows = [_row(run, metric) for run in _children(client, parent)]
    frame = pd.DataFrame(rows, columns=None if rows else HEAD)
    frame = frame.sort_values("trial", kind="stable").reset_index(drop=True)
    metric_columns = sorted(c for c in frame.columns if c.startswith(METRIC))
    if METRIC + metric in metric_columns:  # the search's metric first
        metric_columns.remove(METRIC + metric)
        metric_columns.insert(0, METRIC + metric)
    param_columns = sorted(c for c in frame.columns if c.startswith(PARAM))
    frame = frame.reindex(columns=[*HEAD, *metric_columns, *param_columns, "error"])
    frame[[OBJECTIVE, "duration_s"]] = frame[[OBJECTIVE, "duration_s"]].astype(float)
    frame[["epochs", "best_epoch"]] = frame[["epochs", "best_epoch"]].astype("Int64")
    names = [c.removeprefix(PARAM) for c in param_columns]
    categorical = _tidy(frame, names)
    log_scale = {n for n in log_scaled(space) if n in names and n not in categorical}
    return SearchTrials(parent_run_id, parent.info.run_name or parent_run_id,
                        parent.info.status, metric, mode, frame, names, categorical, log_scale)


def ranked(frame: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Finished trials with the metric, best first (the earlier trial wins a tie).

    A running or stopped trial's metric is not final, so it is not ranked.
    """
    scored = frame[frame[OBJECTIVE].notna() & (frame["status"] == "FINISHED")]
    return scored.sort_values([OBJECTIVE, "trial"], ascending=[mode == "min", True],
                              kind="stable")


def histories(client: MlflowClient, top: pd.DataFrame, metric: str
              ) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """Per-epoch values of the metric and the losses, for the given trials only."""
    keys = list(dict.fromkeys([metric, *LOSSES]))
    curves: dict[int, dict[str, list[tuple[int, float]]]] = {}
    for _, row in top.iterrows():
        curves[int(row["trial"])] = {
            key: sorted((m.step, m.value) for m in client.get_metric_history(row["run_id"], key))
            for key in keys if pd.notna(row.get(METRIC + key))
        }
    return curves


def _short(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"


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
        {f"#{rank} trial {int(row['trial'])}": [_short(row.get(c)) for c in rows]
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


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, format="png")


def write_files(trials: SearchTrials, client: MlflowClient, directory: Path,
                top_k: int = TOP_K) -> tuple[list[str], Importance]:
    """The table, the plots and the page in ``directory``; returns the file names, page last."""
    from mltune.report import plots  # matplotlib and scikit-learn: imported when a report is made
    from mltune.report.importance import importance

    frame, metric, mode = trials.frame, trials.metric, trials.mode
    frame.to_csv(directory / "trials.csv", index=False)
    frame.to_parquet(directory / "trials.parquet", index=False)
    files = ["trials.csv", "trials.parquet"]
    figures: list[tuple[str, str, str]] = []  # (file or "" when not drawn, title, caption)

    def add(fig: Any, name: str, title: str, caption: str = "") -> None:
        _save(fig, directory / name)
        files.append(name)
        figures.append((name, title, caption))

    add(plots.optimisation_history(frame, metric, mode), "optimisation_history.png",
        "Optimisation history", "Did the search converge: each trial's final "
        f"{metric} and the best so far.")
    finished = ranked(frame, metric, mode).sort_values("trial")  # what the plots compare
    estimate = importance(finished[[PARAM + p for p in trials.params]].rename(
        columns=lambda c: c.removeprefix(PARAM)), finished[OBJECTIVE], sorted(trials.categorical))
    if estimate.values is not None:
        values = estimate.values
        values.rename_axis("param").rename("importance").to_csv(directory / "importance.csv")
        files.append("importance.csv")
        add(plots.importance_bars(values, metric, estimate.trials), "importance.png",
            "Hyperparameter importance", "A random forest fitted on the finished trials "
            "(impurity importance); with few trials, a hint rather than a measurement.")
    else:
        figures.append(("", "Hyperparameter importance", f"Not estimated: {estimate.reason}."))
    add(plots.parallel_coordinates(finished, trials.params, trials.categorical, trials.log_scale,
                                   metric, mode), "parallel_coordinates.png",
        "Parallel coordinates", "What the best trials have in common.")
    top = ranked(frame, metric, mode).head(top_k)
    if not top.empty:
        losses = [loss for loss in LOSSES if METRIC + loss in frame]
        add(plots.learning_curves(histories(client, top, metric), metric, losses),
            "learning_curves.png", f"Learning curves of the top {len(top)} trials")
    if trials.params:
        add(plots.slice_plots(finished, trials.params, trials.categorical, trials.log_scale,
                              metric, mode), "slices.png",
            f"Slices: {metric} against each hyperparameter",
            "One panel per hyperparameter; colour is the trial number (later = lighter): "
            "where the search went, and where the good trials are.")
    page = render_html(trials, figures, directory)
    (directory / "report.html").write_text(page, encoding="utf-8")
    files.append("report.html")
    return files, estimate


def _image(directory: Path, name: str) -> str:
    data = base64.b64encode((directory / name).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


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


def render_html(trials: SearchTrials, figures: Sequence[tuple[str, str, str]],
                directory: Path) -> str:
    """One self-contained page: no script, no stylesheet or image fetched from anywhere."""
    frame, metric, mode = trials.frame, trials.metric, trials.mode
    esc = html.escape
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    best = ranked(frame, metric, mode).head(1)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Search {esc(trials.name)}: report</title><style>{STYLE}</style></head><body>",
        f"<h1>Search {esc(trials.name)}</h1>",
        f'<p class="meta">Parent run <code>{esc(trials.run_id)}</code> ({esc(trials.status)}) · '
        f"optimising <b>{esc(metric)}</b> ({esc(mode)}) · {len(frame)} trials: "
        + ", ".join(f"{n} {esc(s.lower())}" for s, n in sorted(counts.items()))
        + f" · generated {esc(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}</p>",
    ]
    if trials.status == "RUNNING":
        parts.append('<p class="note">The search was still running when this report was made.'
                     "</p>")
    if not best.empty:
        row = best.iloc[0]
        shown = ", ".join(f"{esc(p)}={esc(_short(row[PARAM + p]))}" for p in trials.params
                          if pd.notna(row[PARAM + p]))
        parts.append(f"<p><b>Best:</b> trial {int(row['trial'])}, {esc(metric)} = "
                     f"{row[OBJECTIVE]:.4g} (run <code>{esc(row['run_id'])}</code>)<br>"
                     f"{shown}</p>")
    for name, title, caption in figures:
        parts.append(f"<h2>{esc(title)}</h2>")
        if not name:  # a plot that could not be drawn: the reason instead
            parts.append(f'<p class="note">{esc(caption)}</p>')
            continue
        parts.append(f'<figure><img src="{_image(directory, name)}" alt="{esc(title)}">'
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    order = ranked(frame, metric, mode)
    table = pd.concat([order, frame.drop(order.index)]).head(TABLE_ROWS)
    table = table.rename(columns=lambda c: c.removeprefix(METRIC).removeprefix(PARAM))
    more = (f" (the best {TABLE_ROWS}; all {len(frame)} in trials.csv)"
            if len(frame) > TABLE_ROWS else "")
    parts.append(f"<h2>Trials, best first{more}</h2><div class=\"scroll\">")
    parts.append(table.to_html(index=False, na_rep="", escape=True, border=0,
                               float_format=lambda v: f"{v:.4g}"))
    parts.append("</div></body></html>")
    return "\n".join(parts)


def build_report(parent_run_id: str, out_dir: str | Path | None = None,
                 client: MlflowClient | None = None, top_k: int = TOP_K) -> Report:
    """Build the report of a search and log it under ``report/`` on its parent run.

    ``out_dir`` also keeps the files there. Works on a finished, failed or running search.
    """
    client = client or MlflowClient()
    trials = load_trials(client, parent_run_id)
    with tempfile.TemporaryDirectory(prefix="mltune-report-") as tmp:
        directory = Path(tmp)
        files, estimate = write_files(trials, client, directory, top_k)
        client.log_artifacts(parent_run_id, str(directory), REPORT_DIR)
        kept = None
        if out_dir is not None:
            kept = Path(out_dir)
            kept.mkdir(parents=True, exist_ok=True)
            for name in files:
                shutil.copy2(directory / name, kept / name)
    client.set_tag(parent_run_id, REPORT, f"{REPORT_DIR}/report.html")
    parent = client.get_run(parent_run_id)
    if REPORT_ERROR in parent.data.tags:  # an earlier attempt failed; this one did not
        client.delete_tag(parent_run_id, REPORT_ERROR)
    return Report(trials, kept, files, estimate, f"{parent.info.artifact_uri}/{REPORT_DIR}")
