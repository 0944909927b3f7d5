"""Pack policy: the size ``pack: auto`` chooses from measured throughput, the real measurement
(cached per shape), and which hyperparameters may differ inside a pack."""

from __future__ import annotations

import logging

import pytest
import torch

import mltune
from mltune.models.network import network_of
from mltune.search.packs.shapes import is_free, shape_key
from mltune.search.packs.sizes import PackSizes, chosen_size, member_steps_per_s
from mltune.tasks import get_task


@pytest.mark.parametrize(("rates", "size"), [
    ({1: 400.0, 2: 700.0, 4: 1200.0, 8: 1100.0}, 4),  # the most member-steps/s
    ({1: 400.0, 2: 420.0, 4: 430.0}, 1),  # nothing beats a lone trial by the margin
    ({1: 400.0, 2: 300.0}, 1),  # packing slows it down
    ({1: 400.0, 2: 900.0, 4: 900.0}, 2),  # a tie goes to the smaller pack
    ({1: 100.0}, 1), ({}, 1),
])
def test_the_size_with_the_most_member_steps_per_second_is_chosen(rates, size):
    assert chosen_size(rates) == size


def test_a_margin_of_zero_takes_any_faster_pack():
    assert chosen_size({1: 400.0, 2: 401.0}, margin=0.0) == 2


@pytest.fixture(scope="module")
def tabular():
    spec = mltune.load_spec(None, {"task": "tabular", "data.source": "sklearn:breast_cancer"})
    task = get_task("tabular").for_data(spec.data)
    return task, task.load(spec.data, seed=0)


def test_the_measurement_times_sizes_and_is_kept_per_shape(tabular, caplog):
    task, data = tabular
    params = {**task.default_params(), "batch_size": 32}
    rates = member_steps_per_s(task, data, params, torch.device("cpu"), [1, 2, 4])
    assert 1 in rates and set(rates) <= {1, 2, 4} and all(r > 0 for r in rates.values())

    sizes = PackSizes(task, data, torch.device("cpu"))
    with caplog.at_level(logging.INFO, logger="mltune.search.packs"):
        first = sizes.size(params, limit=16)
        # another point of the same shape (only free values differ): not measured again,
        # nor one whose shape differs in what costs nothing (an activation)
        again = sizes.size({**params, "learning_rate": 0.05, "dropout": 0.3}, limit=16)
        sizes.size({**params, "activation": "tanh"}, limit=16)
    assert 1 <= first <= 16 and again == first
    said = [r.getMessage() for r in caplog.records if "pack size measured" in r.getMessage()]
    assert len(said) == 1 and "K=1: " in said[0] and said[0].endswith(f"packs of {first}")
    assert sizes.size(params, limit=1) == 1  # the budget left still caps it
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mltune.search.packs"):
        near = {**params, "hidden_size": params["hidden_size"] + 1}
        assert sizes.size(near, limit=16) == first  # a like cost takes the measured size
        other = {**params, "hidden_size": params["hidden_size"] * 4}
        sizes.size(other, limit=2)  # a cost four times as large: measured on its own
    said = [r.getMessage() for r in caplog.records if "pack size measured" in r.getMessage()]
    assert len(said) == 1 and len(sizes.measured) == 3


def test_free_keys_differ_inside_a_pack_and_shape_the_key_only_when_not_free():
    task = get_task("tabular")
    assert is_free("learning_rate", task) and is_free("dropout", task)
    assert not is_free("hidden_size", task) and not is_free("optimizer", task)
    a = {"hidden_size": 64, "learning_rate": 0.01, "dropout": 0.1, "optimizer": "sgd",
         "optimizer.momentum": 0.9}
    b = {**a, "learning_rate": 0.001, "dropout": 0.4, "optimizer.momentum": 0.5}
    assert shape_key(a, task) == shape_key(b, task)
    assert shape_key(a, task) != shape_key({**a, "optimizer": "adam"}, task)


def test_a_users_network_keeps_its_own_keys_in_the_shape():
    """Its ``dropout`` may size its layers (the task does not read it); the training
    hyperparameters the task reads stay free."""
    task = get_task("tabular").with_network(network_of("nets.py:build"))
    assert not is_free("dropout", task)
    assert is_free("learning_rate", task) and is_free("weight_decay", task)
    assert shape_key({"dropout": 0.1, "learning_rate": 0.1}, task) != shape_key(
        {"dropout": 0.2, "learning_rate": 0.1}, task)
