"""The MLflow UI as mltune's front end: what a user finds after one search on a real server.

One search (2 trials, 1 epoch) against a real ``mlflow server`` on 127.0.0.1, run through the
CLI, serves every test: the API shows what the UI reads (the experiment's kind, the splits as
datasets, the trials' LoggedModels ranked by the search's metric, the parent's description),
and headless Chromium renders the pages a user opens (skipped, with the reason, without it).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import tracking_store
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mltune.cli import main

EXPERIMENT = "ui-digits"
NAME = "digits-ui"
SPEC = ["--max-evals", "2", "--epochs", "1", "--name", NAME, "--set", "space.channels=16",
        "--set", "space.hidden_size=64", "--set", "space.num_blocks=1",
        "--set", "space.batch_size=128", "--set", "registered_model=mltune-ui"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="Chromium not found (Debian package chromium)")


@dataclass
class Searched:
    url: str  # the server's
    client: MlflowClient
    printed: str  # what `mltune tune` printed
    experiment_id: str
    parent: Run
    trials: list[Run]


@pytest.fixture(scope="module")
def searched(plain_server) -> Searched:
    with tracking_store(plain_server.url, {"MLFLOW_EXPERIMENT_NAME": EXPERIMENT}):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            main(["tune", *SPEC])
        client = MlflowClient(plain_server.url, plain_server.url)
        experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
        (parent,) = client.search_runs([experiment_id], "tags.`mltune.role` = 'search'")
        trials = sorted(client.search_runs([experiment_id], "tags.`mltune.role` = 'trial'"),
                        key=lambda r: int(r.data.tags["mltune.trial"]))
        return Searched(plain_server.url, client, out.getvalue(), experiment_id, parent,
                        trials)


def browse_url(printed: str) -> str:
    found = re.search(r"^Browse: (\S+)$", printed, re.M)
    assert found, printed
    return found.group(1)


def test_experiment_opens_on_model_training_runs_and_the_summary_prints_that_page(searched):
    experiment = searched.client.get_experiment(searched.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert browse_url(searched.printed) == (
        f"{searched.url}/#/experiments/{searched.experiment_id}/runs"
        "?workflowType=machine_learning")
    assert "mlflow ui" not in searched.printed  # the server serves the UI already


def test_splits_are_datasets_with_the_data_fingerprint_as_digest(searched):
    fingerprint = searched.parent.data.tags["mltune.data_fingerprint"]

    def inputs(run: Run) -> dict[str, tuple[str, str, dict, dict]]:
        found = {}
        for item in run.inputs.dataset_inputs:
            context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
            d = item.dataset
            found[context] = (d.name, d.digest, json.loads(d.source), json.loads(d.profile))
        return found

    parent = inputs(searched.parent)
    assert {c: (n, g) for c, (n, g, _, _) in parent.items()} == {
        "training": ("digits-train", fingerprint), "validation": ("digits-validation", fingerprint),
        "test": ("digits-test", fingerprint)}
    assert all(source == {"uri": "sklearn:digits"} for _, _, source, _ in parent.values())
    rows = {c: profile["num_rows"] for c, (_, _, _, profile) in parent.items()}
    assert sum(rows.values()) == 1797  # scikit-learn's digits, split three ways
    assert rows["training"] > rows["validation"] > 0 and rows["test"] > 0
    for trial in searched.trials:
        assert inputs(trial) == {c: parent[c] for c in ("training", "validation")}


def test_trial_models_are_named_after_the_search_and_ranked_by_its_metric(searched):
    client = searched.client
    models = client.search_logged_models(
        [searched.experiment_id],
        order_by=[{"field_name": "metrics.val_accuracy", "ascending": False,
                   "dataset_name": "digits-validation"}])
    by_run = {t.info.run_id: t for t in searched.trials}
    assert sorted(m.name for m in models) == [f"{NAME}-trial-0001", f"{NAME}-trial-0002"]
    best_id = searched.parent.data.tags["mltune.best_run_id"]
    assert models[0].source_run_id == best_id  # the best trial's model first
    fingerprint = searched.parent.data.tags["mltune.data_fingerprint"]
    for model in models:
        trial = by_run[model.source_run_id]
        assert model.name == f"{NAME}-{trial.info.run_name}"
        assert model.params == trial.data.params  # the decoded params: names, not indices
        assert model.params["optimizer"] in {"adam", "adamw", "sgd", "rmsprop"}
        linked = {m.key: m for m in model.metrics}
        assert linked["val_accuracy"].value == trial.data.metrics["val_accuracy"]
        assert (linked["val_accuracy"].dataset_name, linked["val_accuracy"].dataset_digest) == (
            "digits-validation", fingerprint)
        assert linked["train_loss"].dataset_name == "digits-train"
        # linking added no point to the run's curves
        assert len(client.get_metric_history(trial.info.run_id, "val_accuracy")) == 1
    version = client.get_model_version_by_alias("mltune-ui", "champion")
    assert version.source == f"models:/{models[0].model_id}"  # the registered one is the same


def test_parent_run_description_summarises_the_result(searched):
    parent = searched.parent
    note = parent.data.tags["mlflow.note.content"]
    best_id = parent.data.tags["mltune.best_run_id"]
    best = next(t for t in searched.trials if t.info.run_id == best_id)
    link = f"{searched.url}/#/experiments/{searched.experiment_id}/runs/{best_id}"
    assert f"[{best.info.run_name}]({link})" in note
    assert f"val_accuracy **{best.data.metrics['val_accuracy']:.4f}** (validation)" in note
    assert f"test_accuracy **{parent.data.metrics['test_accuracy']:.4f}** (holdout)" in note
    assert "**Gate:** mltune-ui: promoted v1 to champion: first version" in note
    assert (f"**Registered:** `mltune-ui` version 1, {best.info.run_name}'s model (aliases: "
            "challenger, champion)") in note
    assert "**Report:** `report/report.html`" in note


def test_report_says_finished_and_links_run_ids_to_their_pages(searched, tmp_path):
    parent = searched.parent
    page = Path(searched.client.download_artifacts(parent.info.run_id, "report/report.html",
                                                   str(tmp_path))).read_text()
    assert "The search finished" in page
    assert f"test_accuracy = {parent.data.metrics['test_accuracy']:.4g}" in page
    assert "promoted: first version: no champion yet" in page and "mltune-ui version 1" in page
    for run in [parent, *searched.trials]:
        url = f"{searched.url}/#/experiments/{searched.experiment_id}/runs/{run.info.run_id}"
        assert f'<a href="{url}"><code>{run.info.run_id}</code></a>' in page


def dom(url: str, profile: Path, expected: list[str]) -> str:
    """The page at ``url`` as headless Chromium renders it (a wide window: the UI's tables
    draw only the columns in view). The UI fetches its data after it loads: a budget that
    ends before the data came is doubled, up to a limit."""
    text = ""
    for budget in (8000, 16000, 32000):
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=3200,1400",
             f"--virtual-time-budget={budget}", "--dump-dom", url],
            capture_output=True, text=True, timeout=180)
        text = done.stdout
        if all(word in visible(text) for word in expected):
            break
    return text


def visible(page: str) -> str:
    """A page's text as it reads: no scripts, styles or tags, spaces collapsed."""
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


