"""The sampler contract, held by every sampler in the catalog (in the manner of Optuna's
``tests/samplers_tests/test_samplers.py``): points inside the space, fixed hyperparameters
honoured, the same points for the same seed, no pending point asked twice, and a history
learnt at once (resume) worth the same as one told trial by trial."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest

import mltune
from mltune.search.samplers.base import Finished
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.space import build_space

SPACE = build_space({
    "f": {"uniform": [-1.0, 2.0]},
    "fs": {"quniform": [0.0, 1.0, 0.25]},
    "lf": {"loguniform": [1e-4, 1e-1]},
    "i": {"quniform": [0, 8, 2]},
    "li": {"qloguniform": [1, 64, 1]},
    "r": {"randint": [2, 5]},
    "c": {"choice": ["a", "b", True, 3]},
    "opt": {"choice": [{"name": "adam"}, {"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
    "lit": "fixed",
})
KEYS = {"f", "fs", "lf", "i", "li", "r", "c", "opt", "lit"}


def make(name: str, seed: int = 0, space: Mapping[str, Any] = SPACE, budget: int = 12) -> Any:
    factory = SAMPLERS.get(name)
    try:
        return factory(space, budget, seed)
    except mltune.SpecError as exc:  # an optional extra that is not installed
        if "pip install" in str(exc):
            pytest.importorskip("optuna")
        raise


def loss(point: Mapping[str, Any]) -> float:
    return abs(point["f"] - 0.5) + point["fs"] + abs(math.log10(point["lf"]) + 2) + point["i"]


def check_inside(point: Mapping[str, Any]) -> None:
    expected = KEYS | ({"opt.momentum"} if point["opt"] == "sgd" else set())
    assert set(point) == expected
    assert isinstance(point["f"], float) and -1.0 <= point["f"] <= 2.0
    assert isinstance(point["fs"], float) and point["fs"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert isinstance(point["lf"], float) and 1e-4 <= point["lf"] <= 1e-1
    assert type(point["i"]) is int and point["i"] in (0, 2, 4, 6, 8)
    assert type(point["li"]) is int and 1 <= point["li"] <= 64
    assert type(point["r"]) is int and 2 <= point["r"] <= 4  # randint: high excluded
    assert any(point["c"] == o and type(point["c"]) is type(o) for o in ("a", "b", True, 3))
    assert point["opt"] in ("adam", "sgd")
    if point["opt"] == "sgd":
        assert 0.5 <= point["opt.momentum"] <= 0.99
    assert point["lit"] == "fixed"


def history(sampler: Any, rounds: int) -> list[tuple[dict[str, Any], float]]:
    told = []
    for _ in range(rounds):
        (point,) = sampler.ask(1)
        sampler.tell(point, loss(point))
        told.append((point, loss(point)))
    return told


@pytest.fixture(params=SAMPLERS.names())
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_every_point_lies_inside_the_space(name: str) -> None:
    sampler = make(name)
    for point, _ in history(sampler, 12):  # past every start-up: the model's points too
        check_inside(point)


def test_fixed_hyperparameters_are_honoured_and_the_rest_still_drawn(name: str) -> None:
    sampler = make(name)
    history(sampler, 4)
    fixed = {"c": True, "opt": "sgd", "i": 4, "li": 8}
    points = sampler.ask(3, fixed=fixed)
    assert len(points) == 3
    for point in points:
        check_inside(point)
        assert {k: point[k] for k in fixed} == fixed
        assert "opt.momentum" in point  # a fixed option's own hyperparameters stay free
    assert len({tuple(sorted(p.items())) for p in points}) == 3  # three distinct members


def test_the_same_seed_gives_the_same_points(name: str) -> None:
    assert history(make(name, seed=3), 8) == history(make(name, seed=3), 8)
    assert history(make(name, seed=3), 2) != history(make(name, seed=4), 2)


def test_a_pending_point_is_never_asked_again(name: str) -> None:
    small = build_space({"a": {"choice": [1, 2, 3]}, "b": {"choice": ["x", "y"]}})
    sampler = make(name, space=small)
    sampler.pending({"a": 1, "b": "x"})  # an interrupted trial, to run again
    asked = [p for _ in range(8) for p in sampler.ask(1)]
    assert asked and {"a": 1, "b": "x"} not in asked
    assert len(asked) == len({tuple(sorted(p.items())) for p in asked})


def test_a_rebuilt_sampler_asks_what_one_told_trial_by_trial_asks(name: str) -> None:
    told = make(name, seed=5)
    past = history(told, 6)
    past.append((told.ask(1)[0], None))  # a failed trial
    told.tell(past[-1][0], None)
    rebuilt = make(name, seed=5)
    rebuilt.rebuild([Finished(point, value) for point, value in past])
    assert rebuilt.ask(1) == told.ask(1)


def test_a_rebuilt_sampler_runs_its_interrupted_points_as_pending(name: str) -> None:
    sampler = make(name, seed=1)
    past = history(make(name, seed=1), 3)
    interrupted = past.pop()[0]
    sampler.rebuild([Finished(point, value) for point, value in past])
    sampler.pending(interrupted)
    assert interrupted not in sampler.ask(2)


def test_a_point_it_never_asked_is_run_as_pending_then_learnt_when_told(name: str) -> None:
    """A search's start points (``start:``, the task's defaults) are no sampler's proposal:
    marked pending, they are never asked while they run, and told, they are learnt as if
    the sampler had asked them (a sampler rebuilt from the same history asks the same)."""
    given = {"f": 0.5, "fs": 0.25, "lf": 0.01, "i": 4, "li": 8, "r": 3, "c": True,
             "opt": "sgd", "opt.momentum": 0.9, "lit": "fixed"}
    sampler = make(name, seed=2)
    sampler.pending(given)
    asked = sampler.ask(3)
    assert given not in asked
    for point in asked:
        check_inside(point)
    sampler.tell(given, 0.25)
    for point in asked:
        sampler.tell(point, loss(point))
    rebuilt = make(name, seed=2)
    rebuilt.rebuild([Finished(given, 0.25)] + [Finished(p, loss(p)) for p in asked])
    assert rebuilt.ask(1) == sampler.ask(1)


def test_the_digits_space_gives_the_same_first_eight_tpe_points_run_to_run() -> None:
    """The image task's default space (digits), tpe, seed 0, budget 20, each point told a
    loss of its own: the sequence a user's search starts with, pinned."""
    spec = mltune.build_spec({"task": "image", "data": {"source": "sklearn:digits"}})
    sampler = SAMPLERS.get(spec.algo)(build_space(spec.space), spec.max_evals, spec.seed)
    points = []
    for _ in range(8):
        (point,) = sampler.ask(1)
        sampler.tell(point, abs(math.log10(point["learning_rate"]) + 2.5) + point["dropout"])
        points.append(point)
    assert points == DIGITS_TPE_FIRST_EIGHT


