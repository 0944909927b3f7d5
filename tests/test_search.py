"""A real search on digits against a real sqlite store: what a user sees in MLflow."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from conftest import all_runs, children_of
from sklearn.datasets import load_digits

import mltune
from mltune.models.layers import ACTIVATIONS
from mltune.search.history.result import SearchResult

TINY = {"max_evals": 3, "epochs": 2, "seed": 3}


def run_search(**overrides) -> SearchResult:
    return mltune.tune(mltune.load_spec(None, {**TINY, **overrides}))


def test_search_logs_parent_children_models_and_registers_champion(client):
    result = run_search(pruning={"rule": "none"})  # every trial trained in full

    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.role"] == "search"
    assert parent.data.params["spec.task"] == "image"
    assert parent.data.params["spec.max_evals"] == "3"
    assert parent.data.metrics["trials_finished"] == 3
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]

    children = children_of(client, result.parent_run_id)
    assert [c.info.run_name for c in children] == ["trial-0001", "trial-0002", "trial-0003"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mltune.role"] == "trial"
        assert child.data.tags["mltune.search_id"] == parent.data.tags["mltune.search_id"]
        params = child.data.params
        assert params["activation"] in ACTIVATIONS  # decoded: 'relu', not a choice index
        assert params["num_blocks"] in {"1", "2", "3"}  # whole steps: '2', not '2.0'
        assert params["batch_size"] in {"32", "64", "128"}
        assert ("optimizer.momentum" in params) == (params["optimizer"] == "sgd")
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == [1, 2]
        assert len(client.get_metric_history(child.info.run_id, "train_loss")) == 2

    # best_<metric> on the parent: one point per trial, never decreasing for a max metric
    best_curve = client.get_metric_history(result.parent_run_id, "best_val_accuracy")
    values = [m.value for m in sorted(best_curve, key=lambda m: m.step)]
    assert [m.step for m in sorted(best_curve, key=lambda m: m.step)] == [1, 2, 3]
    assert values == sorted(values)

    # the champion is the child with the highest val_accuracy, as MLflow recorded it
    best_child = max(children, key=lambda c: c.data.metrics["val_accuracy"])
    champion = client.get_model_version_by_alias("mltune-image", "champion")
    assert champion.run_id == best_child.info.run_id
    assert parent.data.metrics["best_val_accuracy"] == best_child.data.metrics["val_accuracy"]

    # every trial's model serves raw digits, flat (N, 64) or as images (N, 8, 8)
    digits = load_digits()
    model = mlflow.pyfunc.load_model("models:/mltune-image@champion")
    flat = model.predict(digits.data[:20])
    images = model.predict(digits.images[:20])
    assert list(flat["label"]) == list(images["label"])
    assert set(flat["label"]) <= set(range(10))
    probabilities = flat[[f"proba_{d}" for d in range(10)]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    for child in children:
        child_model = mlflow.pyfunc.load_model(child.data.tags["mltune.model_uri"])
        assert len(child_model.predict(digits.data[:5])) == 5


def test_trained_model_beats_chance_on_raw_digits(client):
    result = run_search(max_evals=1, epochs=6, **{"space.learning_rate": 3e-3,
                                                    "space.optimizer": "adam",
                                                    "space.batch_norm": True,
                                                    "space.weight_init": "default"})
    digits = load_digits()
    model = mlflow.pyfunc.load_model(result.best.model_uri)
    predicted = model.predict(digits.images[-300:].astype(int))  # ints, as a user may have them
    accuracy = float(np.mean(predicted["label"].to_numpy() == digits.target[-300:]))
    assert accuracy > 0.8


def test_same_seed_gives_same_params_sequence(client):
    def sequence(seed: int) -> list[dict]:
        result = run_search(max_evals=5, epochs=1, seed=seed)  # 2 random start-up, 3 TPE
        return [t.params for t in result.trials]

    first, second = sequence(7), sequence(7)
    assert first == second
    assert sequence(8) != first


def test_failed_trials_are_recorded_and_the_search_goes_on(client):
    # a learning rate of 1e30 makes the loss NaN: those trials fail, the others finish
    result = run_search(max_evals=6, epochs=1, seed=1, **{
        "space.learning_rate": {"choice": [1.0e-3, 1.0e30]},
        "space.optimizer": "sgd", "space.batch_norm": False})
    children = children_of(client, result.parent_run_id)
    failed = [c for c in children if c.info.status == "FAILED"]
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert failed and finished
    for child in failed:
        assert child.data.params["learning_rate"] == "1e+30"
        assert "nan" in child.data.tags["mltune.error"].lower()
    assert result.best.run_id in {c.info.run_id for c in finished}
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["trials_failed"] == len(failed)
    champion = client.get_model_version_by_alias("mltune-image", "champion")
    assert champion.run_id in {c.info.run_id for c in finished}


def test_search_where_every_trial_fails_is_a_clear_error(client):
    with pytest.raises(mltune.SearchError, match="no trial finished"):
        run_search(max_evals=2, epochs=1, **{"space.learning_rate": 1.0e30,
                                             "space.optimizer": "sgd",
                                             "space.batch_norm": False})
    runs = all_runs(client)
    parent = next(r for r in runs if r.data.tags.get("mltune.role") == "search")
    assert parent.info.status == "FAILED"
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert len([r for r in runs if r.info.status == "FAILED"]) == 3
