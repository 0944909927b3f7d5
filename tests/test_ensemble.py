"""ensemble: N: the registered model averages trials chosen by greedy ensemble selection;
against a real sqlite store, with real training."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import all_runs, run_cli
from sklearn.datasets import load_breast_cancer
from test_timeseries import HORIZON, SPACE, seasonal, write

import mltune
from mltune.cli import tune_command
from mltune.core.errors import SpecError
from mltune.report.trials import load_trials
from mltune.search.history.result import SearchResult
from mltune.tasks import get_task
from mltune.tracking import tracker as tracker_module
from mltune.tracking.model import BadInput

# seed 1: two trials, one chosen twice; seed 0: one trial far better than the rest, alone
SEARCH = {"task": "tabular", "max_evals": 6, "epochs": 2, "seed": 1, "pack": 1,
          "pruning": {"rule": "none"}, "metric": "val_loss"}
NAME = "mltune-tabular"
PROBA = ["proba_benign", "proba_malignant"]


def search(**overrides) -> SearchResult:
    return mltune.tune(mltune.load_spec(None, {**SEARCH, **overrides}))


def children(client, parent_id: str) -> list:
    return [r for r in all_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent_id]


def refusal(model, rows: pd.DataFrame) -> str:
    with pytest.raises(BadInput) as caught:
        model.predict(rows)
    return str(caught.value)


def test_an_ensemble_of_trials_is_registered_and_served_as_their_weighted_average(client):
    result = search(ensemble=3)
    runs = children(client, result.parent_run_id)
    ensembles = [r for r in runs if r.data.tags["mltune.role"] == "ensemble"]
    trials = [r for r in runs if r.data.tags["mltune.role"] == "trial"]
    assert len(trials) == 6 and len(ensembles) == 1
    ensemble = ensembles[0]
    tags = ensemble.data.tags
    assert ensemble.info.run_name == "ensemble" and ensemble.info.status == "FINISHED"
    assert "mltune.trial" not in tags
    assert result.ensemble.run_id == ensemble.info.run_id

    # members and weights: at most 3 additions, weights sum to 1, every member a trial
    members = json.loads(tags["mltune.ensemble.members"])
    assert members == result.ensemble.members
    assert 2 <= len(members) <= 3
    assert sum(m["weight"] for m in members) == pytest.approx(1.0)
    by_run = {t.run_id: t for t in result.trials}
    assert all(by_run[m["run_id"]].number == m["trial"] for m in members)
    assert ensemble.data.metrics["val_loss"] == pytest.approx(result.ensemble.value)
    assert result.ensemble.value <= result.best_value + 1e-6  # selection never worsens it

    # the registered version is its model, lists its members, and was gated
    version = client.get_model_version_by_alias(NAME, "challenger")
    assert version.run_id == ensemble.info.run_id
    assert json.loads(version.tags["mltune.ensemble.members"]) == members
    for m in members:
        assert f"trial {m['trial']}" in version.description
    assert version.tags["mltune.holdout_score"]
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["mltune.ensemble_run_id"] == ensemble.info.run_id
    assert "**Ensemble:**" in parent.data.tags["mlflow.note.content"]

    # served: the weighted average of its members' served probabilities
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")[:12]
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@challenger")
    answer = served.predict(features)
    singles = [mlflow.pyfunc.load_model(by_run[m["run_id"]].model_uri) for m in members]
    expected = sum(m["weight"] * single.predict(features)[PROBA].to_numpy()
                   for m, single in zip(members, singles, strict=True))
    np.testing.assert_allclose(answer[PROBA].to_numpy(), expected, atol=1e-5)
    assert list(answer.columns) == list(singles[0].predict(features).columns)
    labels = np.where(expected.argmax(axis=1) == 0, "benign", "malignant")
    assert list(answer["label"]) == list(labels)

    # and a bad row is refused exactly as a single model refuses it
    bad = features[:2].drop(columns=features.columns[0])
    message = refusal(served, bad)
    assert message == refusal(singles[0], bad) and features.columns[0] in message

    # the report and a resume see the six trials only
    assert sorted(load_trials(client, result.parent_run_id).frame["trial"]) == [1, 2, 3, 4, 5, 6]
    resumed = mltune.tune(mltune.load_spec(None, {**SEARCH, "ensemble": 3, "max_evals": 7}),
                          resume=result.parent_run_id)
    assert sorted(t.number for t in resumed.trials) == [1, 2, 3, 4, 5, 6, 7]
    assert sorted(load_trials(client, result.parent_run_id).frame["trial"]) == list(range(1, 8))


def test_an_ensemble_of_one_registers_the_best_trial_as_without_ensemble(client):
    result = search(ensemble=3, seed=0)
    assert [m["trial"] for m in result.ensemble.members] == [result.best.number]
    assert result.ensemble.run_id is None and result.ensemble.error is None
    runs = children(client, result.parent_run_id)
    assert {r.data.tags["mltune.role"] for r in runs} == {"trial"}
    version = client.get_model_version_by_alias(NAME, "challenger")
    assert version.run_id == result.best.run_id
    assert "mltune.ensemble.members" not in version.tags


def test_without_ensemble_the_best_trials_model_is_registered_as_before(client):
    result = search(max_evals=3)
    assert result.spec.ensemble is None
    runs = children(client, result.parent_run_id)
    assert {r.data.tags["mltune.role"] for r in runs} == {"trial"}
    version = client.get_model_version_by_alias(NAME, "challenger")
    assert version.run_id == result.best.run_id
    assert "mltune.ensemble.members" not in version.tags
    assert result.ensemble is None


def test_ensemble_is_a_whole_number_spec_key_off_by_default():
    assert mltune.load_spec(None, {}).ensemble is None
    assert mltune.load_spec(None, {"ensemble": 5}).ensemble == 5
    assert mltune.load_spec(None, {"ensemble": 1}).ensemble == 1  # the best trial alone
    for value in (0, -1):
        with pytest.raises(SpecError) as caught:
            mltune.load_spec(None, {"ensemble": value})
        assert str(caught.value) == (f"ensemble: {value} is not allowed; expected a whole "
                                     "number >= 1")


def test_the_cli_takes_ensemble_and_an_empty_value_as_not_given(tracking_uri, client, capsys):
    code, out, err = run_cli(["tune", "--set", "task=tabular", "--set", "pruning.rule=none",
                              "--max-evals", "2", "--epochs", "1", "--ensemble", "2"], capsys)
    assert code == 0, err
    parent = next(r for r in all_runs(client) if r.data.tags.get("mltune.role") == "search")
    assert parent.data.params["spec.ensemble"] == "2"
    ensemble = [r for r in all_runs(client) if r.data.tags.get("mltune.role") == "ensemble"]
    if ensemble:  # two trials of one epoch: their average may or may not beat the best
        assert f"(run {ensemble[0].info.run_id}): its model is the one registered" in out
    else:
        assert "Ensemble: no trial added to the best improved it" in out
    option = next(p for p in tune_command.params if p.name == "ensemble")
    assert option.type.convert("", option, None) is None  # MLproject's default: not given


def test_with_refit_each_ensemble_member_is_refit_and_the_refits_are_averaged(client):
    result = search(ensemble=3, refit=True)
    runs = children(client, result.parent_run_id)
    members = result.ensemble.members
    refits = {r.info.run_id: r for r in runs if r.data.tags["mltune.role"] == "refit"}
    assert sorted(r.data.tags["mltune.role"] for r in runs) == (
        ["ensemble"] + ["refit"] * len(members) + ["trial"] * 6)
    assert result.refit is None  # no separate refit
    data = get_task("tabular").load(result.spec.data, result.spec.seed)
    for member in members:  # each member's configuration trained again on train + validation
        refit = refits[member["refit_run_id"]]
        assert refit.data.tags["mltune.refit_of"] == member["run_id"]
        assert refit.data.tags["mltune.train_rows"] == str(len(data.x_train) + len(data.x_val))
    version = client.get_model_version_by_alias(NAME, "challenger")
    assert version.run_id == result.ensemble.run_id
    assert "each member refit on train + validation" in (
        client.get_run(result.parent_run_id).data.tags["mlflow.note.content"])
    # served: the refits' networks averaged with the selection's weights
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")[:12]
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@challenger").predict(features)
    singles = [mlflow.pyfunc.load_model(refits[m["refit_run_id"]].data.tags["mltune.model_uri"])
               for m in members]
    expected = sum(m["weight"] * single.predict(features)[PROBA].to_numpy()
                   for m, single in zip(members, singles, strict=True))
    np.testing.assert_allclose(served[PROBA].to_numpy(), expected, atol=1e-5)


def test_a_forecast_ensemble_averages_its_members_forecasts_whatever_their_windows(
        client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    known = seasonal().iloc[:420]
    raw = {"task": "timeseries", "name": "sales", "registered_model": "sales-forecast",
           "data": {"source": write(known, tmp_path / "sales.csv"), "time": "date",
                    "target": "sales", "horizon": HORIZON},
           "max_evals": 4, "epochs": 3, "seed": 5, "space": SPACE, "ensemble": 3,
           "pruning": {"rule": "none"}, "pack": 1}
    result = mltune.tune(mltune.load_spec(None, raw))
    assert result.ensemble.run_id is not None  # seed 5: trials of windows 12 and 24
    served = mlflow.pyfunc.load_model("models:/sales-forecast@challenger")
    by_run = {t.run_id: t for t in result.trials}
    members = result.ensemble.members
    recent = known.iloc[-48:]
    singles = [mlflow.pyfunc.load_model(by_run[m["run_id"]].model_uri) for m in members]
    expected = sum(m["weight"] * single.predict(recent)["forecast"].to_numpy()
                   for m, single in zip(members, singles, strict=True))
    answer = served.predict(recent)
    assert list(answer.columns) == list(singles[0].predict(recent).columns)
    np.testing.assert_allclose(answer["forecast"].to_numpy(), expected, rtol=1e-5)
    assert {int(by_run[m["run_id"]].params["window"]) for m in members} == {12, 24}
    # it reads its longest member's window: fewer rows are refused as a single model does
    assert "this model reads the latest 24 rows" in refusal(served, recent.iloc[-15:])


def test_a_failed_ensemble_registers_the_best_trial_and_says_why(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tracker_module, "log_ensemble_model", broken)
    result = search(ensemble=3)
    assert result.ensemble.run_id is None
    assert result.ensemble.error == "RuntimeError: disk full"
    failed = [r for r in children(client, result.parent_run_id)
              if r.data.tags["mltune.role"] == "ensemble"]
    assert [r.info.status for r in failed] == ["FAILED"]
    assert client.get_model_version_by_alias(NAME, "challenger").run_id == result.best.run_id
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.ensemble_error"] == result.ensemble.error
    assert "Ensemble:** failed" in parent.data.tags["mlflow.note.content"]
