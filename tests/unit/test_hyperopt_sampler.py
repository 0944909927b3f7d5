"""hyperopt behind the protocol: how a pack is asked (the first point fixes the shape, the rest
differ over the free hyperparameters), that a pack of one is exactly what hyperopt's ``fmin``
proposes (TPE unchanged), and what TPE learns from a trial and a resumed history."""

from __future__ import annotations

import numpy as np
from hyperopt import Trials, fmin, space_eval

from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.search.packs.shapes import shape
from mltune.search.samplers.base import Finished, loss_of
from mltune.search.samplers.hyperopt import HyperoptSampler, startup_trials, to_hyperopt
from mltune.spec.space import build_space, decode

SPACE = build_space({
    "num_layers": {"quniform": [1, 4, 1]},
    "hidden_size": {"choice": [32, 64, 128]},
    "learning_rate": {"loguniform": [1e-4, 1e-1]},
    "dropout": {"uniform": [0.0, 0.5]},
    "optimizer": {"choice": [{"name": "adam"},
                             {"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
})
FREE = {"learning_rate", "dropout"}


def loss(params: dict) -> float:
    return abs(np.log10(params["learning_rate"]) + 2) + params["dropout"] + params["num_layers"]


def ask_pack(sampler: HyperoptSampler, size: int, free=FREE.__contains__) -> list[dict]:
    points = sampler.ask(1)
    return points + sampler.ask(size - 1, fixed=shape(points[0], free))


def test_members_share_the_shape_and_differ_in_the_free_hyperparameters():
    sampler = HyperoptSampler("tpe", SPACE, budget=12, seed=0)
    for _ in range(4):  # past TPE's start-up, too
        members = ask_pack(sampler, 4)
        assert len(members) == 4
        for key in ("num_layers", "hidden_size", "optimizer"):
            assert len({m[key] for m in members}) == 1
        assert len({m["learning_rate"] for m in members}) == 4
        if members[0]["optimizer"] == "sgd":  # the chosen option's own values stay free
            assert len({m["optimizer.momentum"] for m in members}) == 4
        for member in members:
            sampler.tell(member, loss(member))
    assert len(sampler.trials.trials) == 16


def test_a_pack_is_smaller_when_too_few_distinct_points_exist():
    space = build_space({"width": {"choice": [8, 16]}, "learning_rate": {"choice": [0.1, 0.01]}})
    points = ask_pack(HyperoptSampler("tpe", space, 20, 1), 5, {"learning_rate"}.__contains__)
    assert len(points) == 2 and points[0] != points[1]
    assert len(ask_pack(HyperoptSampler("tpe", space, 20, 1), 5, lambda key: False)) == 1


def test_packs_of_one_propose_what_fmin_proposes():
    algo = HyperoptSampler("tpe", SPACE, budget=12, seed=7).algo  # 3 start-up trials
    fmin_trials = Trials()
    hp_space = to_hyperopt(SPACE)
    fmin(lambda sample: loss(decode(sample)), hp_space, algo=algo, max_evals=10,
         trials=fmin_trials, rstate=np.random.default_rng(7), show_progressbar=False)
    expected = [decode(space_eval(hp_space, {k: v[0] for k, v in t["misc"]["vals"].items()
                                             if v})) for t in fmin_trials.trials]
    sampler, ours = HyperoptSampler("tpe", SPACE, budget=12, seed=7), []
    for _ in range(10):
        (point,) = sampler.ask(1)
        sampler.tell(point, loss(point))
        ours.append(point)
    assert ours == expected


def outcome(number, status, value=None):
    metrics = {} if value is None else {"val_accuracy": value}
    return TrialOutcome(number, f"run{number}", {}, status, metrics)


def test_what_a_sampler_learns_is_the_measured_metric_as_a_loss():
    assert loss_of(outcome(1, TrialStatus.FINISHED, 0.8), "val_accuracy", Direction.MAX) == -0.8
    assert loss_of(outcome(2, TrialStatus.PRUNED, 0.3), "val_accuracy", Direction.MIN) == 0.3
    # a trial whose model could not be logged still measured its metric
    assert loss_of(outcome(3, TrialStatus.FAILED, 0.5), "val_accuracy", Direction.MAX) == -0.5
    assert loss_of(outcome(4, TrialStatus.FAILED), "val_accuracy", Direction.MAX) is None


def test_a_rebuilt_history_is_done_and_the_interrupted_points_pending():
    sampler = HyperoptSampler("tpe", SPACE, budget=20, seed=0)
    adam = {"num_layers": 2, "hidden_size": 64, "learning_rate": 0.01, "dropout": 0.1,
            "optimizer": "adam"}
    sgd = {**adam, "optimizer": "sgd", "optimizer.momentum": 0.9}
    sampler.rebuild([Finished(adam, -0.8), Finished(sgd, None)])
    sampler.pending({**adam, "learning_rate": 0.1})
    docs = sampler.trials._dynamic_trials
    assert [d["result"].get("loss") for d in docs] == [-0.8, None, None]
    assert docs[1]["result"]["status"] == "fail" and docs[2]["result"]["status"] == "new"
    # labels as hyperopt names them: the choice's index; the inactive label present and empty
    assert docs[1]["misc"]["vals"]["optimizer"] == [1]
    assert docs[1]["misc"]["vals"]["optimizer[1].momentum"] == [0.9]
    assert docs[0]["misc"]["vals"]["optimizer[1].momentum"] == []


def test_tpe_start_up_is_a_quarter_of_the_budget_within_2_to_20():
    assert [startup_trials(n) for n in (1, 8, 40, 200)] == [2, 2, 10, 20]
    assert HyperoptSampler("tpe", SPACE, 40, 0).algo.keywords == {"n_startup_jobs": 10}
