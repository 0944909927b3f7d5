"""Early stopping, stop rules and failures that must not stop a search, on a real store. (Each
rule's decisions are the scheduler contract tests', a pruned trial's life tests/unit/
test_trial_life.py's, pruning in a pack tests/test_packing.py's and tests/test_refill.py's;
what pruning saves at equal quality, benchmarks/pruning.py's.)"""

from __future__ import annotations

import mlflow
import numpy as np
from conftest import children_of

import mltune
from mltune.tasks import get_task


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
