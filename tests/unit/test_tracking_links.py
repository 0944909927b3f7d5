"""Where a user is told to look: the UI's pages for a local store and for a server."""

from __future__ import annotations

from mltune.tracking.links import experiment_url, run_url, server_address, ui_command

RUNS = "#/experiments/7/runs?workflowType=machine_learning"


def test_a_local_store_opens_in_mlflow_ui_on_model_training_runs():
    uri = "sqlite:////tmp/x/mlflow.db"
    assert server_address(uri) is None
    assert experiment_url("7", uri) == f"http://127.0.0.1:5000/{RUNS}"
    assert ui_command(uri) == "mlflow ui --backend-store-uri sqlite:////tmp/x/mlflow.db"


def test_a_server_is_its_own_ui_and_its_address_carries_no_credentials():
    uri = "https://alice:secret@mlflow.example.com:8443/team/"
    assert server_address(uri) == "https://mlflow.example.com:8443/team"
    assert experiment_url("7", uri) == f"https://mlflow.example.com:8443/team/{RUNS}"
    assert ui_command(uri) is None


def test_run_links_are_absolute_for_a_server_and_relative_inside_the_ui():
    assert run_url("7", "abc", base="http://127.0.0.1:5001") == (
        "http://127.0.0.1:5001/#/experiments/7/runs/abc")
    assert run_url("7", "abc", base="") == "#/experiments/7/runs/abc"
