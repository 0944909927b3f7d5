"""The precision option, on the CPU: what it trains in, what it records, what it refuses."""

from __future__ import annotations

import pytest
import torch
from conftest import children_of, run_cli

import mltune
from mltune.core.errors import SpecError
from mltune.tasks import get_task
from mltune.tracking.model import load_network
from mltune.training.engine import fit

TINY = {"max_evals": 1, "epochs": 2, "seed": 1, "algo": "rand", "device": "cpu",
        "space": {"batch_size": 64, "learning_rate": 0.003, "optimizer": "adam"}}


def test_bf16_trial_trains_records_its_precision_and_logs_fp32_weights(client):
    result = mltune.tune(mltune.load_spec(None, {**TINY, "precision": "bf16"}))

    (child,) = children_of(client, result.parent_run_id)
    assert child.data.tags["mltune.precision"] == "bf16"
    assert child.data.metrics["val_accuracy"] > 0.5  # ten classes: chance is 0.1
    network = load_network(result.best.model_uri)
    assert {p.dtype for p in network.parameters()} == {torch.float32}


def test_auto_is_fp32_on_the_cpu(client):
    result = mltune.tune(mltune.load_spec(None, TINY))
    (child,) = children_of(client, result.parent_run_id)
    assert child.data.tags["mltune.precision"] == "fp32"


def test_fp16_with_loss_scaling_trains_on_the_cpu():
    task = get_task("image")
    spec = mltune.load_spec(None, TINY)
    data = task.load(spec.data, 0)
    params = {**task.default_params(), "learning_rate": 0.003, "optimizer": "adam"}
    network = task.build_model(params, data.meta)
    result = fit(network, data, params, loss_fn=task.make_loss(params, data),
                 score=lambda out, y: task.score(out, y, data.meta), epochs=2, seed=0,
                 precision="fp16")
    losses = [epoch["train_loss"] for epoch in result.history]
    assert losses[1] < losses[0]
    assert result.final["val_accuracy"] > 0.5


@pytest.mark.parametrize("key, value, expected", [
    ("precision", "fp64", "precision: 'fp64' is not allowed; expected one of: auto, fp32, "
                          "bf16, fp16"),
    ("compile", "maybe", "compile: 'maybe' is not allowed; expected true or false"),
])
def test_bad_precision_or_compile_is_one_clear_line(key, value, expected):
    with pytest.raises(SpecError, match=expected.replace("(", r"\(")):
        mltune.load_spec(None, {key: value})


def test_cli_refuses_a_bad_precision_with_exit_2(tracking_uri, capsys):
    code, _, err = run_cli(["tune", "--precision", "fp8", "--max-evals", "1"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "mltune: error: precision: 'fp8' is not allowed; expected one of: auto, fp32, bf16, "
        "fp16"]
