"""cv: k — each trial trained and scored on k folds of train + validation as k members of one
pack, judged on the fold mean; the refit registered; an ensemble selected on out-of-fold
predictions. Against real sqlite stores, with real training."""

from __future__ import annotations

import shutil
import statistics

import mlflow
import pytest
import torch
from conftest import REPO, all_runs, run_cli
from sklearn.datasets import load_breast_cancer
from test_images import shapes_folder
from test_timeseries import HORIZON, SPACE, seasonal, write

import mltune
from mltune.data.folds import STRATIFIED, make_folds
from mltune.models.ensemble import Averaged, average
from mltune.tasks import get_task
from mltune.tracking.model import load_network

K = 3
SEARCH = {"task": "tabular", "max_evals": 6, "epochs": 4, "seed": 1, "cv": K,
          "pruning": {"rule": "asha", "eta": 2}}


def trials_of(client, parent_id: str) -> list:
    runs = [r for r in all_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent_id
            and r.data.tags.get("mltune.role") == "trial"]
    return sorted(runs, key=lambda r: int(r.data.tags["mltune.trial"]))


def history(client, run_id: str, key: str) -> list[float]:
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    return [m.value for m in points]


def test_a_cv_trial_logs_each_fold_and_their_mean_and_the_refit_is_registered(
        tracking_uri, client):
    result = mltune.tune(mltune.load_spec(None, SEARCH))
    assert result.spec.refit is True  # on by default with cv
    trials = trials_of(client, result.parent_run_id)
    assert len(trials) == 6
    finished = [t for t in trials if t.info.status == "FINISHED"]
    assert finished
    for run in finished:
        folds = [history(client, run.info.run_id, f"fold_{i}/val_accuracy") for i in range(K)]
        mean = history(client, run.info.run_id, "val_accuracy")
        spread = history(client, run.info.run_id, "val_accuracy_std")
        assert len(mean) == len(spread) == len(folds[0]) >= 1  # per epoch
        for epoch, value in enumerate(mean):
            at = [fold[epoch] for fold in folds]
            assert value == pytest.approx(statistics.fmean(at))
            assert spread[epoch] == pytest.approx(statistics.pstdev(at))
        # its model serves the average of its k fold networks
        network = load_network(run.data.tags["mltune.model_uri"])
        assert isinstance(network, Averaged) and len(network.members) == K
        assert network.weights == pytest.approx([1 / K] * K)

    # pruning judged the fold mean and stopped every fold of a pruned trial at once
    pruned = [t for t in trials if t.data.tags.get("mltune.pruned") == "true"]
    assert pruned, "eta 2 over 6 trials prunes some"
    for run in pruned:
        lengths = {len(history(client, run.info.run_id, f"fold_{i}/val_loss"))
                   for i in range(K)}
        assert len(lengths) == 1 and lengths.pop() < SEARCH["epochs"]

    # the refit: trained on every fold's rows (train + validation), registered and served
    refit = client.get_run(result.refit.run_id)
    assert refit.data.tags["mltune.refit_of"] == result.best.run_id
    data = get_task("tabular").load(result.spec.data, result.spec.seed)
    assert refit.data.tags["mltune.train_rows"] == str(len(data.x_train) + len(data.x_val))
    version = client.get_model_version_by_alias("mltune-tabular", "challenger")
    assert version.run_id == result.refit.run_id
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    answer = mlflow.pyfunc.load_model("models:/mltune-tabular@challenger").predict(features[:9])
    assert set(answer["label"]) <= {"benign", "malignant"} and len(answer) == 9
    note = client.get_run(result.parent_run_id).data.tags["mlflow.note.content"]
    assert "(mean of 3 folds)" in note and "**Cross-validation:**" in note
    assert "the refit's model" in note
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]


def test_an_ensemble_of_cv_trials_is_chosen_on_out_of_fold_predictions(tracking_uri, client):
    # refit: false: the members are the trials' own models, each its folds' average
    spec = mltune.load_spec(None, {**SEARCH, "ensemble": 4, "pruning": {"rule": "none"},
                                   "max_evals": 5, "seed": 3, "refit": False})
    result = mltune.tune(spec)
    assert result.ensemble.error is None
    members = result.ensemble.members
    assert result.ensemble.run_id is not None  # seed 3: an addition improves on the best alone
    assert len(members) >= 2 and sum(m["weight"] for m in members) == pytest.approx(1.0)
    # the ensemble's recorded score is its members' out-of-fold predictions, recomputed here
    # from their logged fold networks and the search's folds: rows no member trained on
    data = get_task("tabular").load(spec.data, spec.seed)
    pooled_x = torch.cat([data.x_train, data.x_val])
    pooled_y = torch.cat([data.y_train, data.y_val])
    folds = make_folds(pooled_y, K, spec.seed, STRATIFIED)
    by_trial = {t.number: t for t in result.trials}
    outputs = []
    with torch.no_grad():
        for member in members:
            network = load_network(by_trial[member["trial"]].model_uri)
            oof = torch.empty(len(pooled_y), 2)
            for fold, fold_network in zip(folds, network.members, strict=True):
                oof[fold.scored] = fold_network(pooled_x[fold.scored])
            outputs.append(oof)
    averaged = average(outputs, [m["weight"] for m in members], probabilities=True)
    accuracy = float((averaged.argmax(1) == pooled_y).float().mean())
    ensemble = client.get_run(result.ensemble.run_id)
    assert ensemble.data.metrics["val_accuracy"] == pytest.approx(accuracy)
    # served: one network per fold of each member, weighted, the same outputs as the members'
    served = load_network(result.ensemble.model_uri)
    assert len(served.members) == K * len(members)
    with torch.no_grad():
        expected = average([load_network(by_trial[m["trial"]].model_uri)(data.x_test)
                            for m in members], [m["weight"] for m in members], True)
        assert torch.allclose(served(data.x_test), expected, atol=1e-5)


