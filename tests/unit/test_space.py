"""The YAML space -> mltune's distributions, and sampled points -> the params users see."""

from __future__ import annotations

import numpy as np
import pytest

from mltune.core.errors import SpecError
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.distributions import Categorical, Float, Int, Normal
from mltune.spec.space import build_space, decode, option_index, parse_point


def test_decoded_params_are_flat_native_and_name_the_chosen_option():
    space = build_space({
        "lr": {"loguniform": [1e-4, 1e-1]},
        "layers": {"quniform": [1, 4, 1]},
        "activation": {"choice": ["relu", "gelu"]},
        "optimizer": {"choice": [{"name": "adam"},
                                 {"name": "sgd", "momentum": {"uniform": [0.0, 0.99]}}]},
        "batch_size": 64,
    })
    sampler = SAMPLERS.get("rand")(space, 40, 0)
    seen = set()
    for _ in range(40):
        (params,) = sampler.ask(1)
        assert isinstance(params["layers"], int) and 1 <= params["layers"] <= 4
        assert type(params["lr"]) is float and 1e-4 <= params["lr"] <= 1e-1
        assert params["activation"] in ("relu", "gelu") and params["batch_size"] == 64
        seen.add(params["optimizer"])
        assert ("optimizer.momentum" in params) == (params["optimizer"] == "sgd")
    assert seen == {"adam", "sgd"}


def test_decode_flattens_a_nested_sample_into_native_params():
    sample = {"optimizer": {"name": "sgd", "momentum": np.float64(0.7)}, "layers": np.int64(2)}
    assert decode(sample) == {"optimizer": "sgd", "optimizer.momentum": 0.7, "layers": 2}
    assert type(decode(sample)["layers"]) is int


def test_the_yaml_becomes_mltunes_distributions():
    space = build_space({
        "lr": {"loguniform": [1e-4, 1e-1]}, "layers": {"quniform": [1, 4, 1]},
        "p": {"quniform": [0.0, 0.5, 0.1]}, "k": {"randint": [2, 5]},
        "b": {"qnormal": [10, 2, 1]}, "act": {"pchoice": [[0.25, "relu"], [0.75, "gelu"]]},
        "fixed": 7})
    assert space["lr"] == Float(1e-4, 1e-1, log=True, source="loguniform")
    assert space["layers"] == Int(1, 4, step=1, source="quniform")
    assert space["p"] == Float(0.0, 0.5, step=0.1, source="quniform")
    assert space["k"] == Int(2, 4, source="randint")  # high included
    assert space["b"] == Normal(10.0, 2.0, step=1.0, whole=True, source="qnormal")
    assert space["act"] == Categorical(("relu", "gelu"), weights=(0.25, 0.75), source="pchoice")
    assert space["fixed"] == 7


def test_a_point_is_read_back_from_mlflows_params_typed_as_the_space_draws_it():
    space = build_space({
        "lr": {"loguniform": [1e-4, 1e-1]}, "layers": {"quniform": [1, 4, 1]},
        "norm": {"choice": [True, False]}, "width": {"choice": [16, 32]}, "fixed": 7,
        "optimizer": {"choice": [{"name": "adam"},
                                 {"name": "sgd", "momentum": {"uniform": [0.5, 0.9]}}]}})
    raw = {"lr": "0.001", "layers": "3", "norm": "false", "width": "32", "fixed": "7",
           "optimizer": "sgd", "optimizer.momentum": "0.7", "other": "x"}
    point = parse_point(space, raw)
    assert point == {"lr": 0.001, "layers": 3, "norm": False, "width": 32, "fixed": 7,
                     "optimizer": "sgd", "optimizer.momentum": 0.7}
    assert option_index(space["optimizer"], "optimizer", point) == 1
    assert option_index(space["norm"], "norm", {"norm": 0}) is None  # False is not 0
    assert parse_point(space, {**raw, "width": "48"}) is None  # not a point of this space
    assert parse_point(space, {"lr": "0.001"}) is None


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
