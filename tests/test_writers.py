"""Several searches writing to one new local sqlite store at once (three local, one on Ray):
none fails creating the tables, no trial, metric or model is lost, nothing is left RUNNING, and
no trial fails for a locked database."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import all_runs, children_of, env_for_subprocess

METRICS = ("train_loss", "val_loss", "val_accuracy", "val_f1_macro", "val_roc_auc")


@pytest.mark.slow
def test_four_searches_at_once_on_one_sqlite_file_lose_nothing(tracking_uri, client):
    # the file is new (nothing touched it yet): the four also race to create MLflow's tables
    searches = {f"writer-{i}": ["--backend", "ray"] if i == 4 else [] for i in range(1, 5)}
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "mltune", "tune", "--set", "task=tabular",
             "--max-evals", "3", "--epochs", "2", "--pack", "1", "--seed", str(i),
             "--set", "pruning.rule=none",  # every trial's model written: the store's load
             "--name", name, "--registered-model", name, *extra],
            env=env_for_subprocess(tracking_uri), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        for i, (name, extra) in enumerate(searches.items(), start=1)}
    for name, process in processes.items():
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"{name}: {err[-2000:]}"
        assert "locked" not in err, name

    runs = all_runs(client)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parents = {r.info.run_name: r for r in runs if r.data.tags.get("mltune.role") == "search"}
    assert sorted(parents) == sorted(searches)
    for name, parent in parents.items():
        assert parent.info.status == "FINISHED", name
        trials = children_of(client, parent.info.run_id)
        assert [int(t.data.tags["mltune.trial"]) for t in trials] == [1, 2, 3], name
        for trial in trials:
            assert trial.info.status == "FINISHED", (name, trial.data.tags.get("mltune.error"))
            assert "mltune.model_uri" in trial.data.tags
            for metric in METRICS:  # every epoch of every metric landed
                steps = sorted(m.step for m in client.get_metric_history(trial.info.run_id,
                                                                         metric))
                assert steps == [1, 2], (name, metric)
        assert client.get_registered_model(name).name == name
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
