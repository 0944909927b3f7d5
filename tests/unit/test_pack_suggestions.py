"""How TPE proposes a pack: the first point fixes the shape, the rest differ over the free
hyperparameters; a pack of one is exactly what hyperopt's fmin would have proposed."""

from __future__ import annotations

import time
from functools import partial

import numpy as np
from hyperopt import JOB_STATE_DONE, STATUS_OK, Trials, fmin, space_eval, tpe

from mltune.search.hyperopt import point_of, suggest_pack
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
ALGO = partial(tpe.suggest, n_startup_jobs=3)


def loss(params: dict) -> float:
    return abs(np.log10(params["learning_rate"]) + 2) + params["dropout"] + params["num_layers"]


def finish(docs: list, trials: Trials) -> None:
    for doc in docs:
        params = decode(space_eval(SPACE, point_of(doc)))
        doc["state"], doc["result"] = JOB_STATE_DONE, {"status": STATUS_OK, "loss": loss(params)}
        doc["refresh_time"] = time.time()
    trials.refresh()


def test_members_share_the_shape_and_differ_in_the_free_hyperparameters():
    trials, rng = Trials(), np.random.default_rng(0)
    for _ in range(4):  # past TPE's start-up, too
        docs = suggest_pack(SPACE, trials, ALGO, rng, lambda point: 4, FREE.__contains__)
        members = [decode(space_eval(SPACE, point_of(d))) for d in docs]
        assert len(members) == 4
        for key in ("num_layers", "hidden_size", "optimizer"):
            assert len({m[key] for m in members}) == 1
        assert len({m["learning_rate"] for m in members}) == 4
        if members[0]["optimizer"] == "sgd":  # the chosen option's own values stay free
            assert len({m["optimizer.momentum"] for m in members}) == 4
        assert all(d["state"] != JOB_STATE_DONE for d in docs)  # pending until trained
        finish(docs, trials)
    assert len(trials.trials) == 16


def test_a_pack_is_smaller_when_too_few_distinct_points_exist():
    space = build_space({"width": {"choice": [8, 16]}, "learning_rate": {"choice": [0.1, 0.01]}})
    docs = suggest_pack(space, Trials(), ALGO, np.random.default_rng(1), lambda point: 5,
                        {"learning_rate"}.__contains__)
    points = [point_of(d) for d in docs]
    assert len(points) == 2 and points[0] != points[1]
    no_free = suggest_pack(space, Trials(), ALGO, np.random.default_rng(1), lambda point: 5,
                           lambda key: False)
    assert len(no_free) == 1


def test_packs_of_one_propose_what_fmin_proposes():
    fmin_trials = Trials()
    fmin(lambda sample: loss(decode(sample)), SPACE, algo=ALGO, max_evals=10,
         trials=fmin_trials, rstate=np.random.default_rng(7), show_progressbar=False)
    ours, rng = Trials(), np.random.default_rng(7)
    for _ in range(10):
        finish(suggest_pack(SPACE, ours, ALGO, rng, lambda point: 1, FREE.__contains__), ours)
    assert [point_of(d) for d in ours.trials] == [point_of(d) for d in fmin_trials.trials]
