"""Trial packing: several trials trained at once as one fused network, each still a trial in
every way a user sees (its run, params, metrics, model, status), and the same result as alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
import torch
from conftest import all_runs, children_of, run_cli
from sklearn.datasets import load_breast_cancer, load_digits
from test_resume import kill_9_then_resume

import mltune
from mltune.tasks import task_for
from mltune.tracking.model import load_network

SHAPE_KEYS = ("num_layers", "hidden_size", "norm", "activation", "batch_size", "optimizer")


def packs_of(children) -> dict[str, list]:
    packs: dict[str, list] = {}
    for child in children:
        packs.setdefault(child.data.tags["mltune.pack"], []).append(child)
    return packs


def test_a_packed_tabular_search_logs_every_member_as_its_own_trial(client):
    result = mltune.tune(mltune.load_spec(None, {
        "task": "tabular", "max_evals": 6, "epochs": 2, "pack": 3, "seed": 3,
        "pruning": {"rule": "none"}}))
    children = children_of(client, result.parent_run_id)
    assert [int(c.data.tags["mltune.trial"]) for c in children] == [1, 2, 3, 4, 5, 6]
    packs = packs_of(children)
    # members that end together end their pack: the next starts from the sampler's own point
    assert sorted(packs) == ["1", "2"] and all(len(p) == 3 for p in packs.values())
    for members in packs.values():
        # members share the shape key and differ in the rest (TPE fills them apart)
        for key in SHAPE_KEYS:
            assert len({m.data.params[key] for m in members}) == 1, key
        assert len({m.data.params["learning_rate"] for m in members}) == 3
    for child in children:
        assert child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == [1, 2]
        assert child.data.params["learning_rate"] == str(
            result.trials[int(child.data.tags["mltune.trial"]) - 1].params["learning_rate"])
    uris = {c.data.tags["mltune.model_uri"] for c in children}
    assert len(uris) == 6  # a model of its own per member
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(30)
    for uri in list(uris)[:2]:  # each member's model is the task's ordinary, servable model
        answer = mlflow.pyfunc.load_model(uri).predict(rows)
        assert set(answer["label"]) <= {"malignant", "benign"}
    champion = mlflow.pyfunc.load_model("models:/mltune-tabular@champion")
    assert (champion.predict(rows)["label"] == load_breast_cancer().target_names[
        load_breast_cancer().target[:30]]).mean() > 0.8


def test_a_packed_digits_search_trains_its_members_at_once_and_serves_them(client):
    result = mltune.tune(mltune.load_spec(None, {"max_evals": 4, "epochs": 2, "pack": 4,
                                                 "space.channels": 16,
                                                 "pruning": {"rule": "none"}}))
    children = children_of(client, result.parent_run_id)
    assert {c.data.tags["mltune.pack"] for c in children} == {"1"}
    assert all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.params["dropout"] for c in children}) == 4  # each its own rate
    digits = load_digits()
    served = mlflow.pyfunc.load_model(result.best.model_uri)
    accuracy = (served.predict(digits.images[:200])["label"] == digits.target[:200]).mean()
    assert accuracy > 0.5  # chance is 0.1


def test_pruning_stops_members_of_a_pack_alone(client):
    result = mltune.tune(mltune.load_spec(None, {
        "task": "tabular", "max_evals": 8, "epochs": 4, "pack": 4, "algo": "rand", "seed": 2,
        "space.learning_rate": {"choice": [3.0e-3, 1.0e-6]}, "space.optimizer": "sgd",
        "pruning": {"rule": "median", "warmup_trials": 2, "warmup_epochs": 1}}))
    children = children_of(client, result.parent_run_id)
    pruned = [c for c in children if c.data.tags.get("mltune.pruned") == "true"]
    assert pruned and all(c.info.status == "KILLED" for c in pruned)
    for child in pruned:  # a pruned member stopped early while its pack went on
        assert int(child.data.tags["mltune.epochs_run"]) < 4
        pack = [c for c in children if c.data.tags["mltune.pack"] ==
                child.data.tags["mltune.pack"]]
        assert any(c.info.status == "FINISHED" for c in pack)
    assert len(result.trials) == 8


def test_early_stopping_in_a_pack_logs_each_members_best_epoch(client):
    """Members stop early at their own epochs and leave the pack; each model logged holds
    its member's best epoch's weights, as it would alone."""
    result = mltune.tune(mltune.load_spec(None, {
        "task": "tabular", "max_evals": 4, "epochs": 12, "patience": 1, "pack": 4,
        "algo": "rand", "seed": 3, "space.learning_rate": {"choice": [0.3, 0.1, 0.03]},
        "space.optimizer": "sgd", "space.norm": "none", "space.dropout": 0.0,
        "pruning": {"rule": "none"}}))
    spec = result.spec
    children = children_of(client, result.parent_run_id)
    assert len(packs_of(children)) == 1 and len(children) == 4
    task = task_for(spec)
    data = task.load(spec.data, spec.seed)
    epochs_run = set()
    for child, trial in zip(children, sorted(result.trials, key=lambda t: t.number),
                            strict=True):
        assert child.info.status == "FINISHED" and child.info.run_id == trial.run_id

        def history(key: str, run_id: str = child.info.run_id) -> list[float]:
            points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
            return [m.value for m in points]

        values, losses = history(spec.metric), history("val_loss")
        epochs_run.add(len(values))
        best = int(child.data.tags["mltune.best_epoch"])
        assert values[best - 1] == (max(values) if spec.direction.name == "MAX" else
                                    min(values))
        network = load_network(child.data.tags["mltune.model_uri"])
        with torch.no_grad():
            loss = task.make_loss(trial.params, data)(network(data.x_val), data.y_val)
        assert float(loss) == pytest.approx(losses[best - 1], abs=1e-5)
        # the run's output, as its page lists it: that model, at the epoch of its weights
        (output,) = client.get_run(child.info.run_id).outputs.model_outputs
        assert f"models:/{output.model_id}" == child.data.tags["mltune.model_uri"]
        assert output.step == best
    assert len(epochs_run) > 1  # the members stopped at different epochs


def test_kill_9_inside_a_pack_then_resume_ends_with_max_evals_trials(tracking_uri, client,
                                                                     capsys):
    # ASHA (eta 2) stops one of two members at each rung: their slots are refilled
    args = ["--set", "task=tabular", "--max-evals", "8", "--epochs", "3",
            "--pack", "2", "--seed", "4", "--set", "pruning.rule=asha",
            "--set", "pruning.eta=2"]
    parent_id, _ = kill_9_then_resume(tracking_uri, client, args, capsys)
    children = children_of(client, parent_id)
    numbers = [int(c.data.tags["mltune.trial"]) for c in children]
    assert len(numbers) == len(set(numbers))
    assert len(children) == 8 + sum(c.data.tags.get("mltune.interrupted") == "true"
                                    for c in children)
    assert all(c.info.status == "FINISHED" or c.data.tags.get("mltune.pruned") == "true"
               or c.data.tags.get("mltune.interrupted") == "true" for c in children)
    # killed inside a refilled pack: pack 1 had taken more trials than its two slots
    assert len([c for c in children if c.data.tags.get("mltune.pack") == "1"]) > 2
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    assert all(c.data.tags.get("mltune.interrupted") == "true"
               or c.data.tags.get("mltune.pruned") == "true" for c in children
               if c.info.status == "KILLED")
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_a_family_that_cannot_be_packed_is_refused_only_when_asked_for(tracking_uri, client,
                                                                      capsys, tmp_path):
    shutil.copy(Path(__file__).resolve().parents[1] / "examples/data/reviews.csv",
                tmp_path / "reviews.csv")
    base = ["tune", "--set", "task=text", "--set", "data.source=reviews.csv",
            "--set", "data.text=review", "--set", "data.target=sentiment",
            "--max-evals", "2", "--epochs", "1"]
    code, _, err = run_cli([*base, "--pack", "2"], capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("mltune: error: pack: 2 is not possible: the text task's network "
                           "cannot be packed: its layer encoder.rnn (")
    assert line.endswith(") has no batched (vmap) form in PyTorch; use pack: 1 or auto")
    assert all_runs(client) == []  # refused before any run was opened
    code, _, err = run_cli([*base, "--set", "max_evals=8"], capsys)  # auto: unpacked
    assert code == 0, err
    (parent,) = [r for r in all_runs(client) if r.data.tags.get("mltune.role") == "search"]
    assert all("mltune.pack" not in c.data.tags for c in children_of(client,
                                                                      parent.info.run_id))
