"""A trial's whole life, every ending, in seconds and without a store: the real driver, trials,
coordinator and pack trainer on a small table, with a recording tracker, a list of points for a
sampler and a scripted scheduler (``tests/recording.py``: implementations of mltune's own
protocols)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from recording import ListSampler, RecordingTracker, ScriptedScheduler

import mltune  # noqa: F401  (registers the tasks)
from mltune.core.interrupts import Stop
from mltune.core.terms import TrialStatus
from mltune.data.folds import IN_TIME, STRATIFIED, make_folds, pooled
from mltune.search.history.resume import ResumeState
from mltune.search.history.stopping import Progress
from mltune.search.packs.coordinator import Coordinator
from mltune.search.packs.driver import Driver
from mltune.search.packs.lane import Lane
from mltune.search.packs.shapes import is_free
from mltune.search.schedulers.base import CONTINUE, STOP, exploit
from mltune.spec.build import build_spec
from mltune.spec.model import PruningSpec, StopSpec
from mltune.tasks import task_for

SPEC = build_spec({"task": "tabular", "data": {"source": "sklearn:breast_cancer"}, "epochs": 3,
                   "max_evals": 2, "pack": 2, "seed": 0})
TASK = task_for(SPEC)
DATA = TASK.load(SPEC.data, SPEC.seed)
FINISHED, PRUNED, FAILED, KILLED = (TrialStatus.FINISHED, TrialStatus.PRUNED,
                                    TrialStatus.FAILED, TrialStatus.KILLED)


def point(learning_rate: float = 3e-3, **more) -> dict:
    return {**TASK.default_params(), "hidden_size": 8, "num_layers": 1, "dropout": 0.0,
            "norm": "none", "learning_rate": learning_rate, **more}


class Search:
    """One search's lane driven to its end: its records, its coordinator, its sampler."""

    def __init__(self, points: list[dict], scheduler: ScriptedScheduler | None = None,
                 data=DATA, folds=None, halt: Stop | None = None, **spec) -> None:
        self.spec = replace(SPEC, **{"max_evals": len(points), **spec})
        self.sampler = ListSampler(points)
        self.scheduler = scheduler or ScriptedScheduler()
        self.stop = halt or Stop()
        self.tracker = RecordingTracker()
        self.coordinator = Coordinator(
            self.spec, self.sampler, self.scheduler, Progress(self.spec, lambda *a: None, None),
            ResumeState(), lambda key: is_free(key, TASK), pack_limit=int(self.spec.pack),
            per_trial=len(folds) if folds else 1, stop=self.stop)
        self.lane = Lane(self.spec, TASK, data, torch.device("cpu"), "cpu", folds)

    def run(self) -> Search:
        Driver(self.lane, self.coordinator, self.tracker, self.stop).run()
        return self

    def record(self, number: int):
        return self.tracker.records[number]

    def status(self, number: int) -> TrialStatus:
        return self.tracker.status(number)


def same_epochs(got: list, expected: list) -> bool:
    """The same epochs with the same metrics (to float rounding)."""
    return [e for e, _ in got] == [e for e, _ in expected] and all(
        mine == pytest.approx(theirs, abs=1e-5)
        for (_, mine), (_, theirs) in zip(got, expected, strict=True))


def test_trials_finish_with_every_epoch_logged_their_network_and_the_sampler_told():
    search = Search([point(3e-3), point(1e-2)]).run()
    for number in (1, 2):
        record = search.record(number)
        assert search.status(number) is FINISHED and record.ends == 1
        assert [e for e, _ in record.epochs] == [1, 2, 3] and record.pack == 1
        assert record.ending.value == record.epochs[-1][1]["val_accuracy"]
        assert record.ending.curve == tuple(m["val_accuracy"] for _, m in record.epochs)
        assert len(record.weights) == 1  # its network, trained
        outcome = search.coordinator.outcomes[number]
        assert outcome.model_uri == f"recorded:run-{number}" and outcome.epochs == 3
    assert [loss for _, loss in search.sampler.told] == [
        -search.record(n).ending.value for n in (1, 2)]
    assert search.scheduler.ended == [1, 2]


def test_a_stopped_trial_is_pruned_with_its_best_value_and_a_stop_at_the_last_epoch_is_not():
    scheduler = ScriptedScheduler({(1, 1): STOP, (2, 3): STOP})
    search = Search([point(), point(1e-2)], scheduler, pruning=PruningSpec("asha")).run()
    pruned = search.record(1)
    assert search.status(1) is PRUNED and len(pruned.epochs) == 1
    assert pruned.ending.value == pruned.epochs[0][1]["val_accuracy"]
    assert pruned.ending.reason == "pruned by the asha rule at epoch 1"
    assert pruned.weights == []  # no model for a pruned trial
    assert search.status(2) is FINISHED and len(search.record(2).epochs) == 3
    assert search.scheduler.heard[0][3] == {2: search.record(2).epochs[0][1]["val_accuracy"]}


def test_a_diverged_trial_fails_and_its_pack_mate_finishes_as_it_would_alone():
    diverging = point(1e12, optimizer="sgd")
    search = Search([diverging, point(1e-2, optimizer="sgd")]).run()
    assert search.status(1) is FAILED and "DivergedError" in search.record(1).ending.reason
    assert search.status(2) is FINISHED
    alone = Search([diverging, point(1e-2, optimizer="sgd")], pack=1).run()  # one at a time
    assert search.record(2).pack == 1 and alone.record(2).pack is None
    assert same_epochs(search.record(2).epochs, alone.record(2).epochs)


