"""The search at a glance: a trials table, plots and ``report.html`` on the parent run.

Everything is read back from MLflow (``trials``), so the report can be rebuilt at any time
(``mltune report PARENT_RUN_ID``), also while the search runs. Each figure's data is computed,
drawn (``plots``, ``importance``) and saved as a PNG file; the page (``html``) embeds the same
images, and the files are logged under ``report/`` on the parent run.
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
    SearchTrials,
    finished,
    histories,
    load_trials,
    ranked,
    typed,
)
from mltune.tracking.tags import REPORT, REPORT_ERROR

if TYPE_CHECKING:
    from mltune.report.importance import Importance

# Names callers imported from here before the report was split into modules.
__all__ = ["METRIC", "OBJECTIVE", "PARAM", "REPORT_DIR", "TOP_K", "Report", "SearchTrials",
           "build_report", "histories", "load_trials", "outcomes_frame", "ranked",
           "top_trials_text", "typed", "write_files"]

REPORT_DIR = "report"  # artifact folder on the parent run


@dataclass(frozen=True)
class Report:
    """What was written: files by name (in ``directory`` and under ``report/`` on the run)."""

    trials: SearchTrials
    directory: Path | None
    files: list[str]
    importance: Importance
    artifact_uri: str


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_files(trials: SearchTrials, client: MlflowClient, directory: Path,
                top_k: int = TOP_K) -> tuple[list[str], Importance]:
    """The table, the plots and the page in ``directory``; returns the file names, page last."""
    from mltune.report import plots  # matplotlib and scikit-learn: imported when a report is made
    from mltune.report.importance import importance

    frame, metric, mode = trials.frame, trials.metric, trials.mode
    frame.to_csv(directory / "trials.csv", index=False)
    frame.to_parquet(directory / "trials.parquet", index=False)
    files = ["trials.csv", "trials.parquet"]
    sections: list[Section] = []

    def add(fig: Any, name: str, title: str, caption: str = "") -> None:
        png = _png(fig)
        (directory / name).write_bytes(png)
        files.append(name)
        sections.append(Section(title, caption, png))

    add(plots.draw_history(plots.history_info(frame, metric, mode)), "optimisation_history.png",
        "Optimisation history", "Did the search converge: each trial's final "
        f"{metric} and the best so far.")
    compared = finished(trials)
    estimate = importance(compared[[PARAM + p for p in trials.params]].rename(
        columns=lambda c: c.removeprefix(PARAM)), compared[OBJECTIVE], sorted(trials.categorical))
    if estimate.values is not None:
        values = estimate.values
        values.rename_axis("param").rename("importance").to_csv(directory / "importance.csv")
        files.append("importance.csv")
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
    page = render_html(trials, sections)
    (directory / "report.html").write_text(page, encoding="utf-8")
    files.append("report.html")
    return files, estimate


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