@needs_chromium
def test_the_printed_url_opens_the_runs_page_with_the_search_and_its_datasets(searched,
                                                                             tmp_path):
    page = dom(browse_url(searched.printed), tmp_path / "profile", [NAME, "digits-train"])
    assert f"<title>Runs - Experiment {searched.experiment_id} - MLflow" in page  # not GenAI's
    text = visible(page)
    assert NAME in text  # the parent run's row
    fingerprint = searched.parent.data.tags["mltune.data_fingerprint"]
    for name, context in [("digits-train", "training"), ("digits-validation", "validation"),
                          ("digits-test", "test")]:  # the Dataset column
        assert f"{name} ({fingerprint}) {context}" in text


@needs_chromium
def test_models_page_lists_the_trials_models_with_the_search_metric(searched, tmp_path):
    url = (f"{searched.url}/#/experiments/{searched.experiment_id}/models"
           "?workflowType=machine_learning")
    names = [f"{NAME}-trial-0001", f"{NAME}-trial-0002"]
    page = dom(url, tmp_path / "profile", [*names, "val_accuracy"])
    assert all(name in page for name in names)
    assert "val_accuracy" in page and "digits-validation" in page
    best = max(searched.trials, key=lambda t: t.data.metrics["val_accuracy"])
    assert repr(best.data.metrics["val_accuracy"]) in page  # the value in its column


@needs_chromium
def test_parent_run_page_shows_the_description(searched, tmp_path):
    url = (f"{searched.url}/#/experiments/{searched.experiment_id}/runs/"
           f"{searched.parent.info.run_id}?workflowType=machine_learning")
    page = dom(url, tmp_path / "profile", ["Best trial:", "Registered:"])
    text = visible(page)
    assert "Best trial:" in text and "Gate:" in text
    assert "Registered:" in text and "mltune-ui" in text


@needs_chromium
def test_a_trials_model_metrics_tab_charts_its_metrics(searched, tmp_path):
    trial = searched.trials[0]
    name = trial.info.run_name
    url = (f"{searched.url}/#/experiments/{searched.experiment_id}/runs/{trial.info.run_id}"
           "/model-metrics?workflowType=machine_learning")
    charts = [f"{name} ({key})" for key in ("train_loss", "val_loss", "val_accuracy",
                                             "val_f1_macro")]
    text = visible(dom(url, tmp_path / "profile", charts))
    assert "Model metrics (4)" in text
    assert all(chart in text for chart in charts)  # each chart's legend: drawn, not empty
