"""The YAML space -> hyperopt, and hyperopt's samples -> the params users see."""

from __future__ import annotations

import numpy as np
import pytest
from hyperopt import space_eval
from hyperopt.pyll.stochastic import sample

from mltune.core.errors import SpecError
from mltune.spec.space import build_space, decode


def test_decoded_params_are_flat_native_and_name_the_chosen_option():
    space = build_space({
        "lr": {"loguniform": [1e-4, 1e-1]},
        "layers": {"quniform": [1, 4, 1]},
        "activation": {"choice": ["relu", "gelu"]},
        "optimizer": {"choice": [{"name": "adam"},
                                 {"name": "sgd", "momentum": {"uniform": [0.0, 0.99]}}]},
        "batch_size": 64,
    })
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        params = decode(sample(space, rng=rng))
        assert isinstance(params["layers"], int) and 1 <= params["layers"] <= 4
        assert type(params["lr"]) is float and 1e-4 <= params["lr"] <= 1e-1
        assert params["activation"] in ("relu", "gelu") and params["batch_size"] == 64
        seen.add(params["optimizer"])
        assert ("optimizer.momentum" in params) == (params["optimizer"] == "sgd")
    assert seen == {"adam", "sgd"}


def test_decode_of_space_eval_gives_the_same_params_as_the_objective_sees():
    space = build_space({"optimizer": {"choice": [{"name": "adam"},
                                                  {"name": "sgd",
                                                   "momentum": {"uniform": [0.5, 0.9]}}]}})
    vals = {"optimizer": 1, "optimizer[1].momentum": np.float64(0.7)}
    assert decode(space_eval(space, vals)) == {"optimizer": "sgd", "optimizer.momentum": 0.7}


@pytest.mark.parametrize(("yaml_space", "message"), [
    ({"lr": {"loguniform": [0.1, 0.001]}},
     "space.lr.loguniform: low bound 0.1 must be < high bound 0.001"),
    ({"lr": {"loguniform": [0, 0.1]}}, "space.lr.loguniform: low bound 0 must be > 0"),
    ({"x": {"gaussian": [0, 1]}}, "space.x: unknown distribution 'gaussian'"),
    ({"x": {"choice": []}}, "space.x.choice: expected a non-empty list of options"),
    ({"x": {"pchoice": [[0.5, "a"], [0.4, "b"]]}}, "space.x.pchoice: probabilities sum to 0.9"),
])
def test_bad_distributions_name_their_path(yaml_space, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("(", r"\(")):
        build_space(yaml_space)
