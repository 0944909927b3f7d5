"""Trials on CUDA when asked (``gpu``-marked: skipped without CUDA), the CPU when not."""

from __future__ import annotations

import pytest
import torch
from conftest import children_of, run_cli

import mltune
from mltune.tracking.model import load_network

TINY = {"max_evals": 2, "epochs": 2, "seed": 4, "algo": "rand",
        "space": {"batch_size": 64, "learning_rate": 0.003, "optimizer": "adam"}}


@pytest.mark.gpu
@pytest.mark.parametrize("precision, expected", [("auto", "bf16"), ("fp16", "fp16"),
                                                 ("fp32", "fp32")])
def test_trials_train_on_cuda_in_the_precision_asked(client, precision, expected):
    result = mltune.tune(mltune.load_spec(None, {**TINY, "device": "cuda",
                                                 "precision": precision}))

    children = children_of(client, result.parent_run_id)
    assert [c.data.tags["mltune.device"] for c in children] == ["cuda", "cuda"]
    assert {c.data.tags["mltune.precision"] for c in children} == {expected}
    assert max(c.data.metrics["val_accuracy"] for c in children) > 0.5
    network = load_network(result.best.model_uri)  # logged from the GPU, loads on the CPU
    assert {p.device.type for p in network.parameters()} == {"cpu"}
    assert {p.dtype for p in network.parameters()} == {torch.float32}


@pytest.mark.gpu
def test_auto_device_is_cuda_and_gpu_memory_is_given_back(client):
    mltune.tune(mltune.load_spec(None, {**TINY, "max_evals": 1}))  # CUDA, cuBLAS set up
    after_one = torch.cuda.memory_allocated()
    result = mltune.tune(mltune.load_spec(None, {**TINY, "max_evals": 4}))

    children = children_of(client, result.parent_run_id)
    assert {c.data.tags["mltune.device"] for c in children} == {"cuda"}
    # no network, optimizer or data of a finished search is left on the GPU
    assert torch.cuda.memory_allocated() == after_one


@pytest.mark.gpu
def test_gpu_utilisation_is_logged_per_trial_with_nvml(client):
    pytest.importorskip("pynvml", reason="GPU system metrics need nvidia-ml-py")
    pytest.importorskip("psutil", reason="MLflow's system metrics need psutil")
    result = mltune.tune(mltune.load_spec(None, {**TINY, "max_evals": 1, "epochs": 30,
                                                 "device": "cuda"}))
    (child,) = children_of(client, result.parent_run_id)
    assert "system/gpu_0_utilization_percentage" in child.data.metrics
    assert "system/gpu_0_memory_usage_megabytes" in child.data.metrics


@pytest.mark.gpu
def test_compiled_trial_trains_on_cuda(client):
    result = mltune.tune(mltune.load_spec(None, {**TINY, "max_evals": 1, "device": "cuda",
                                                 "compile": True}))
    assert result.finished == 1
    assert result.best.metrics["val_accuracy"] > 0.5


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_auto_trains_on_the_cpu_and_cuda_is_refused(client, tracking_uri, capsys):
    result = mltune.tune(mltune.load_spec(None, {**TINY, "max_evals": 1, "epochs": 1}))
    (child,) = children_of(client, result.parent_run_id)
    assert child.data.tags["mltune.device"] == "cpu"
    capsys.readouterr()  # what the search printed

    code, _, err = run_cli(["tune", "--device", "cuda", "--max-evals", "1"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "mltune: error: device: 'cuda' asked for, but this machine has no CUDA device; "
        "use device: auto or cpu"]
