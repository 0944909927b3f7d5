"""Optuna's samplers behind mltune's protocol (``mltune.search.samplers.optuna``): the points
they ask, what they refuse, and the one line a user without the extra sees.

Tiny spaces built from mltune's distributions, budgets small enough that the model (TPE, GP)
takes over after two random trials, so what is checked is the model's points too.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

pytest.importorskip("optuna")

from mltune.core.errors import SpecError  # noqa: E402
from mltune.search.samplers.base import Finished  # noqa: E402
from mltune.search.samplers.optuna import startup_trials  # noqa: E402
from mltune.spec.catalogs import SAMPLERS  # noqa: E402
from mltune.spec.distributions import Categorical, Float, Int, Normal  # noqa: E402

ALGOS = ("optuna-tpe", "optuna-gp", "auto")
BUDGET = 8  # start-up of 2 random trials: the rest are the model's

SPACE = {
    "dropout": Float(0.0, 0.5),
    "learning_rate": Float(1e-4, 1e-1, log=True),
    "width": Int(8, 64, log=True),
    "layers": Int(1, 4),
    "decay": Float(0.0, 0.3, step=0.1, source="quniform"),
    "batch_size": Int(16, 64, step=16),
    "activation": Categorical(("relu", "gelu", "tanh")),
    "optimizer": Categorical(({"name": "adam"},
                              {"name": "sgd", "momentum": Float(0.0, 0.99), "nesterov": True})),
    "epochs": 3,
}


def loss_of(point: dict) -> float:
    """A smooth loss with its minimum inside the space: the model has something to learn."""
    return (math.log10(point["learning_rate"]) + 2.5) ** 2 + point["dropout"] + point["decay"]


def make(algo: str, space: dict | None = None, seed: int = 0, budget: int = BUDGET):
    return SAMPLERS.get(algo)(space or SPACE, budget, seed)


def run(sampler, rounds: int, n: int = 1) -> list[dict]:
    """Ask ``n`` points per round, tell each its loss; every point asked, in order."""
    asked = []
    for _ in range(rounds):
        points = sampler.ask(n)
        for point in points:
            sampler.tell(point, loss_of(point))
        asked += points
    return asked


def test_the_three_names_are_in_the_catalog():
    assert {"optuna-tpe", "optuna-gp", "auto"} <= set(SAMPLERS.names())


def test_start_up_is_sized_for_the_budget():
    assert [startup_trials(b) for b in (4, 20, 50, 200)] == [2, 5, 12, 20]


@pytest.mark.parametrize("algo", ALGOS)
def test_points_are_inside_the_space(algo):
    points = run(make(algo), rounds=4, n=2)
    assert len(points) == 8
    for p in points:
        assert 0.0 <= p["dropout"] <= 0.5
        assert 1e-4 <= p["learning_rate"] <= 1e-1
        assert isinstance(p["width"], int) and 8 <= p["width"] <= 64
        assert isinstance(p["layers"], int) and 1 <= p["layers"] <= 4
        assert p["decay"] in (0.0, 0.1, 0.2, 0.3)  # multiples of the step, shown without noise
        assert p["batch_size"] in (16, 32, 48, 64)
        assert p["activation"] in ("relu", "gelu", "tanh")
        assert p["epochs"] == 3
        if p["optimizer"] == "sgd":
            assert 0.0 <= p["optimizer.momentum"] <= 0.99 and p["optimizer.nesterov"] is True
        else:
            assert p["optimizer"] == "adam"
            assert "optimizer.momentum" not in p and "optimizer.nesterov" not in p


def test_a_step_is_counted_in_multiples_of_it_as_hyperopt_rounds():
    (point,) = make("optuna-tpe", {"k": Int(1, 9, step=2)}).ask()
    assert point["k"] in (2, 4, 6, 8)


@pytest.mark.parametrize("algo", ALGOS)
def test_a_log_scale_with_a_step_gives_its_multiples(algo):
    space = {"width": Int(16, 512, log=True, step=16, source="qloguniform"),
             "scale": Float(0.5, 8.0, log=True, step=0.5, source="qloguniform")}
    sampler = make(algo, space)
    for _ in range(5):
        (p,) = sampler.ask()
        assert type(p["width"]) is int and 16 <= p["width"] <= 512 and p["width"] % 16 == 0
        assert type(p["scale"]) is float and 0.5 <= p["scale"] <= 8.0
        assert p["scale"] * 2 == int(p["scale"] * 2)
        sampler.tell(p, math.log(p["width"]) - p["scale"])
    fixed = sampler.ask(1, fixed={"width": 64})
    assert fixed[0]["width"] == 64


def test_a_log_scale_with_no_multiple_of_its_step_inside_is_refused():
    with pytest.raises(SpecError, match=r"^space\.x: qloguniform with no multiple of its step "
                                        r"inside its bounds cannot be sampled by optuna-tpe"):
        make("optuna-tpe", {"x": Float(1.0, 1.5, log=True, step=2.0, source="qloguniform")})


@pytest.mark.parametrize("algo", ALGOS)
def test_fixed_hyperparameters_are_honoured_and_an_options_own_stay_free(algo):
    sampler = make(algo)
    run(sampler, rounds=3)
    points = sampler.ask(3, fixed={"optimizer": "sgd", "batch_size": 32})
    assert len(points) == 3
    assert all(p["optimizer"] == "sgd" and p["batch_size"] == 32 for p in points)
    assert len({p["optimizer.momentum"] for p in points}) == 3
    (adam,) = sampler.ask(1, fixed={"optimizer": "adam"})
    assert adam["optimizer"] == "adam" and "optimizer.momentum" not in adam


def test_fixing_a_name_the_space_lacks_is_an_error():
    with pytest.raises(ValueError, match="not in the space"):
        make("optuna-tpe").ask(1, fixed={"momentum": 0.9})


@pytest.mark.parametrize("algo", ALGOS)
def test_the_same_seed_gives_the_same_points(algo):
    first, again = run(make(algo), rounds=5), run(make(algo), rounds=5)
    assert first == again
    assert run(make(algo, seed=1), rounds=5) != first


@pytest.mark.parametrize("algo", ALGOS)
def test_a_pending_point_is_never_asked_again(algo):
    space = {"activation": Categorical(("relu", "gelu", "tanh")), "layers": Int(1, 2)}
    sampler = make(algo, space)
    interrupted = {"activation": "gelu", "layers": 2}
    sampler.pending(interrupted)  # a resumed search's trial, run again before anything new
    points = sampler.ask(10)
    assert interrupted not in points
    assert len(points) == 5  # the other five of the six: fewer come back, none twice
    assert all(points.count(p) == 1 for p in points)
    assert sampler.ask(1) == []
    sampler.tell(points[0], 0.5)
    assert sampler.ask(1) == [points[0]]  # told, not pending: it may come back


@pytest.mark.parametrize("algo", ALGOS)
def test_rebuilding_equals_telling_one_by_one(algo):
    finished = [Finished(p, loss_of(p)) for p in run(make(algo, seed=7), rounds=5)]
    finished.append(Finished(finished[0].point | {"dropout": 0.25}, None))  # a failed trial
    rebuilt, told = make(algo), make(algo)
    rebuilt.rebuild(finished)
    for f in finished:
        told.pending(f.point)
        told.tell(f.point, f.loss)
    assert rebuilt.ask(2) == told.ask(2)


@pytest.mark.parametrize("algo", ALGOS)
def test_a_resumed_sampler_asks_what_the_interrupted_one_would_have_asked(algo):
    interrupted = make(algo, seed=5)
    finished = [Finished(p, loss_of(p)) for p in run(interrupted, rounds=6)]
    resumed = make(algo, seed=5)
    resumed.rebuild(finished)
    assert resumed.ask(1) == interrupted.ask(1)


def test_a_point_that_no_longer_fits_the_space_is_left_out_of_a_rebuild():
    sampler = make("optuna-tpe", {"x": Float(0.0, 1.0)})
    sampler.rebuild([Finished({"x": 5.0}, 0.1), Finished({"x": 0.5}, 0.2)])
    assert len(sampler.study.trials) == 1
    assert 0.0 <= sampler.ask()[0]["x"] <= 1.0


def test_a_failed_or_nan_trial_is_told_without_error():
    sampler = make("optuna-tpe", {"x": Float(0.0, 1.0)})
    a, b = sampler.ask(2)
    sampler.tell(a, None)
    sampler.tell(b, float("nan"))
    assert [t.state.name for t in sampler.study.trials] == ["FAIL", "FAIL"]


def test_auto_is_tpe_with_a_categorical_and_gp_on_a_numeric_space():
    numeric = {"x": Float(0.0, 1.0), "n": Int(1, 4), "lr": Float(1e-4, 1e-1, log=True)}
    assert type(make("auto", numeric).optuna_sampler).__name__ == "GPSampler"
    assert type(make("auto", SPACE).optuna_sampler).__name__ == "TPESampler"
    plain_choice = numeric | {"activation": Categorical(("relu", "tanh"))}
    assert type(make("auto", plain_choice).optuna_sampler).__name__ == "TPESampler"
    assert type(make("optuna-gp", SPACE).optuna_sampler).__name__ == "GPSampler"


@pytest.mark.parametrize("value, line", [
    (Normal(0.0, 1.0), "space.x: normal cannot be sampled by optuna-tpe; use uniform or "
                       "loguniform, or algo: tpe"),
    (Normal(0.0, 1.0, log=True, source="lognormal"),
     "space.x: lognormal cannot be sampled by optuna-tpe; use uniform or loguniform, or "
     "algo: tpe"),
    (Categorical(("a", "b"), weights=(0.9, 0.1), source="pchoice"),
     "space.x: pchoice weights cannot be sampled by optuna-tpe; use choice (equal weights), "
     "or algo: tpe"),
])
def test_what_optuna_cannot_draw_is_refused_in_one_line(value, line):
    with pytest.raises(SpecError) as caught:
        make("optuna-tpe", {"y": Float(0.0, 1.0), "x": value})
    assert str(caught.value) == line
    assert caught.value.field == "space.x"


def test_a_refused_option_hyperparameter_is_named_by_its_decoded_name():
    space = {"optimizer": Categorical(({"name": "sgd", "momentum": Normal(0.9, 0.05)},))}
    with pytest.raises(SpecError, match=r"^space\.optimizer\.momentum: normal cannot be "
                                        r"sampled by optuna-gp;"):
        make("optuna-gp", space)


def test_a_choice_of_distributions_is_refused_with_what_replaces_it():
    with pytest.raises(SpecError) as caught:
        make("auto", {"x": Categorical((Float(0.0, 1.0), Float(5.0, 6.0)))})
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("space.x: a choice of distributions cannot be sampled "
                                        "by auto (Optuna's samplers); use named options")


def test_without_optuna_asking_for_its_samplers_names_the_extra():
    code = "\n".join([
        "import sys",
        "sys.modules['optuna'] = None  # Optuna not installed",
        "import mltune",
        "import mltune.search.samplers.optuna",
        "from mltune.spec.catalogs import SAMPLERS",
        "from mltune.spec.distributions import Float",
        "assert {'optuna-tpe', 'optuna-gp', 'auto'} <= set(SAMPLERS.names())",
        "for algo in ('optuna-tpe', 'auto'):",
        "    try:",
        "        SAMPLERS.get(algo)({'x': Float(0.0, 1.0)}, 20, 0)",
        "    except mltune.SpecError as exc:",
        "        print(exc)",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "algo: 'optuna-tpe' needs Optuna, which is not installed; install it with: "
        "pip install 'mltune[optuna]'",
        "algo: 'auto' needs Optuna, which is not installed; install it with: "
        "pip install 'mltune[optuna]'",
    ]
