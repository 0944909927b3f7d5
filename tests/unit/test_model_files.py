"""The files a model is made of, without MLflow: weights that round-trip and never start like a
pickle, settings that are plain JSON, skops objects checked against a fixed list."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import torch
from safetensors.torch import save_model
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn

from mltune.tracking.model_files import (
    PICKLE_START,
    ModelFileError,
    load_task_artifacts,
    read_settings,
    read_weights,
    save_task_artifacts,
    type_names,
    write_settings,
    write_weights,
)


class Named(nn.Module):
    """One parameter whose name's length sets the safetensors header's length."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.register_parameter("w" * length, nn.Parameter(torch.randn(3)))


def test_weights_round_trip_and_never_start_with_the_byte_a_pickle_starts_with(tmp_path):
    plain, path = tmp_path / "plain.safetensors", tmp_path / "weights.safetensors"
    for length in range(1, 400):  # a name long enough to put 0x80 first in plain safetensors
        network = Named(length)
        save_model(network, str(plain))
        if plain.read_bytes()[0] == PICKLE_START:
            break
    else:
        pytest.fail("no header length started with 0x80")
    write_weights(network, str(path))
    assert path.read_bytes()[0] != PICKLE_START
    back = read_weights(Named(length), str(path))
    assert torch.equal(back.state_dict()["w" * length], network.state_dict()["w" * length])


def test_weights_of_another_network_are_refused_naming_the_keys(tmp_path):
    path = str(tmp_path / "weights.safetensors")
    write_weights(nn.Linear(2, 3), path)
    with pytest.raises(ModelFileError, match=r"weights.safetensors: the weights do not fit the "
                                             r"network .* \(missing: 0.bias, 0.weight; "
                                             r"unexpected: bias, weight\)"):
        read_weights(nn.Sequential(nn.Linear(2, 3)), path)


def test_settings_are_plain_json_numpy_values_and_dates_included(tmp_path):
    settings = {"members": [{"width": np.int64(4)}], "meta": {
        "mean": np.array([1.5, 2.0]), "start": datetime.date(2024, 1, 31), "classes": [0, 1]}}
    write_settings(settings, str(tmp_path))
    back = read_settings(str(tmp_path))
    assert back == {"members": [{"width": 4}], "meta": {
        "mean": [1.5, 2.0], "start": "2024-01-31", "classes": [0, 1]}}
    with pytest.raises(ModelFileError, match="model settings: a object value .* is not plain "
                                             "data"):
        write_settings({"meta": {"thing": object()}}, str(tmp_path))


def test_a_task_object_loads_only_with_types_on_the_list(tmp_path):
    fitted = StandardScaler().fit(np.arange(12.0).reshape(6, 2))
    trusted = type_names([StandardScaler])
    files = save_task_artifacts({"scaler": fitted}, str(tmp_path), trusted)
    back = load_task_artifacts(files, trusted)["scaler"]
    assert np.array_equal(back.mean_, fitted.mean_)
    with pytest.raises(ModelFileError, match=r"^scaler.skops: refused to load: it holds "
                                             r"sklearn.preprocessing._data.StandardScaler, off "
                                             r"mltune's trusted list"):
        load_task_artifacts(files, frozenset())
    with pytest.raises(ModelFileError, match=r"^scaler: holds builtins.eval, "
                                             r"sklearn.preprocessing._function_transformer"
                                             r".FunctionTransformer, which the served model "
                                             r"would refuse"):
        save_task_artifacts({"scaler": FunctionTransformer(eval)}, str(tmp_path),
                            trusted)
