"""A task's defaults live in one place: ``default_params()``; its network and loss read them."""

from __future__ import annotations

import pytest
import torch

import mltune  # noqa: F401  (registers the tasks)
from mltune.tasks import get_task

# The metadata each task's load() would give, as small as a network needs.
META = {
    "image": {"channels": 1, "height": 8, "width": 8, "classes": [0, 1, 2],
              "mean": [0.0], "std": [1.0]},
    "text": {"vocabulary": {"tokens": ["a", "b", "c"]}, "classes": ["x", "y"]},
    "tabular": {"problem": "classification", "n_features": 5, "classes": ["no", "yes"]},
    "timeseries": {"covariates": [], "max_window": 48, "horizon": 4},
}


@pytest.mark.parametrize("name", sorted(META))
def test_a_network_built_without_params_is_the_default_params_network(name):
    task = get_task(name)
    torch.manual_seed(0)
    bare = task.build_model({}, META[name])
    torch.manual_seed(0)
    default = task.build_model(task.default_params(), META[name])
    assert repr(bare) == repr(default)  # layers, dropout rates, cell, norm, directions


@pytest.mark.parametrize("name", sorted(META))
def test_params_override_only_the_keys_they_name(name):
    task = get_task(name)
    params = {**task.default_params(), "dropout": 0.3}
    assert repr(task.build_model({"dropout": 0.3}, META[name])) == repr(
        task.build_model(params, META[name]))


def test_the_values_that_used_to_disagree_follow_default_params():
    image = repr(get_task("image").build_model({}, META["image"]))
    assert "Dropout(p=0.1" in image  # build_model used to fall back to 0.0
    tabular = repr(get_task("tabular").build_model({}, META["tabular"]))
    assert "BatchNorm" in tabular and "Dropout(p=0.1" in tabular  # was: no norm, no dropout
    text = repr(get_task("text").build_model({}, META["text"]))
    assert "GRU(" in text and "bidirectional=True" in text  # was: LSTM, one direction


@pytest.mark.parametrize("name", sorted(META))
def test_a_task_describes_what_its_family_builds_from(name):
    from mltune.models import FAMILIES

    task = get_task(name)
    for family in task.families or (task.family,):
        assert set(FAMILIES.get(family).inputs) <= set(task.describe_data(META[name]))
