"""The search at a glance: a trials table, plots and ``report.html`` on the parent run.

Everything is read back from MLflow (``trials``), so the report can be rebuilt at any time
(``mltune report PARENT_RUN_ID``), also while the search runs. It is made in two halves:
``draw_report`` reads the trials and draws every figure (the slow half: each PNG costs a
matplotlib render), ``publish_report`` reads how the search ended (status, holdout scores, the
gate's decision, the registered version), writes the page around the same images and logs the
files under ``report/`` on the parent run. A search draws while its best model is registered
and gated, and publishes once that is done; ``build_report`` does both at once.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.tracking import MlflowClient

from mltune.report.console import TOP_K, outcomes_frame, top_trials_text
from mltune.report.html import Section, render_html
from mltune.report.trials import (
    METRIC,
    OBJECTIVE,
    PARAM,
    SearchEnd,
    SearchTrials,
    finished,
    histories,
    load_end,
    load_trials,
    ranked,
    typed,
)
from mltune.tracking.tags import REPORT, REPORT_ERROR

if TYPE_CHECKING:
    from mltune.report.importance import Importance

# Names callers imported from here before the report was split into modules.
__all__ = ["METRIC", "OBJECTIVE", "PARAM", "REPORT_DIR", "TOP_K", "Drawn", "Report",
           "SearchTrials", "build_report", "draw_report", "histories", "load_trials",
           "outcomes_frame", "publish_report", "ranked", "top_trials_text", "typed",
           "write_files"]

REPORT_DIR = "report"  # artifact folder on the parent run


@dataclass(frozen=True)
class Report:
    """What was written: files by name (in ``directory`` and under ``report/`` on the run)."""

    trials: SearchTrials
    directory: Path | None
    files: list[str]
    importance: Importance
    artifact_uri: str
    end: SearchEnd | None = None


@dataclass(frozen=True)
class Drawn:
    """The first half of a report: the trials and every file but the page, in memory."""

    trials: SearchTrials
    files: dict[str, bytes]  # name -> content, in the order they were made
    sections: list[Section]  # the page's figures
    importance: Importance


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def draw(trials: SearchTrials, client: MlflowClient, top_k: int = TOP_K) -> Drawn:
    """The table (CSV, parquet), the importance estimate and every figure of the page."""
    from mltune.report import plots  # matplotlib and scikit-learn: imported when a report is made
    from mltune.report.importance import importance
    from mltune.report.timeline import draw_timeline, timeline_info

    frame, metric, mode = trials.frame, trials.metric, trials.mode
    files: dict[str, bytes] = {"trials.csv": frame.to_csv(index=False).encode()}
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    files["trials.parquet"] = buffer.getvalue()
    sections: list[Section] = []

    def add(fig: Any, name: str, title: str, caption: str = "") -> None:
        files[name] = png = _png(fig)
        sections.append(Section(title, caption, png))

    add(plots.draw_history(plots.history_info(frame, metric, mode)), "optimisation_history.png",
        "Optimisation history", "Did the search converge: each trial's final "
        f"{metric} and the best so far.")
    compared = finished(trials)
    estimate = importance(compared[[PARAM + p for p in trials.params]].rename(
        columns=lambda c: c.removeprefix(PARAM)), compared[OBJECTIVE], sorted(trials.categorical))
    if estimate.values is not None:
        values = estimate.values
        files["importance.csv"] = values.rename_axis("param").rename(
            "importance").to_csv().encode()
        add(plots.draw_importance(plots.importance_info(values, metric, estimate.trials)),
            "importance.png", "Hyperparameter importance", "A random forest fitted on the "
            "finished trials (impurity importance); with few trials, a hint rather than a "
            "measurement.")
    else:
        sections.append(Section("Hyperparameter importance", f"Not estimated: {estimate.reason}."))
    add(plots.draw_parallel(plots.parallel_info(compared, trials.params, trials.categorical,
                                                trials.log_scale, metric, mode)),
        "parallel_coordinates.png", "Parallel coordinates", "What the best trials have in common.")
    top = ranked(frame, metric, mode).head(top_k)
    if not top.empty:
        curves = plots.curves_info(histories(client, top, metric), metric, frame)
        add(plots.draw_curves(curves), "learning_curves.png",
            f"Learning curves of the top {len(top)} trials")
    if trials.params:
        add(plots.draw_slices(plots.slices_info(compared, trials.params, trials.categorical,
                                                trials.log_scale, metric, mode)), "slices.png",
            f"Slices: {metric} against each hyperparameter",
            "One panel per hyperparameter; colour is the trial number (later = lighter): "
            "where the search went, and where the good trials are.")
    timeline = timeline_info(frame)
    if timeline is not None:
        add(draw_timeline(timeline), "timeline.png", "Trials per device over time",
            "One bar per trial, one row per device (or Ray worker) it trained on: whether "
            "every device was kept busy.")
    return Drawn(trials, files, sections, estimate)


def write_files(trials: SearchTrials, client: MlflowClient, directory: Path,
                top_k: int = TOP_K, end: SearchEnd | None = None
                ) -> tuple[list[str], Importance]:
    """The table, the plots and the page in ``directory``; returns the file names, page last."""
    drawn = draw(trials, client, top_k)
    return _write(drawn, directory, end), drawn.importance


def _write(drawn: Drawn, directory: Path, end: SearchEnd | None) -> list[str]:
    for name, content in drawn.files.items():
        (directory / name).write_bytes(content)
    page = render_html(drawn.trials, drawn.sections, end)
    (directory / "report.html").write_text(page, encoding="utf-8")
    return [*drawn.files, "report.html"]


def draw_report(parent_run_id: str, client: MlflowClient | None = None,
                top_k: int = TOP_K) -> Drawn:
    """The first half of a search's report: its trials read back and every figure drawn."""
    client = client or MlflowClient()
    return draw(load_trials(client, parent_run_id), client, top_k)


def publish_report(drawn: Drawn, client: MlflowClient | None = None,
                   out_dir: str | Path | None = None, status: str | None = None) -> Report:
    """The second half: how the search ended read from its parent run (``status`` given: the
    status its run is about to get), the page written, the files logged under ``report/``.

    ``out_dir`` also keeps the files there.
    """
    client = client or MlflowClient()
    run_id = drawn.trials.run_id
    end, parent = load_end(client, run_id, status)
    with tempfile.TemporaryDirectory(prefix="mltune-report-") as tmp:
        directory = Path(tmp)
        files = _write(drawn, directory, end)
        client.log_artifacts(run_id, str(directory), REPORT_DIR)
        kept = None
        if out_dir is not None:
            kept = Path(out_dir)
            kept.mkdir(parents=True, exist_ok=True)
            for name in files:
                shutil.copy2(directory / name, kept / name)
    client.set_tag(run_id, REPORT, f"{REPORT_DIR}/report.html")
    if REPORT_ERROR in parent.data.tags:  # an earlier attempt failed; this one did not
        client.delete_tag(run_id, REPORT_ERROR)
    return Report(drawn.trials, kept, files, drawn.importance,
                  f"{parent.info.artifact_uri}/{REPORT_DIR}", end)


def build_report(parent_run_id: str, out_dir: str | Path | None = None,
                 client: MlflowClient | None = None, top_k: int = TOP_K) -> Report:
    """Build the report of a search and log it under ``report/`` on its parent run.

    ``out_dir`` also keeps the files there. Works on a finished, failed or running search.
    """
    client = client or MlflowClient()
    return publish_report(draw_report(parent_run_id, client, top_k), client, out_dir)
