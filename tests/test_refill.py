"""Slots kept full: a pack takes new trials as its members end, and the search's time budget
stops a running pack with every member FINISHED."""

from __future__ import annotations

import torch
from conftest import children_of

import mltune
from mltune.tasks import get_task
from mltune.tracking.model import load_network


def steps(client, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, "val_accuracy"))


def test_asha_with_refill_keeps_the_pack_full_and_every_trial_a_whole_record(client):
    result = mltune.tune(mltune.load_spec(None, {
        "task": "tabular", "max_evals": 12, "epochs": 4, "pack": 3, "seed": 5,
        "pruning": {"rule": "asha", "min_epochs": 1, "eta": 2}}))
    children = children_of(client, result.parent_run_id)
    assert sorted(int(c.data.tags["mltune.trial"]) for c in children) == list(range(1, 13))
    packs = {c.data.tags["mltune.pack"] for c in children}
    assert len(packs) < 4  # 12 trials in slots of 3: pruned members' slots were refilled
    pruned = [c for c in children if c.data.tags.get("mltune.pruned") == "true"]
    assert pruned and all(c.info.status == "KILLED" for c in pruned)
    for child in children:  # each a trial of its own: its epochs counted from 1
        ran = int(child.data.tags["mltune.epochs_run"])
        assert steps(client, child.info.run_id) == list(range(1, ran + 1))
        if child.info.status == "FINISHED":
            assert ran == 4 and child.data.tags["mltune.model_uri"].startswith("models:/")
    parent = client.get_run(result.parent_run_id).data.metrics
    assert 0 < parent["pack_occupancy"] <= 1
    assert parent["epochs_without_pruning"] == 48
    assert parent["epochs_trained"] == sum(int(c.data.tags["mltune.epochs_run"])
                                           for c in children) < 48


def test_the_time_budget_stops_a_running_pack_with_every_member_finished(client):
    result = mltune.tune(mltune.load_spec(None, {
        "task": "tabular", "max_evals": 6, "epochs": 500, "pack": 3, "seed": 1,
        "stop": {"time_budget_s": 4}, "pruning": {"rule": "none"}}))
    children = children_of(client, result.parent_run_id)
    assert len(children) == 3  # the first pack was still training when the budget ran out
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mltune.stopped"] == "time_budget"
        ran = int(child.data.tags["mltune.epochs_run"])
        assert 1 <= ran < 500 and steps(client, child.info.run_id) == list(range(1, ran + 1))
    assert client.get_run(result.parent_run_id).data.tags["mltune.stop_reason"].startswith(
        "time budget of 4 s spent")
    assert result.registered_version == 1


def test_pbt_copies_inside_the_pack_and_each_run_tells_what_changed(client):
    result = mltune.tune(mltune.load_spec(None, {
        "task": "tabular", "max_evals": 4, "epochs": 6, "pack": 4, "seed": 2,
        "space.optimizer": "sgd",
        "pruning": {"rule": "pbt", "every": 2, "fraction": 0.25,
                    "resample_probability": 0.0}}))
    children = {c.data.tags["mltune.trial"]: c for c in children_of(client,
                                                                     result.parent_run_id)}
    copied = [c for c in children.values() if "mltune.pbt.parent" in c.data.tags]
    assert copied, "the bottom member of 4 copies a top one every 2 epochs"
    for child in copied:
        parent = children[child.data.tags["mltune.pbt.parent"]]
        assert int(child.data.tags["mltune.pbt.epoch"]) in (2, 4)
        history = client.get_metric_history(child.info.run_id, "hp/learning_rate")
        steps = sorted(m.step for m in history)
        assert steps[0] == 0 and set(steps[1:]) <= {2, 4}
        start = [m.value for m in history if m.step == 0][0]
        assert start == float(child.data.params["learning_rate"])  # params: its start
        changed = [m.value for m in history if m.step > 0]
        assert all(v > 0 for v in changed)  # 0.8x or 1.2x a top member's rate, in bounds
        assert child.info.status == "FINISHED"
        mine = load_network(child.data.tags["mltune.model_uri"]).state_dict()
        theirs = load_network(parent.data.tags["mltune.model_uri"]).state_dict()
        assert any(not torch.equal(mine[k], theirs[k]) for k in mine)  # its own weights


def test_the_first_trial_trains_the_tasks_defaults_unless_start_says_otherwise(client):
    spec = mltune.load_spec(None, {"task": "tabular", "max_evals": 3, "epochs": 2, "pack": 1})
    result = mltune.tune(spec)
    defaults = get_task("tabular").default_params()
    first = result.trials[0]
    assert first.number == 1
    assert {k: v for k, v in first.params.items() if k in defaults} == {
        k: v for k, v in defaults.items() if k in first.params}
    assert result.best_value >= first.metrics["val_accuracy"]  # never worse than defaults
    given = mltune.tune(mltune.load_spec(None, {
        "task": "tabular", "max_evals": 2, "epochs": 1, "pack": 1, "name": "given",
        "start": [{"learning_rate": 0.02, "hidden_size": 32}]}))
    assert given.trials[0].params["learning_rate"] == 0.02
    assert given.trials[0].params["hidden_size"] == 32
    assert given.trials[0].params["dropout"] == first.params["dropout"]  # completed
    off = mltune.tune(mltune.load_spec(None, {
        "task": "tabular", "max_evals": 1, "epochs": 1, "pack": 1, "name": "off",
        "start": []}))
    assert off.trials[0].params != first.params  # the sampler's own first point
