"""refit: true: the best configuration trained again on train + validation, registered and
gated instead of its trial's model; against a real sqlite store, with real training."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from conftest import all_runs, run_cli
from sklearn.datasets import load_breast_cancer
from test_images import shapes_folder

import mltune
from mltune.core.errors import SpecError
from mltune.report.trials import load_trials
from mltune.search.history.result import SearchResult
from mltune.search.packs.driver import Driver
from mltune.search.selection import refit as refit_module
from mltune.tasks import get_task

TINY = {"task": "tabular", "max_evals": 3, "epochs": 2, "seed": 0, "pruning": {"rule": "none"}}
NAME = "mltune-tabular"


def search(**overrides) -> SearchResult:
    return mltune.tune(mltune.load_spec(None, {**TINY, **overrides}))


def children(client, parent_id: str) -> list:
    return [r for r in all_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent_id]


def test_refit_trains_on_train_and_validation_and_is_what_is_registered(client):
    result = search(refit=True)
    runs = children(client, result.parent_run_id)
    refits = [r for r in runs if r.data.tags["mltune.role"] == "refit"]
    trials = [r for r in runs if r.data.tags["mltune.role"] == "trial"]
    assert len(refits) == 1 and len(trials) == 3
    refit = refits[0]
    best = client.get_run(result.best.run_id)

    # a child of the search, not a trial: named refit, its trial's params, no trial number
    assert refit.info.run_name == "refit" and refit.info.status == "FINISHED"
    tags = refit.data.tags
    assert tags["mltune.refit_of"] == result.best.run_id
    assert "mltune.trial" not in tags
    assert tags["mltune.val_is_train"] == "true"
    assert "mltune.objective" not in tags  # it has no validation score of its own
    assert refit.data.params == best.data.params
    assert result.refit.run_id == refit.info.run_id

    # trained on the training and validation rows, for the epochs its trial chose
    data = get_task("tabular").load(result.spec.data, result.spec.seed)
    rows = len(data.x_train) + len(data.x_val)
    assert tags["mltune.train_rows"] == str(rows)
    assert int(tags["mltune.epochs_run"]) == int(best.data.tags["mltune.best_epoch"])
    inputs = refit.inputs.dataset_inputs
    contexts = {i.dataset.name: {t.key: t.value for t in i.tags}["mlflow.data.context"]
                for i in inputs}
    assert contexts == {"breast_cancer-train": "training",
                        "breast_cancer-validation": "training"}
    history = client.get_metric_history(refit.info.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == list(range(1, result.refit.epochs + 1))

    # the registered version is the refit's model, says so, and was gated on the holdout
    version = client.get_model_version_by_alias(NAME, "challenger")
    assert version.run_id == refit.info.run_id
    assert version.source == tags["mltune.model_uri"]
    assert version.tags["mltune.refit_of"] == result.best.run_id
    assert version.tags["mltune.run_id"] == refit.info.run_id
    assert f"refit on train + validation of trial {result.best.number}" in (
        version.description.lower())
    assert version.tags["mltune.holdout_score"]  # the gate scored the refit's model
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["mltune.refit_run_id"] == refit.info.run_id
    assert parent.data.tags["mltune.best_run_id"] == result.best.run_id
    note = parent.data.tags["mlflow.note.content"]
    assert "**Refit:**" in note and "the refit's model" in note

    # it serves
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    answer = mlflow.pyfunc.load_model(f"models:/{NAME}@challenger").predict(features[:20])
    assert set(answer["label"]) <= {"benign", "malignant"}
    np.testing.assert_allclose(answer[["proba_benign", "proba_malignant"]].sum(axis=1), 1.0,
                               rtol=1e-5)

    # the report and a resumed search see three trials; the resume's next trial is number 4
    assert sorted(load_trials(client, result.parent_run_id).frame["trial"]) == [1, 2, 3]
    resumed = mltune.tune(mltune.load_spec(None, {**TINY, "refit": True, "max_evals": 4}),
                          resume=result.parent_run_id)
    assert sorted(t.number for t in resumed.trials) == [1, 2, 3, 4]
    assert sorted(load_trials(client, result.parent_run_id).frame["trial"]) == [1, 2, 3, 4]


def test_without_refit_the_best_trials_model_is_registered_as_before(client):
    result = search()
    assert result.spec.refit is False
    runs = children(client, result.parent_run_id)
    assert {r.data.tags["mltune.role"] for r in runs} == {"trial"}
    version = client.get_model_version_by_alias(NAME, "challenger")
    assert version.run_id == result.best.run_id
    assert "mltune.refit_of" not in version.tags
    assert "mltune.refit_run_id" not in client.get_run(result.parent_run_id).data.tags


def test_a_failed_refit_registers_the_best_trial_and_says_why(client, monkeypatch):
    class Broken(Driver):  # the refit's network cannot be built
        def build(self, number, params):
            raise RuntimeError("no memory left for the refit")

    monkeypatch.setattr(refit_module, "Driver", Broken)
    result = search(refit=True)
    assert result.refit is not None and result.refit.run_id is None
    assert result.refit.error == (f"the refit of trial {result.best.number} failed: "
                                  "RuntimeError: no memory left for the refit")
    refit = [r for r in children(client, result.parent_run_id)
             if r.data.tags["mltune.role"] == "refit"]
    assert [r.info.status for r in refit] == ["FAILED"]
    version = client.get_model_version_by_alias(NAME, "challenger")
    assert version.run_id == result.best.run_id
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.refit_error"] == result.refit.error
    assert "Refit:** failed" in parent.data.tags["mlflow.note.content"]


def test_refit_on_streamed_images_is_refused_before_any_run(tmp_path, client, capsys):
    folder = shapes_folder(tmp_path / "shapes", per_class=6)
    code, _, err = run_cli(["tune", "--set", "task=image", "--set", f"data.source={folder}",
                            "--set", "data.memory_budget_mb=0.01", "--set", "data.workers=0",
                            "--max-evals", "1", "--epochs", "1", "--refit"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("mltune: error: refit: true is not allowed for this data: it "
                                "is streamed from disk")
    assert all_runs(client) == []


def test_refit_is_a_boolean_spec_key_off_by_default():
    assert mltune.load_spec(None, {"refit": True}).refit is True
    assert mltune.load_spec(None, {}).refit is False
    with pytest.raises(SpecError, match=r"^refit: 'yes' is not allowed; expected true or "
                                        r"false$"):
        mltune.load_spec(None, {"refit": "yes"})


def test_the_cli_summary_says_the_refit_was_registered(tracking_uri, client, capsys):
    code, out, _ = run_cli(["tune", "--set", "task=tabular", "--set", "pruning.rule=none",
                            "--max-evals", "2", "--epochs", "1", "--refit"], capsys)
    assert code == 0
    refit = next(r for r in all_runs(client) if r.data.tags.get("mltune.role") == "refit")
    assert f"(run {refit.info.run_id}): its model is the one registered" in out
    assert client.get_model_version_by_alias(NAME, "challenger").run_id == refit.info.run_id
