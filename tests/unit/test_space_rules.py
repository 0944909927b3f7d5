"""Every value a space can produce is checked when the spec is built, for every task: a name no
catalog knows, a literal or a range outside what the task allows is one SpecError naming its
path in the space, the value and what is allowed, before any run opens."""

from __future__ import annotations

import pytest
from torch import nn

import mltune
from mltune.core.catalog import Catalog
from mltune.core.errors import SpecError
from mltune.models import FAMILIES
from mltune.models.init import INITS
from mltune.models.layers import ACTIVATIONS
from mltune.models.mlp import NORMS
from mltune.models.rnn import CELLS, POOLINGS
from mltune.spec.rules import Number, OneOf, WholeNumber, check_params, span_of
from mltune.tasks import get_task
from mltune.tasks.classification import CLASSIFICATION_LOSSES
from mltune.tasks.timeseries.task import FORECAST_LOSSES
from mltune.training.losses import LOSSES
from mltune.training.optim import OPTIMIZERS

# The smallest spec of each task that builds without reading its file.
SPECS = {
    "image": {"task": "image"},
    "text": {"task": "text", "data.source": "reviews.csv"},
    "tabular": {"task": "tabular"},  # sklearn:breast_cancer: a classification target
    "timeseries": {"task": "timeseries", "data.source": "series.csv", "data.target": "y",
                   "data.horizon": 4},
}
SHARED = {"activation": ACTIVATIONS, "weight_init": INITS, "optimizer": OPTIMIZERS}
CATALOGS = {  # hyperparameter -> the catalog whose names it allows, per task
    "image": SHARED,
    "text": {**SHARED, "cell": CELLS, "pool": POOLINGS},
    "tabular": {**SHARED, "norm": NORMS},
    "timeseries": {**SHARED, "cell": CELLS},
}
TASK_LOSSES = {"image": CLASSIFICATION_LOSSES, "text": CLASSIFICATION_LOSSES,
               "tabular": CLASSIFICATION_LOSSES, "timeseries": FORECAST_LOSSES}


def refusal(task: str, **space: object) -> SpecError:
    overrides = {**SPECS[task], **{f"space.{k}": v for k, v in space.items()}}
    with pytest.raises(SpecError) as caught:
        mltune.load_spec(None, overrides)
    assert "\n" not in str(caught.value)
    return caught.value


CATALOG_CASES = [(task, name) for task, names in CATALOGS.items() for name in names]


@pytest.mark.parametrize(("task", "name"), CATALOG_CASES)
def test_a_name_no_catalog_knows_is_refused_listing_the_catalog(task, name):
    catalog: Catalog = CATALOGS[task][name]
    error = refusal(task, **{name: {"choice": [catalog.names()[0], "nope"]}})
    assert error.field == f"space.{name}.choice[1]"
    assert error.detail == (f"unknown {catalog.kind} 'nope'; available: "
                            f"{', '.join(catalog.names())}")


@pytest.mark.parametrize("task", sorted(SPECS))
def test_a_loss_is_one_of_those_that_suit_the_task(task):
    suited = TASK_LOSSES[task]
    other = next(n for n in LOSSES.names() if n not in suited)
    error = refusal(task, loss={"pchoice": [[0.5, suited[0]], [0.5, other]]})
    assert error.field == "space.loss.pchoice[1]"
    assert error.detail.startswith(f"loss {other!r} does not suit ")
    assert error.detail.endswith(f"; available: {', '.join(suited)}")
    error = refusal(task, loss="nope")
    assert (error.field, error.detail) == (
        "space.loss", f"unknown loss 'nope'; available: {', '.join(suited)}")


@pytest.mark.parametrize("task", sorted(SPECS))
def test_a_batch_size_of_0_is_refused(task):
    error = refusal(task, batch_size=0)
    assert str(error) == "space.batch_size: 0 is not allowed; expected a whole number >= 1"
    error = refusal(task, batch_size={"choice": [32, 64.5]})
    assert str(error) == "space.batch_size.choice[1]: expected a whole number, got 64.5"


@pytest.mark.parametrize("task", sorted(SPECS))
@pytest.mark.parametrize(("space", "message"), [
    ({"dropout": {"uniform": [0.0, 1.5]}},
     "space.dropout.uniform: can draw 1.5, which is not allowed; expected a number from 0 to 1"),
    ({"learning_rate": {"uniform": [-0.1, 0.1]}},
     "space.learning_rate.uniform: can draw -0.1, which is not allowed; expected a number > 0"),
    ({"learning_rate": {"choice": [0.01, -1]}},
     "space.learning_rate.choice[1]: -1 is not allowed; expected a number > 0"),
    ({"weight_decay": {"normal": [0, 1]}},
     "space.weight_decay.normal: can draw values with no lower bound, which is not allowed; "
     "expected a number >= 0 (use a bounded distribution: choice, uniform, quniform, "
     "randint...)"),
    ({"batch_size": {"qloguniform": [1, 256, 16]}},
     "space.batch_size.qloguniform: can draw 0 (draws are rounded to multiples of q=16), "
     "which is not allowed; expected a whole number >= 1"),
    ({"hidden_size": {"randint": [0, 64]}},
     "space.hidden_size.randint: can draw 0, which is not allowed; expected a whole number "
     ">= 1"),
    ({"optimizer": {"choice": [{"name": "adam"}, {"name": "sgd",
                                                  "momentum": {"uniform": [0.5, 1.2]}}]}},
     "space.optimizer.choice[1].momentum.uniform: can draw 1.2, which is not allowed; "
     "expected a number from 0 to 1"),
    ({"optimizer": {"choice": [{"name": "sgd", "nesterov": "yes"}]}},
     "space.optimizer.choice[0].nesterov: 'yes' is not allowed; expected true or false"),
    ({"optimizer": {"choice": [{"name": "adam"}, {"name": "lion"}]}},
     "space.optimizer.choice[1].name: unknown optimizer 'lion'; available: adam, adamw, "
     "rmsprop, sgd"),
    ({"activation": {"uniform": [0, 1]}},
     "space.activation.uniform: draws numbers; expected one of: elu, gelu, leaky_relu, relu, "
     "selu, sigmoid, silu, tanh"),
])
def test_a_value_outside_what_the_task_allows_is_refused_with_its_path(task, space, message):
    assert str(refusal(task, **space)) == message


