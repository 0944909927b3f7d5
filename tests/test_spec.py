"""Spec and space: what users write in YAML becomes what trials receive."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import tomllib
import torch
import yaml

from mltune.core.errors import SpecError
from mltune.spec.build import load_spec
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.space import build_space

REPO = Path(__file__).resolve().parents[1]


def draw(space_yaml: dict, seed: int = 0) -> dict:
    return SAMPLERS.get("rand")(build_space(space_yaml), 1, seed).ask(1)[0]


def test_whole_step_q_distributions_come_back_as_int_and_log_bounds_are_real_values():
    space = {"layers": {"quniform": [1, 4, 1]}, "lr": {"loguniform": [1e-4, 1e-1]},
             "units": {"qloguniform": [16, 256, 16]}, "p": {"quniform": [0.0, 0.5, 0.1]},
             "k": {"randint": [2, 5]}}
    for seed in range(30):
        values = draw(space, seed)
        assert type(values["layers"]) is int and 1 <= values["layers"] <= 4
        assert 1e-4 <= values["lr"] <= 1e-1
        assert type(values["units"]) is int and values["units"] % 16 == 0
        assert isinstance(values["p"], float)
        assert type(values["k"]) is int and 2 <= values["k"] < 5


def test_conditional_choices_decode_to_flat_names():
    space = {"optimizer": {"choice": [{"name": "adam"},
                                      {"name": "sgd", "momentum": {"uniform": [0.1, 0.9]}}]},
             "act": {"pchoice": [[0.5, "relu"], [0.5, "gelu"]]}, "fixed": 7}
    seen = {draw(space, seed)["optimizer"] for seed in range(20)}
    assert seen == {"adam", "sgd"}
    for seed in range(20):
        values = draw(space, seed)
        assert values["fixed"] == 7 and values["act"] in {"relu", "gelu"}
        if values["optimizer"] == "sgd":
            assert 0.1 <= values["optimizer.momentum"] <= 0.9
        else:
            assert "optimizer.momentum" not in values


def test_all_distributions_are_drawn_by_hyperopts_samplers():
    space = {"a": {"normal": [0, 1]}, "b": {"qnormal": [10, 2, 1]}, "c": {"lognormal": [0, 1]},
             "d": {"uniform": [-1, 1]}, "e": {"choice": [{"uniform": [0, 1]}, 5]}}
    seen = []
    for algo in ("tpe", "rand", "anneal"):
        sampler = SAMPLERS.get(algo)(build_space(space), 5, 0)
        for _ in range(5):
            (point,) = sampler.ask(1)
            sampler.tell(point, 0.0)
            seen.append(point)
    assert len(seen) == 15
    assert all(type(v["b"]) is int and v["c"] > 0 and math.isfinite(v["a"]) for v in seen)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"lr": {"loguniform": [0.1, 0.01]}}, r"low bound 0\.1 must be < high"),
        ({"lr": {"loguniform": [0, 1]}}, r"space\.lr\.loguniform: low bound 0 must be > 0"),
        ({"lr": {"logunifrom": [0.1, 1]}}, r"space\.lr: unknown distribution 'logunifrom'"),
        ({"n": {"quniform": [1, 4]}}, r"quniform: expected \[low, high, q\], got \[1, 4\]"),
        ({"n": {"quniform": [1, 4, 0]}}, r"step q=0 must be > 0"),
        ({"a": {"choice": []}}, r"space\.a\.choice: expected a non-empty list"),
        ({"a": {"pchoice": [[0.5, "x"], [0.2, "y"]]}}, r"probabilities sum to 0\.7"),
        ({"a": {"normal": [0, -1]}}, r"sigma=-1 must be > 0"),
        ({"a": {"uniform": ["x", 1]}}, r"'x' is not a finite number"),
    ],
)
def test_bad_space_is_refused_naming_field_and_value(space, message):
    with pytest.raises(SpecError, match=message):
        build_space(space)


def test_overrides_and_defaults(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump({"max_evals": 40, "space": {"dropout": 0.2}}))
    spec = load_spec(config, {"epochs": 3, "data.val_size": 0.2, "space.channels": 16})
    assert (spec.max_evals, spec.epochs, spec.data.val_size) == (40, 3, 0.2)
    assert spec.space["dropout"] == 0.2 and spec.space["channels"] == 16
    assert "learning_rate" in spec.space  # the task's default space fills the rest
    assert spec.metric == "val_accuracy" and spec.mode == "max"
    assert spec.registered_model == "mltune-image"
    assert load_spec(None, {"metric": "val_loss"}).mode == "min"
    # ASHA unless the spec says otherwise: benchmarks/anytime.py's winner at equal wall time
    assert spec.pruning.rule == "asha" and spec.pruning.options == {"min_epochs": 1, "eta": 3}
    assert load_spec(None, {"pruning": {"rule": "none"}}).pruning.rule == "none"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"task": "audio"}, r"task: unknown task 'audio'; available: image"),
        ({"max_evals": -1}, r"max_evals: -1 is not allowed; expected a whole number >= 1"),
        ({"metric": "val_auc"}, r"metric: 'val_auc' is not logged by task 'image'; available:"),
        ({"mode": "maximum"}, r"mode: 'maximum' is not allowed; expected one of: max, min"),
        ({"algo": "grid"}, r"algo: 'grid' is not allowed; expected one of: anneal, .*rand, tpe"),
        ({"epochs": "ten"}, r"epochs: expected a whole number, got 'ten'"),
        ({"data": {"val_size": 1.5}}, r"data\.val_size: 1\.5 is not allowed"),
        ({"data": {"colour": "red"}}, r"data\.colour: unknown key for task 'image'"),
        ({"data": {"split_seed": -1}}, r"data\.split_seed: -1 is not allowed; expected a whole"),
        ({"task": "timeseries", "data": {"source": "sales.csv", "split_seed": 3}},
         r"data\.split_seed: 3: task 'timeseries' cuts its splits by time, nothing is drawn"),
        ({"devices": "cpu"}, r"devices: unknown key; did you mean device\? Allowed: name, task"),
        ({"colour": "red"}, r"colour: unknown key; allowed: name, task"),
        ({"device": "tpu"}, r"device: 'tpu' is not allowed"),
    ],
)
def test_bad_spec_values_are_refused(raw, message, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=message):
        load_spec(config)


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("name: x\nspace:\n  lr: {loguniform: [1e-4, 1e-1]\n")
    with pytest.raises(SpecError, match=r"config: '.*broken\.yaml' is not valid YAML at line \d+"):
        load_spec(config)


def test_examples_are_valid_specs():
    for path in sorted((REPO / "examples").glob("*.yaml")):
        assert load_spec(path).name


def test_conda_env_and_pyproject_list_the_same_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())["dependencies"]
    pip = next(d["pip"] for d in conda if isinstance(d, dict))

    def normal(reqs: list[str]) -> set[str]:
        return {re.sub(r"\s+", "", r.lower()) for r in reqs}

    assert normal(pip) == normal(project)


def test_spec_round_trips_through_its_yaml_form(tmp_path):
    spec = load_spec(None, {"epochs": 2, "data.val_size": 0.2, "space.dropout": 0.3,
                            "min_delta": 0.01})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict()))
    assert load_spec(path) == spec


def test_a_split_seed_keeps_the_rows_of_each_split_whatever_the_search_seed():
    from mltune.tasks import task_for

    def splits(raw):
        spec = load_spec(None, {"task": "tabular", **raw})
        data = task_for(spec).load(spec.data, spec.split_seed)
        return [getattr(data, f"x_{name}") for name in ("train", "val", "test")]

    fixed = [splits({"seed": seed, "data.split_seed": 7}) for seed in (0, 1)]
    assert all(torch.equal(a, b) for a, b in zip(*fixed, strict=True))
    drawn = [splits({"seed": seed}) for seed in (0, 1)]  # unset: the search's seed draws them
    assert not torch.equal(drawn[0][2], drawn[1][2])
    assert all(torch.equal(a, b) for a, b in zip(drawn[0], splits({"data.split_seed": 0}),
                                                 strict=True))
    assert load_spec(None, {"seed": 4}).to_dict()["data"].get("split_seed") is None


# -- start: the points a search trains first --------------------------------------------------

def _start_points(spec):
    from mltune.spec.start import start_points
    from mltune.tasks import task_for

    task = task_for(spec)
    return task, start_points(spec, task, build_space(spec.space))


def test_the_first_point_of_a_search_is_the_tasks_defaults_by_default():
    spec = load_spec(None, {"task": "tabular"})  # sklearn:breast_cancer
    assert spec.start is None
    task, points = _start_points(spec)
    assert len(points) == 1
    (point,) = points
    assert set(point) == set(spec.space)  # every hyperparameter the space has, no other
    assert point == {k: task.default_params()[k] for k in point}
    assert all(type(v) in (int, float, str, bool) for v in point.values())  # native
    assert type(point["num_layers"]) is int and type(point["learning_rate"]) is float


def test_given_start_points_are_completed_from_the_defaults_inside_the_space(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump({
        "task": "tabular",
        "space": {"learning_rate": {"loguniform": [1e-2, 1e-1]},  # the default 3e-3 is out
                  "batch_size": {"choice": [128, 256]},  # the default 64 is not a choice
                  "num_layers": {"quniform": [3, 4, 1]}},  # nor is the default 2
        "start": [{"learning_rate": "5e-2"},  # YAML 1.1 reads 5e-2 as text: a number here
                  {"optimizer": "sgd", "optimizer.momentum": 0.9, "batch_size": 256},
                  {"optimizer.momentum": 0.95},  # the option that has it: sgd
                  {"learning_rate": 0.05}],  # the same point again: trained once
    }))
    spec = load_spec(config)
    _, points = _start_points(spec)
    assert len(points) == 3
    first, sgd, momentum = points
    assert first["learning_rate"] == 0.05 and first["optimizer"] == "adam"
    assert (first["batch_size"], first["num_layers"]) == (128, 3)  # nearest values it has
    assert "optimizer.momentum" not in first
    assert (sgd["optimizer"], sgd["optimizer.momentum"], sgd["batch_size"]) == ("sgd", 0.9, 256)
    assert sgd["learning_rate"] == 0.01  # the default, clipped into the range
    assert (momentum["optimizer"], momentum["optimizer.momentum"]) == ("sgd", 0.95)
    assert first["dropout"] == 0.1 and type(first["num_layers"]) is int  # defaults, typed


def test_start_empty_trains_no_point_before_the_sampler():
    spec = load_spec(None, {"task": "tabular", "start": []})
    assert spec.start == ()
    assert _start_points(spec)[1] == []


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ([{}, {"learnin_rate": 0.01}], r"start\[1\]\.learnin_rate: unknown key; the space's "
                                       r"keys: num_layers, hidden_size"),
        ([{"learning_rate": 0.5}], r"start\[0\]\.learning_rate: 0\.5 is not allowed; expected "
                                   r"a number within \[0\.0001, 0\.03\]"),
        ([{"num_layers": 2.5}], r"start\[0\]\.num_layers: 2\.5 is not allowed; expected a whole "
                                r"number within \[1, 4\]"),
        ([{"hidden_size": 100}], r"start\[0\]\.hidden_size: 100 is not one of the choices: "
                                 r"32, 64, 128, 256"),
        ([{"activation": True}], r"start\[0\]\.activation: True is not one of the choices"),
        ([{"optimizer": "adam", "optimizer.momentum": 0.9}],
         r"start\[0\]\.optimizer\.momentum: belongs to another option of 'optimizer' than "
         r"'adam'"),
        ([{"optimizer.momentum": 1.5}], r"start\[0\]\.optimizer\.momentum: 1\.5 is not allowed"),
        ([{"optimizer.nesterov": True}], r"start\[0\]\.optimizer\.nesterov: no option of "
                                         r"'optimizer' has this key"),
        ([{"epochs": 3}], r"start\[0\]\.epochs: unknown key"),
        ({"learning_rate": 0.01, "x": 1}, r"start\[0\]\.x: unknown key"),
        ("defaults", r"start: expected a list of points"),
        ([["learning_rate", 0.01]], r"start\[0\]: expected a mapping of space keys"),
        ([{}] * 3, r"start: 3 points, more than max_evals \(2\) trials"),
    ],
)
def test_bad_start_points_are_refused_naming_the_field_and_value(start, message):
    with pytest.raises(SpecError, match=message) as caught:
        load_spec(None, {"task": "tabular", "max_evals": 2, "start": start})
    assert "\n" not in str(caught.value)


def test_a_fixed_value_of_the_space_is_the_only_one_a_start_point_may_give():
    spec = load_spec(None, {"task": "tabular", "space.dropout": 0.2,
                            "start": [{"dropout": 0.2}]})
    assert _start_points(spec)[1][0]["dropout"] == 0.2
    with pytest.raises(SpecError, match=r"start\[0\]\.dropout: 0\.3 is not allowed; the space "
                                        r"fixes it to 0\.2"):
        load_spec(None, {"task": "tabular", "space.dropout": 0.2, "start": [{"dropout": 0.3}]})


@pytest.mark.parametrize("start", [None, [], [{"learning_rate": 0.01, "optimizer": "sgd"}]])
def test_start_round_trips_through_the_yaml_form(start, tmp_path):
    overrides = {"task": "tabular"} if start is None else {"task": "tabular", "start": start}
    spec = load_spec(None, overrides)
    assert ("start" in spec.to_dict()) == (start is not None)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict()))
    assert load_spec(path) == spec
    assert load_spec(path).start == spec.start


# -- max_evals and the time budget ------------------------------------------------------------

def test_with_a_time_budget_max_evals_may_be_left_out_the_budget_is_then_time_alone(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text("stop:\n  time_budget_s: 600\n")
    spec = load_spec(config)
    assert spec.max_evals is None and spec.stop.time_budget_s == 600
    assert spec.planned_trials == 40  # what its samplers and an auto pack are sized for
    assert load_spec(None, {"max_evals": None, "stop.time_budget_s": 60}).max_evals is None
    assert load_spec(config, {"max_evals": 8}).max_evals == 8  # both: whichever ends first
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict()))
    assert load_spec(path) == spec


def test_without_a_time_budget_max_evals_defaults_to_20_and_null_is_refused(tmp_path):
    assert load_spec(None).max_evals == 20
    config = tmp_path / "s.yaml"
    config.write_text("max_evals: null\n")
    with pytest.raises(SpecError, match=r"^max_evals: null \(no trial limit\) needs a time "
                                        r"budget \(stop\.time_budget_s, --time-budget\)"):
        load_spec(config)