@pytest.mark.parametrize(("flags", "message"), [
    (["--cv", "1"], "cv: 1 is not allowed; expected a whole number >= 2"),
    (["--cv", "0"], "cv: 0 is not allowed; expected a whole number >= 2"),
    (["--cv", "200"], "cv: 200 is not allowed: the rarest class has"),
    (["--ensemble", "0"], "ensemble: 0 is not allowed; expected a whole number >= 1"),
    (["--cv", "3", "--set", "pruning.rule=pbt"], "cv: 3 is not allowed with pruning rule pbt"),
])
def test_what_cannot_be_cross_validated_is_refused_with_one_line(tracking_uri, client, capsys,
                                                                 flags, message):
    code, _, err = run_cli(["tune", "--set", "task=tabular", "--max-evals", "2", *flags],
                           capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]


def test_time_series_image_and_text_searches_cross_validate(tracking_uri, client, tmp_path):
    series = write(seasonal(), str(tmp_path / "sales.csv"))
    forecast = mltune.load_spec(None, {
        "task": "timeseries", "max_evals": 2, "epochs": 2, "seed": 0, "cv": 3,
        "data": {"source": series, "time": "date", "target": "sales", "horizon": HORIZON},
        "space": SPACE, "pruning": {"rule": "none"}})
    images = shapes_folder(tmp_path / "shapes", per_class=8)
    shutil.copy(REPO / "examples/data/reviews.csv", tmp_path / "reviews.csv")
    small = {"max_evals": 2, "epochs": 1, "seed": 0, "cv": 2, "pruning": {"rule": "none"}}
    specs = [forecast,
             mltune.load_spec(None, {**small, "task": "image",
                                     "data": {"source": str(images)}}),
             mltune.load_spec(None, {**small, "task": "text",
                                     "data": {"source": str(tmp_path / "reviews.csv"),
                                              "text": "review", "target": "sentiment"}})]
    for spec in specs:
        result = mltune.tune(spec)
        trials = trials_of(client, result.parent_run_id)
        assert [t.info.status for t in trials] == ["FINISHED"] * 2, spec.task
        k = spec.cv
        metric = spec.metric
        for run in trials:
            assert all(f"fold_{i}/{metric}" in run.data.metrics for i in range(k))
            assert f"{metric}_std" in run.data.metrics
        assert result.refit.run_id is not None, spec.task


def test_a_time_series_fold_is_scored_only_on_windows_after_its_training_windows(tmp_path):
    spec = mltune.load_spec(None, {
        "task": "timeseries", "cv": 4,
        "data": {"source": write(seasonal(), str(tmp_path / "s.csv")), "time": "date",
                 "target": "sales", "horizon": HORIZON}, "space": SPACE})
    from mltune.search.packs.folds import search_folds

    task = get_task("timeseries")
    data = task.load(task.resolve_data(spec.data, spec.space), spec.seed)
    folds = search_folds(spec, task, data)
    assert folds is not None and len(folds) == 4
    for fold in folds:  # training windows' targets end before the scored windows' begin
        assert int(fold.scored.min()) - int(fold.train.max()) == HORIZON
    assert int(folds[-1].scored.max()) == len(data.x_train) + len(data.x_val) - 1


def test_several_configurations_folds_share_one_pack(tracking_uri, client):
    spec = mltune.load_spec(None, {"task": "tabular", "max_evals": 5, "epochs": 2, "seed": 0,
                                   "cv": 2, "pack": 2, "refit": False, "start": [],
                                   "pruning": {"rule": "none"}})
    result = mltune.tune(spec)
    packs = [t.data.tags.get("mltune.pack") for t in trials_of(client, result.parent_run_id)]
    # pack: 2 is two trials (four fold members) at once, refilled as they end
    assert packs.count(packs[0]) >= 2 and packs[0] is not None
    assert len(result.trials) == 5 and all(t.status.value == "FINISHED" for t in result.trials)
