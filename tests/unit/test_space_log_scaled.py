"""Which params a space draws on a log scale, named as decoded params are."""

from __future__ import annotations

from mltune.spec.catalogs import SAMPLERS
from mltune.spec.space import build_space, log_scaled_params

SPACE = {
    "learning_rate": {"loguniform": [1.0e-4, 1.0e-1]},
    "width": {"qloguniform": [8, 256, 8]},
    "noise": {"lognormal": [0.0, 1.0]},
    "dropout": {"uniform": [0.0, 0.5]},
    "layers": {"quniform": [1, 4, 1]},
    "activation": {"choice": ["relu", "gelu"]},
    "epochs": 3,
    "optimizer": {"choice": [
        {"name": "adam", "beta": {"uniform": [0.8, 0.99]}},
        {"name": "sgd", "momentum": {"uniform": [0.0, 0.99]},
         "decay": {"loguniform": [1.0e-6, 1.0e-2]}},
    ]},
    "schedule": {"pchoice": [[0.5, {"name": "step", "gamma": {"loguniform": [0.1, 0.9]}}],
                             [0.5, "none"]]},
    "mixed": {"choice": [{"loguniform": [1.0, 2.0]}, 0.5]},
}


def test_log_distributions_and_the_conditional_params_they_draw():
    assert log_scaled_params(SPACE) == {"learning_rate", "width", "noise", "optimizer.decay",
                                        "schedule.gamma"}


def test_names_match_the_decoded_params():
    names = set()
    sampler = SAMPLERS.get("rand")(build_space(SPACE), 20, 0)
    for _ in range(20):  # enough draws for every option of every choice
        names |= set(sampler.ask(1)[0])
    assert log_scaled_params(SPACE) <= names


def test_what_is_not_a_distribution_is_passed_over():
    assert log_scaled_params({"a": "loguniform", "b": {"loguniform": "x", "c": 1}, "d": None,
                              "e": {"choice": "not a list"}}) == set()
