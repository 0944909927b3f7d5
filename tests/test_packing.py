"""Trial packing: several trials trained at once as one fused network, each still a trial in
every way a user sees (its run, params, metrics, model, status), and the same result as alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
from conftest import all_runs, children_of, run_cli
from sklearn.datasets import load_breast_cancer, load_digits

import mltune

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
