"""A search's trials read back from MLflow, one table row per trial, and ranked.

MLflow is asked little: the parent run, one paged ``search_runs`` for the children (their
params and final metrics come with it), and metric histories for the top trials only. Everything
after the reading works on the table alone, so it can be tested without a store.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mltune.core.errors import SpecError
from mltune.core.terms import holdout_metric
from mltune.spec.space import log_scaled_params
from mltune.tracking.links import server_address
from mltune.tracking.tags import (
    BEST_EPOCH,
    DEVICE,
    EPOCHS_RUN,
    ERROR,
    GATE,
    PRUNED,
    REGISTERED_MODEL,
    ROLE,
    SEARCH_ID,
    TRIAL,
    WARM_STARTS,
)
from mltune.tracking.tags import OBJECTIVE as OBJECTIVE_TAG

PARAM, METRIC = "params.", "metrics."  # column prefixes, as in mlflow.search_runs' frame
# What the search ranked the trial by: its metric for the weights it logged (the best epoch's
# under early stopping, the best seen before a pruned trial was stopped), not the last epoch's.
OBJECTIVE = "objective"
HEAD = ["trial", "run_id", "status", OBJECTIVE, "duration_s", "epochs", "best_epoch"]
WHERE = ["device", "start_ms", "end_ms"]  # where and when it trained (last, when known)
LOSSES = ("train_loss", "val_loss")

Curves = dict[int, dict[str, list[tuple[int, float]]]]  # trial -> metric -> (epoch, value)


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
    experiment_id: str = ""
    warm: frozenset[int] = frozenset()  # trials that trained an earlier search's best (warm)


@dataclass(frozen=True)
class SearchEnd:
    """How a search ended, as its parent run holds it: its status, the best model's scores on
    the holdout, the promotion gate's decision, the registered version.

    Read when the page is written (at a search's end, after the registration and the gate);
    ``links``: the tracking server's address, for links to run pages (None: no links).
    """

    status: str
    holdout: dict[str, float]  # test_* metrics, the search's measure first
    gate: str | None = None  # "promoted: <reason>", "kept: <reason>", "not run: <why>"
    registered: str | None = None  # "name/version"
    champion_holdout: dict[str, float] | None = None  # champion_test_*: what the gate compared
    links: str | None = None


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
    row.update({"device": tags.get(DEVICE), "start_ms": info.start_time, "end_ms": ended})
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


def trials_frame(rows: list[dict[str, Any]], metric: str) -> tuple[pd.DataFrame, list[str],
                                                                    set[str]]:
    """Rows (as ``_row`` makes them) -> the table, its param names and the categorical ones.

    Columns: the head, the metrics (the search's first), the params, the error; one row per
    trial in trial order.
    """
    frame = pd.DataFrame(rows, columns=None if rows else HEAD)
    frame = frame.sort_values("trial", kind="stable").reset_index(drop=True)
    metric_columns = sorted(c for c in frame.columns if c.startswith(METRIC))
    if METRIC + metric in metric_columns:  # the search's metric first
        metric_columns.remove(METRIC + metric)
        metric_columns.insert(0, METRIC + metric)
    param_columns = sorted(c for c in frame.columns if c.startswith(PARAM))
    where = [c for c in WHERE if c in frame.columns]
    frame = frame.reindex(columns=[*HEAD, *metric_columns, *param_columns, "error", *where])
    frame[[OBJECTIVE, "duration_s"]] = frame[[OBJECTIVE, "duration_s"]].astype(float)
    frame[["epochs", "best_epoch"]] = frame[["epochs", "best_epoch"]].astype("Int64")
    names = [c.removeprefix(PARAM) for c in param_columns]
    return frame, names, _tidy(frame, names)


def search_end(parent: Run, status: str | None = None, links: str | None = None) -> SearchEnd:
    """The end of the search ``parent`` is the run of; ``status`` overrides the run's (the
    search writes its report just before it closes its run)."""
    metrics, tags = parent.data.metrics, parent.data.tags
    first = holdout_metric(parent.data.params.get("spec.metric", ""))
    holdout = {k: v for k, v in sorted(metrics.items(), key=lambda kv: (kv[0] != first, kv[0]))
               if k.startswith("test_")}
    champion = {k.removeprefix("champion_"): v for k, v in metrics.items()
                if k.startswith("champion_test_")}
    return SearchEnd(status or parent.info.status, holdout, tags.get(GATE),
                     tags.get(REGISTERED_MODEL), champion or None, links)


def load_end(client: MlflowClient, parent_run_id: str,
             status: str | None = None) -> tuple[SearchEnd, Run]:
    """The search's end as its parent run holds it now (and the run)."""
    parent = client.get_run(parent_run_id)
    return search_end(parent, status, server_address(client.tracking_uri)), parent


def load_trials(client: MlflowClient, parent_run_id: str) -> SearchTrials:
    """The search's trials table, from the parent run and its children."""
    parent = _parent(client, parent_run_id)
    params = parent.data.params
    metric, mode = params["spec.metric"], params.get("spec.mode", "max")
    space = {k.removeprefix("spec.space."): _json(v) for k, v in params.items()
             if k.startswith("spec.space.")}
    rows = [_row(run, metric) for run in _children(client, parent)]
    frame, names, categorical = trials_frame(rows, metric)
    log_scale = {n for n in log_scaled_params(space) if n in names and n not in categorical}
    return SearchTrials(parent_run_id, parent.info.run_name or parent_run_id,
                        parent.info.status, metric, mode, frame, names, categorical, log_scale,
                        parent.info.experiment_id,
                        warm_trials(frame, _warm_starts(parent), categorical))


def _warm_starts(parent: Run) -> list[dict[str, Any]]:
    """The earlier searches' best configurations a warm-started search trained first (its
    ``mltune.warm_start.points`` tag); none for any other search."""
    try:
        starts = json.loads(parent.data.tags.get(WARM_STARTS, "[]"))
    except ValueError:
        return []
    return [p for p in starts if isinstance(p, dict)] if isinstance(starts, list) else []


def warm_trials(frame: pd.DataFrame, starts: list[dict[str, Any]],
                categorical: set[str]) -> frozenset[int]:
    """The trials of the table whose params are one of ``starts`` (decoded points)."""

    def same(row: pd.Series, point: dict[str, Any]) -> bool:
        for key, value in point.items():
            cell = row.get(PARAM + key)
            if key in categorical or isinstance(value, str) or isinstance(value, bool):
                if cell != str(value):
                    return False
            elif pd.isna(cell) or not math.isclose(float(cell), float(value), rel_tol=1e-9):
                return False
        return True

    return frozenset(int(row["trial"]) for _, row in frame.iterrows()
                     if any(same(row, point) for point in starts))


def ranked(frame: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Finished trials with the metric, best first (the earlier trial wins a tie).

    A running or stopped trial's metric is not final, so it is not ranked.
    """
    scored = frame[frame[OBJECTIVE].notna() & (frame["status"] == "FINISHED")]
    return scored.sort_values([OBJECTIVE, "trial"], ascending=[mode == "min", True],
                              kind="stable")


def finished(trials: SearchTrials) -> pd.DataFrame:
    """The ranked trials in trial order: what the plots and the importance compare."""
    return ranked(trials.frame, trials.metric, trials.mode).sort_values("trial")


def histories(client: MlflowClient, top: pd.DataFrame, metric: str) -> Curves:
    """Per-epoch values of the metric and the losses, for the given trials only."""
    keys = list(dict.fromkeys([metric, *LOSSES]))
    curves: Curves = {}
    for _, row in top.iterrows():
        curves[int(row["trial"])] = {
            key: sorted((m.step, m.value) for m in client.get_metric_history(row["run_id"], key))
            for key in keys if pd.notna(row.get(METRIC + key))
        }
    return curves
