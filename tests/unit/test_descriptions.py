"""What a network is told of the data: the names users' code reads are a contract."""

from __future__ import annotations

import pytest

import mltune
from mltune.spec.space import first_point
from mltune.tasks import get_task

META = {
    "image": {"channels": 3, "height": 32, "width": 24, "classes": ["cat", "dog"],
              "mean": [1, 2, 3], "std": [4, 5, 6]},
    "text": {"vocabulary": {"tokens": ["a", "b", "c"], "max_length": 50},
             "classes": ["x", "y", "z"]},
    "tabular": {"problem": "classification", "n_features": 5, "classes": ["no", "yes"]},
    "timeseries": {"covariates": ["t"], "max_window": 48, "horizon": 4},
}
DESCRIBED = {
    "image": (mltune.ImageData, {"channels": 3, "height": 32, "width": 24, "classes": 2,
                                 "mean": (1.0, 2.0, 3.0), "std": (4.0, 5.0, 6.0),
                                 "outputs": 2}),
    "text": (mltune.TextData, {"vocab_size": 5, "padding_idx": 0, "unknown_idx": 1,
                               "max_length": 50, "classes": 3, "outputs": 3}),
    "tabular": (mltune.TabularData, {"features": 5, "classes": 2, "outputs": 2}),
    "timeseries": (mltune.TimeseriesData, {"window": 24, "max_window": 48, "features": 2,
                                           "horizon": 4, "outputs": 4}),
}


@pytest.mark.parametrize("task", sorted(META))
def test_each_task_describes_its_data_by_the_documented_names(task):
    kind, expected = DESCRIBED[task]
    data = get_task(task).describe_data(META[task])
    assert isinstance(data, kind) and isinstance(data, mltune.DataDescription)
    assert dict(data) == expected  # as a mapping
    assert {name: getattr(data, name) for name in expected} == expected  # as attributes


def test_a_regression_table_has_one_output_and_no_classes():
    data = get_task("tabular").describe_data({"problem": "regression", "n_features": 7})
    assert (data.features, data.classes, data.regression, data.outputs) == (7, None, True, 1)


def test_the_timeseries_window_is_the_trial_s():
    assert get_task("timeseries").describe_data(META["timeseries"], {"window": 12}).window == 12


def test_the_first_point_of_a_space_takes_first_options_and_low_ends():
    space = {"width": {"choice": [32, 64]}, "depth": {"quniform": [2, 6, 1]},
             "rate": {"loguniform": [1e-4, 1e-2]}, "blocks": {"randint": [3, 9]},
             "scale": {"normal": [1.5, 2]}, "kind": "wide",
             "opt": {"choice": [{"name": "sgd", "momentum": {"uniform": [0.5, 0.9]}}, "adam"]}}
    assert first_point(space) == {"width": 32, "depth": 2, "rate": 1e-4, "blocks": 3,
                                  "scale": 1.5, "kind": "wide", "opt": "sgd",
                                  "opt.momentum": 0.5}
