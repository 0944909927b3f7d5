"""Pruning, early stopping, stop rules and failures that must not stop a search."""

from __future__ import annotations

import mlflow
import numpy as np
from conftest import children_of

import mltune
from mltune.tasks import get_task

# half of the learning rates cannot learn in a few epochs: clearly losing trials
# pack: 2, not auto: a measured size may differ between two searches, and with it their points
LOSING = {"max_evals": 8, "epochs": 4, "algo": "rand", "seed": 2, "pack": 2,
          "pruning": {"rule": "none"},
          "space.learning_rate": {"choice": [3.0e-3, 1.0e-6]}, "space.optimizer": "adam",
          "space.batch_norm": True, "space.weight_init": "default"}


def epochs_run(client, parent_id: str) -> int:
    return sum(len(client.get_metric_history(c.info.run_id, "val_accuracy"))
               for c in children_of(client, parent_id))


def pruned_children(client, parent_id: str) -> list:
    return [c for c in children_of(client, parent_id)
            if c.data.tags.get("mltune.pruned") == "true"]


# the same eight configs for both searches (a sampler's points would depend on what each
# search measured): half of them losing, all of one shape, so packed two at a time
SAME = {**LOSING, "space.dropout": {"uniform": [0.0, 0.5]},
        "start": [{"learning_rate": [3.0e-3, 1.0e-6][i % 2], "dropout": 0.05 * i}
                  for i in range(8)]}


def test_pruning_runs_markedly_fewer_epochs_for_the_same_best(client):
    full = mltune.tune(mltune.load_spec(None, {**SAME, "name": "full"}))
    pruned = mltune.tune(mltune.load_spec(None, {
        **SAME, "name": "asha", "pruning": {"rule": "asha", "min_epochs": 1, "eta": 2}}))
    assert [t.params for t in full.trials] == [t.params for t in pruned.trials]  # same configs
    assert abs(pruned.best_value - full.best_value) <= 0.02
    assert epochs_run(client, pruned.parent_run_id) <= 0.75 * epochs_run(client,
                                                                         full.parent_run_id)
    stopped = pruned_children(client, pruned.parent_run_id)
    # the rungs before the last epoch (at the last one a trial has nothing left to save)
    assert {int(c.data.tags["mltune.epochs_run"]) for c in stopped} <= {1, 2}
    losing = [t for t in pruned.trials if t.params["learning_rate"] < 1e-5]
    assert losing and all(t.status == "PRUNED" for t in losing)  # packed with a winner too
    assert client.get_run(pruned.best.run_id).info.status == "FINISHED"


def test_median_rule_stops_losing_trials_with_their_value_so_far(client):
    result = mltune.tune(mltune.load_spec(None, {
        **LOSING, "pruning": {"rule": "median", "warmup_trials": 1, "warmup_epochs": 1}}))
    stopped = pruned_children(client, result.parent_run_id)
    assert stopped and all(c.info.status == "KILLED" for c in stopped)
    assert all(0 <= float(c.data.tags["mltune.objective"]) <= 1 for c in stopped)
    assert all(int(c.data.tags["mltune.epochs_run"]) < 4 for c in stopped)
    assert client.get_run(result.parent_run_id).data.metrics["trials_pruned"] == len(stopped)
    assert len(result.trials) == 8  # pruned trials count toward the budget like any other


def test_early_stopping_logs_the_best_epochs_weights(client):
    result = mltune.tune(mltune.load_spec(None, {
        "max_evals": 1, "epochs": 8, "patience": 2, "space.learning_rate": 0.05,
        "space.optimizer": "sgd", "space.batch_norm": True}))
    (child,) = children_of(client, result.parent_run_id)
    history = sorted(client.get_metric_history(child.info.run_id, "val_accuracy"),
                     key=lambda m: m.step)
    values = [m.value for m in history]
    best_epoch = int(child.data.tags["mltune.best_epoch"])
    assert values[best_epoch - 1] == max(values)
    assert float(child.data.tags["mltune.objective"]) == max(values)
    assert len(values) < 8  # it stopped early (seed 0: after epoch 3)...
    assert len(values) - best_epoch == 2  # ...after 2 epochs without improvement
    # the logged model holds the best epoch's weights: it scores max(values) on validation
    spec = mltune.load_spec(None)
    data = get_task("image").load(spec.data, spec.seed)
    model = mlflow.pyfunc.load_model(child.data.tags["mltune.model_uri"])
    predicted = model.predict(data.x_val.permute(0, 2, 3, 1).numpy())
    accuracy = float(np.mean(predicted["label"].to_numpy() == data.y_val.numpy()))
    assert abs(accuracy - max(values)) < 1e-6


def test_stop_rules_end_the_search_and_say_why(client):
    result = mltune.tune(mltune.load_spec(None, {"max_evals": 6, "epochs": 1,
                                                 "stop": {"target": 0.0}}))
    assert len(result.trials) == 1
    tags = client.get_run(result.parent_run_id).data.tags
    assert tags["mltune.stop_reason"].startswith("target reached: val_accuracy=")
    result = mltune.tune(mltune.load_spec(None, {"max_evals": 6, "epochs": 1,
                                                 "stop": {"time_budget_s": 0.001}}))
    assert len(result.trials) == 1
    assert client.get_run(result.parent_run_id).data.tags["mltune.stop_reason"] == (
        "time budget of 0.001 s spent")


def test_out_of_memory_fails_that_trial_alone(client):
    # 4M channels doubling in the second block asks for hundreds of terabytes: a real OOM
    result = mltune.tune(mltune.load_spec(None, {
        "max_evals": 4, "epochs": 1, "seed": 4, "space.num_blocks": 2,
        "space.channels": {"choice": [8, 4194304]}}))
    children = children_of(client, result.parent_run_id)
    failed = [c for c in children if c.info.status == "FAILED"]
    assert failed and len(failed) < len(children)
    for child in failed:
        assert child.data.params["channels"] == "4194304"
        assert child.data.tags["mltune.error"].startswith("out of memory: ")
    assert all(c.data.params["channels"] == "8" for c in children
               if c.info.status == "FINISHED")