@pytest.mark.parametrize(("task", "space", "message"), [
    ("image", {"num_blocks": {"quniform": [0, 3, 1]}},
     "space.num_blocks.quniform: can draw 0, which is not allowed; expected a whole number >= 1"),
    ("image", {"augment_shift": 1.5},
     "space.augment_shift: 1.5 is not allowed; expected a number from 0 to 1"),
    ("image", {"batch_norm": {"choice": [True, "no"]}},
     "space.batch_norm.choice[1]: 'no' is not allowed; expected true or false"),
    ("text", {"num_layers": 0}, "space.num_layers: 0 is not allowed; expected a whole number >= 1"),
    ("text", {"class_weight": {"choice": ["none", "auto"]}},
     "space.class_weight.choice[1]: 'auto' is not allowed; expected one of: none, balanced"),
    ("text", {"word_dropout": -0.1},
     "space.word_dropout: -0.1 is not allowed; expected a number from 0 to 1"),
    ("tabular", {"num_layers": -1},
     "space.num_layers: -1 is not allowed; expected a whole number >= 0"),
    ("timeseries", {"window": {"randint": [0, 24]}},
     "space.window.randint: can draw 0, which is not allowed; expected a whole number >= 1"),
    ("timeseries", {"num_layers": {"choice": [1, 0]}},
     "space.num_layers.choice[1]: 0 is not allowed; expected a whole number >= 1"),
])
def test_each_task_s_own_hyperparameters_are_checked(task, space, message):
    assert str(refusal(task, **space)) == message


@pytest.mark.parametrize("task", sorted(SPECS))
def test_default_spaces_and_default_params_pass_their_own_rules(task):
    spec = mltune.load_spec(None, SPECS[task])
    assert set(spec.space) <= set(get_task(task).param_rules())  # every default is checked
    check_params(get_task(task).default_params(), get_task(task).param_rules())


def test_a_tabular_linear_model_is_allowed():
    spec = mltune.load_spec(None, {"task": "tabular", "space.num_layers": {"choice": [0, 2]}})
    assert spec.space["num_layers"] == {"choice": [0, 2]}


def test_a_name_added_to_a_catalog_is_allowed_without_new_code(monkeypatch):
    monkeypatch.setitem(ACTIVATIONS._items, "swish", nn.SiLU)
    spec = mltune.load_spec(None, {"space.activation": {"choice": ["relu", "swish"]}})
    assert spec.space["activation"] == {"choice": ["relu", "swish"]}


def test_a_family_s_rules_come_with_it():
    rules = get_task("timeseries").param_rules()
    assert rules["window"] is FAMILIES.get("forecaster").rules["window"]
    assert "norm" in get_task("tabular").param_rules()
    assert "norm" not in get_task("image").param_rules()


def test_params_of_one_run_get_the_same_rules():
    rules = get_task("image").param_rules()
    with pytest.raises(SpecError) as caught:
        check_params({"activation": "swish"}, rules)
    assert caught.value.field == "params"
    assert caught.value.detail.startswith("activation: unknown activation 'swish'; available: ")
    with pytest.raises(SpecError, match=r"^params: optimizer\.momentum: 2 is not allowed"):
        check_params({"optimizer": {"name": "sgd", "momentum": 2}}, rules)


@pytest.mark.parametrize(("distribution", "args", "span"), [
    ("uniform", [0.1, 0.9], (0.1, 0.9)),
    ("quniform", [0.4, 3.6, 1], (0, 4)),
    ("qloguniform", [16, 256, 16], (16, 256)),
    ("randint", [5], (0, 4)),
    ("randint", [2, 5], (2, 4)),
    ("lognormal", [0, 1], (0, None)),
    ("normal", [0, 1], (None, None)),
])
def test_what_each_distribution_can_draw(distribution, args, span):
    drawn = span_of(distribution, args)
    assert (drawn.low, drawn.high) == span


def test_rules_describe_what_they_allow():
    assert WholeNumber(4, 1024, unit="pixels").describe() == (
        "a whole number of pixels from 4 to 1024")
    assert Number(above=0, below=1).describe() == "a number in (0, 1)"
    assert Number(minimum=0, below=1).describe() == "a number >= 0 and < 1"
    assert OneOf.among(["a", "b"]).problem("c") == "'c' is not allowed; expected one of: a, b"
    assert OneOf.among([1, 2]).problem(True) is not None  # True is not 1 here