def test_early_stopping_finishes_a_trial_with_its_best_epochs_weights():
    """Patience 1 on a learning rate that overshoots: the trial stops once an epoch does not
    improve, and the network it ends with is its best epoch's, as that epoch measured it."""
    search = Search([point(0.5, optimizer="sgd")], epochs=8, patience=1).run()
    record = search.record(1)
    values = [m["val_accuracy"] for _, m in record.epochs]
    best = max(range(len(values)), key=lambda i: (values[i], -i)) + 1
    assert search.status(1) is FINISHED and len(values) < 8  # it stopped early
    assert record.ending.best_epoch == best and len(values) == best + 1
    assert record.ending.value == values[best - 1]
    network = TASK.build_model(record.params, DATA.meta)
    network.load_state_dict(record.weights[0])
    scored = TASK.score(network.eval()(DATA.x_val), DATA.y_val, DATA.meta)
    assert scored["accuracy"] == pytest.approx(values[best - 1])


def test_a_trial_past_its_timeout_fails_after_its_epoch():
    search = Search([point()], trial_timeout_s=1e-9).run()
    assert search.status(1) is FAILED and len(search.record(1).epochs) == 1
    assert "TrialTimeout: trial ran past trial_timeout_s" in search.record(1).ending.reason


def test_past_the_time_budget_every_trial_finishes_at_its_epoch_end_and_none_joins():
    search = Search([point(), point(1e-2), point(3e-2)], stop=StopSpec(time_budget_s=1e-9),
                    max_evals=10).run()
    assert [search.status(n) for n in (1, 2)] == [FINISHED, FINISHED]
    assert all(search.record(n).ending.stopped == "time_budget" for n in (1, 2))
    assert 3 not in search.tracker.records  # past the budget: no new pack, no refill


def test_a_copy_goes_on_from_its_source_with_the_new_values():
    source_lr = 1e-2
    scheduler = ScriptedScheduler({(2, 1): exploit(1, {"learning_rate": source_lr})})
    search = Search([point(source_lr), point(3e-4)], scheduler, pruning=PruningSpec("pbt")).run()
    assert search.record(2).exploits == [(1, 1, {"learning_rate": source_lr})]
    assert [search.status(n) for n in (1, 2)] == [FINISHED, FINISHED]
    # from epoch 2 on, trial 2 is trial 1's row with trial 1's learning rate: the same path
    assert same_epochs(search.record(2).epochs[1:], search.record(1).epochs[1:])
    for key, value in search.record(1).weights[0].items():
        assert torch.allclose(search.record(2).weights[0][key], value, atol=1e-6), key


def test_a_cross_validated_trial_logs_the_fold_mean_and_spread_and_keeps_every_fold():
    folds = make_folds(pooled(DATA).y_train, 3, 0, STRATIFIED)
    search = Search([point()], folds=folds).run()
    record = search.record(1)
    assert search.status(1) is FINISHED and len(record.weights) == 3
    first = record.epochs[0][1]
    folds_values = [first[f"fold_{i}/val_accuracy"] for i in range(3)]
    assert first["val_accuracy"] == pytest.approx(sum(folds_values) / 3)
    assert "val_accuracy_std" in first and "val_loss_std" in first


def test_a_fold_that_diverges_fails_the_whole_trial():
    folds = make_folds(pooled(DATA).y_train, 3, 0, IN_TIME)
    trained = [set(f.train.tolist()) for f in folds]
    row = min(trained[2] - trained[1] - trained[0])  # a row only the last fold trains on
    x_train = DATA.x_train.clone()
    x_train[row] = float("nan")
    search = Search([point()], data=replace(DATA, x_train=x_train), folds=folds).run()
    assert search.status(1) is FAILED and "DivergedError" in search.record(1).ending.reason
    assert search.record(1).epochs == [] and search.scheduler.heard == []


def test_an_interrupt_ends_the_pack_killed_and_is_raised():
    stop = Stop()

    def interrupt(trial, epoch, value, peers):
        stop.request("SIGTERM")
        return CONTINUE

    search = Search([point(), point(1e-2)], ScriptedScheduler(decide=interrupt), halt=stop)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        search.run()
    assert [search.status(n) for n in (1, 2)] == [KILLED, KILLED]
    assert all(search.record(n).ends == 1 for n in (1, 2))
    assert search.coordinator.outcomes == {}  # a resume runs them again


def test_a_free_slot_is_refilled_at_the_next_epoch():
    scheduler = ScriptedScheduler({(1, 1): STOP})
    search = Search([point(), point(1e-2), point(3e-2)], scheduler).run()
    assert [search.status(n) for n in (1, 2, 3)] == [PRUNED, FINISHED, FINISHED]
    assert search.record(3).pack == search.record(1).pack  # it took trial 1's slot
    assert len(search.record(3).epochs) == 3  # its own three epochs
    joined = [h for h in search.scheduler.heard if h[0] == 3]
    assert joined[0][3] == {2: search.record(2).epochs[1][1]["val_accuracy"]}  # with trial 2


def test_a_point_whose_network_cannot_be_built_fails_alone():
    search = Search([point(activation="nonesuch"), point()], pack=1).run()
    assert search.status(1) is FAILED and "nonesuch" in search.record(1).ending.reason
    assert search.status(2) is FINISHED