DIGITS_TPE_FIRST_EIGHT = [{'activation': 'relu',
                           'batch_norm': False,
                           'batch_size': 64,
                           'channels': 32,
                           'dropout': 0.11056196688095027,
                           'hidden_size': 64,
                           'kernel_size': 5,
                           'learning_rate': 0.002790665805354992,
                           'loss': 'cross_entropy',
                           'num_blocks': 3,
                           'optimizer': 'sgd',
                           'optimizer.momentum': 0.5933431356374841,
                           'weight_decay': 5.7191793058527115e-06,
                           'weight_init': 'xavier_normal'},
                          {'activation': 'gelu',
                           'batch_norm': True,
                           'batch_size': 64,
                           'channels': 64,
                           'dropout': 0.07616343659434566,
                           'hidden_size': 128,
                           'kernel_size': 5,
                           'learning_rate': 0.00015116004617843711,
                           'loss': 'cross_entropy',
                           'num_blocks': 2,
                           'optimizer': 'sgd',
                           'optimizer.momentum': 0.5920096891189441,
                           'weight_decay': 1.267587049825375e-05,
                           'weight_init': 'kaiming_uniform'},
                          {'activation': 'leaky_relu',
                           'batch_norm': True,
                           'batch_size': 64,
                           'channels': 16,
                           'dropout': 0.3418771373447858,
                           'hidden_size': 128,
                           'kernel_size': 3,
                           'learning_rate': 0.0006836868988177559,
                           'loss': 'label_smoothing',
                           'num_blocks': 2,
                           'optimizer': 'adamw',
                           'weight_decay': 0.0006474534108746142,
                           'weight_init': 'kaiming_normal'},
                          {'activation': 'gelu',
                           'batch_norm': True,
                           'batch_size': 64,
                           'channels': 64,
                           'dropout': 0.2325877058753566,
                           'hidden_size': 128,
                           'kernel_size': 3,
                           'learning_rate': 0.004905086111093658,
                           'loss': 'cross_entropy',
                           'num_blocks': 2,
                           'optimizer': 'sgd',
                           'optimizer.momentum': 0.9392448043591746,
                           'weight_decay': 1.818041556029521e-05,
                           'weight_init': 'default'},
                          {'activation': 'tanh',
                           'batch_norm': False,
                           'batch_size': 128,
                           'channels': 16,
                           'dropout': 0.050376991362977575,
                           'hidden_size': 256,
                           'kernel_size': 5,
                           'learning_rate': 0.00022381849541854408,
                           'loss': 'cross_entropy',
                           'num_blocks': 2,
                           'optimizer': 'adamw',
                           'weight_decay': 0.005083309220423552,
                           'weight_init': 'default'},
                          {'activation': 'relu',
                           'batch_norm': False,
                           'batch_size': 32,
                           'channels': 32,
                           'dropout': 0.4786617753678009,
                           'hidden_size': 64,
                           'kernel_size': 5,
                           'learning_rate': 0.01935728513012513,
                           'loss': 'label_smoothing',
                           'num_blocks': 3,
                           'optimizer': 'adam',
                           'weight_decay': 3.2692578291672145e-06,
                           'weight_init': 'xavier_normal'},
                          {'activation': 'relu',
                           'batch_norm': False,
                           'batch_size': 64,
                           'channels': 32,
                           'dropout': 0.21855115429314037,
                           'hidden_size': 64,
                           'kernel_size': 5,
                           'learning_rate': 0.02684021896087158,
                           'loss': 'cross_entropy',
                           'num_blocks': 3,
                           'optimizer': 'sgd',
                           'optimizer.momentum': 0.5255906272012256,
                           'weight_decay': 0.00021578184809094522,
                           'weight_init': 'xavier_uniform'},
                          {'activation': 'elu',
                           'batch_norm': False,
                           'batch_size': 32,
                           'channels': 32,
                           'dropout': 0.007348176925721012,
                           'hidden_size': 64,
                           'kernel_size': 5,
                           'learning_rate': 0.0026880073715868638,
                           'loss': 'cross_entropy',
                           'num_blocks': 1,
                           'optimizer': 'adam',
                           'weight_decay': 1.1365446431043e-06,
                           'weight_init': 'orthogonal'}]
