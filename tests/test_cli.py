"""The command line as users run it: exit codes, one-line errors, `mlflow run .`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, all_runs, children_of, env_for_subprocess, run_cli

BAD_SPECS = {
    "unknown task": ("task: audio\n", r"task: unknown task 'audio'; available: image"),
    "unknown distribution": ("space:\n  learning_rate: {logunif: [0.001, 0.1]}\n",
                             "space.learning_rate: unknown distribution 'logunif'"),
    "low > high": ("space:\n  learning_rate: {loguniform: [0.1, 0.001]}\n",
                   "space.learning_rate.loguniform: low bound 0.1 must be < high bound 0.001"),
    "metric no trial logs": ("metric: val_auc\n", "metric: 'val_auc' is not logged"),
    "negative max_evals": ("max_evals: -3\n", "max_evals: -3 is not allowed"),
    "malformed yaml": ("name: [unclosed\n", "is not valid YAML at line"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_exits_2_with_one_line_and_leaves_nothing_running(case, tracking_uri, client,
                                                                   tmp_path, capsys):
    text, message = BAD_SPECS[case]
    config = tmp_path / "spec.yaml"
    config.write_text(text)
    code, out, err = run_cli(["tune", "--config", str(config), "--epochs", "1"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mltune: error: ") and message in lines[0]
    assert "Traceback" not in err + out
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]


def test_bad_flag_values_are_refused(tracking_uri, capsys):
    code, _, err = run_cli(["tune", "--max-evals", "0"], capsys)
    assert code == 2 and "max_evals: 0 is not allowed" in err
    code, _, err = run_cli(["tune", "--set", "nokey"], capsys)
    assert code == 2 and "--set: expected key=value, got 'nokey'" in err


@pytest.mark.parametrize("value", ["ten", "10x", "0", "-5m", "1.5 days", "nan"])
def test_a_bad_time_budget_is_one_line_and_exit_2(value, tracking_uri, client, capsys):
    code, out, err = run_cli(["tune", "--time-budget", value, "--epochs", "1"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"mltune: error: --time-budget: {value!r} is not a duration; expected seconds (600) "
        "or a number above 0 with a unit: 90s, 10m, 1.5h"]
    assert "Traceback" not in err + out
    assert not all_runs(client)


@pytest.mark.parametrize(("value", "seconds"),
                         [("600", 600.0), ("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0)])
def test_a_time_budget_is_read_in_seconds_minutes_or_hours(value, seconds, tracking_uri,
                                                           capsys):
    from mltune.spec.options import duration

    assert duration(value, "time_budget") == seconds
    # accepted by the command: with it, max_evals may be null (the next check is start:'s)
    code, _, err = run_cli(["tune", "--time-budget", value, "--set", "max_evals=null",
                            "--set", "start=[{nokey: 1}]"], capsys)
    assert code == 2 and err.strip().splitlines() == [
        "mltune: error: start[0].nokey: unknown key; the space's keys: num_blocks, channels, "
        "kernel_size, hidden_size, activation, batch_norm, dropout, learning_rate, "
        "weight_decay, loss, weight_init, optimizer, optimizer.momentum, batch_size"]
    code, _, err = run_cli(["tune", "--set", "max_evals=null"], capsys)  # without: refused
    assert code == 2 and "mltune: error: max_evals: null (no trial limit) needs a time " \
        "budget (stop.time_budget_s, --time-budget)" in err


def test_real_process_prints_no_traceback(tracking_uri, tmp_path):
    config = tmp_path / "spec.yaml"
    config.write_text("space:\n  dropout: {uniform: [0.9, 0.1]}\n")
    done = subprocess.run([sys.executable, "-m", "mltune", "tune", "--config", str(config)],
                          capture_output=True, text=True, env=env_for_subprocess(tracking_uri),
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "mltune: error: space.dropout.uniform: low bound 0.9 must be < high bound 0.1")
    assert "Traceback" not in done.stderr


def test_tune_prints_summary_with_best_trial_and_registered_version(tracking_uri, client,
                                                                    capsys):
    code, out, _ = run_cli(["tune", "--max-evals", "2", "--epochs", "1", "--set",
                            "name=cli-search"], capsys)
    assert code == 0
    parent = next(r for r in all_runs(client) if r.data.tags.get("mltune.role") == "search")
    best_id = parent.data.tags["mltune.best_run_id"]
    assert "Search 'cli-search' finished: 2 trials finished, 0 failed" in out
    assert best_id in out
    assert "Registered: mltune-image version 1 (aliases: challenger, champion)" in out
    experiment = parent.info.experiment_id
    assert (f"Browse: mlflow ui --backend-store-uri {tracking_uri}   then open "
            f"http://127.0.0.1:5000/#/experiments/{experiment}/runs"
            "?workflowType=machine_learning") in out.splitlines()


def test_train_logs_one_configuration_with_its_model(tracking_uri, client, capsys):
    code, out, _ = run_cli(["train", "--epochs", "1", "--params",
                            "{learning_rate: 0.01, activation: gelu}"], capsys)
    assert code == 0 and out.startswith("Trained run ")
    (run,) = all_runs(client)
    assert run.info.status == "FINISHED" and run.data.tags["mltune.role"] == "train"
    assert run.data.params["activation"] == "gelu" and run.data.params["learning_rate"] == "0.01"
    assert "val_accuracy" in run.data.metrics
    assert run.data.tags["mltune.model_uri"].startswith("models:/")


def test_train_with_unknown_choice_value_is_refused_before_its_run_opens(tracking_uri, client,
                                                                         capsys):
    code, _, err = run_cli(["train", "--epochs", "1", "--params", "{activation: swish}"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "mltune: error: --params: activation: unknown activation 'swish'; available: elu, gelu, "
        "leaky_relu, relu, selu, sigmoid, silu, tanh"]
    assert all_runs(client) == []


def test_a_space_value_no_trial_could_use_is_refused_before_any_run(tracking_uri, client,
                                                                   capsys):
    code, out, err = run_cli(["tune", "--max-evals", "1", "--epochs", "1", "--set",
                              "space.activation={choice: [relu, swish]}"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "mltune: error: space.activation.choice[1]: unknown activation 'swish'; available: "
        "elu, gelu, leaky_relu, relu, selu, sigmoid, silu, tanh"]
    assert "Traceback" not in out + err
    assert all_runs(client) == []


@pytest.mark.slow
def test_mlflow_run_from_a_clean_clone(tracking_uri, client, tmp_path):
    clone = tmp_path / "clone"
    if (REPO / ".git").exists() and shutil.which("git"):
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        # the working tree may hold uncommitted changes under test: copy tracked files over
        tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True,
                                 text=True, check=True).stdout.split()
        for name in tracked:
            if (REPO / name).is_file():
                (clone / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, clone / name)
    else:
        shutil.copytree(REPO, clone, ignore=shutil.ignore_patterns("mlruns", "*.db"))
    env = env_for_subprocess(tracking_uri)
    env.pop("PYTHONPATH")  # the entry point must work from the project folder by itself
    done = subprocess.run(
        ["mlflow", "run", ".", "--env-manager", "local", "-P", "max_evals=2", "-P", "epochs=1"],
        cwd=clone, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Best trial: trial-000" in done.stdout
    parent = next(r for r in all_runs(client) if r.data.tags.get("mltune.role") == "search")
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "digits-cnn"
    children = children_of(client, parent.info.run_id)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    champion = client.get_model_version_by_alias("mltune-image", "champion")
    assert champion.run_id in {c.info.run_id for c in children}
    assert Path(clone / "examples" / "digits.yaml").exists()
    assert yaml.safe_load((clone / "MLproject").read_text())["entry_points"]["main"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make not found")
def test_make_demo_installs_what_the_demo_needs_and_make_test_the_test_extra():
    def commands(target: str) -> list[str]:
        # CI runs pytest under `make test`: the nested make must not print its directory lines
        env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
        done = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=REPO,
                              capture_output=True, text=True, check=True, env=env)
        return done.stdout.splitlines()

    demo, test = commands("demo"), commands("test")
    assert any(line.endswith(" -m pip install -q -e .") for line in demo)
    assert not any("[test]" in line or "ray" in line for line in demo)  # no Ray, no servers
    assert demo[-1] == "mlflow run . --env-manager local"
    assert any(line.endswith(' -m pip install -q -e ".[test]"') for line in test)
    assert " -m pytest -q -n 2 --dist loadgroup" in test[-1]  # the README's command, two workers
