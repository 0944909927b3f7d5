"""A newcomer's first hour: a typo in the space is refused, not tuned in vain; a spec can be
checked without running it; the printed resume command, run as printed, resumes the same
search to its ``max_evals``."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from conftest import all_runs, children_of, env_for_subprocess, run_cli
from test_resume import wait_for_finished_trials


def test_a_typo_in_the_space_of_a_built_in_family_is_refused_naming_the_nearest_key(
        tracking_uri, client, capsys):
    code, out, err = run_cli(["tune", "--set", "task=tabular", "--set",
                              "space.hidden_sise={choice: [16, 32]}"], capsys)
    assert code == 2 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith("mltune: error: space.hidden_sise: unknown hyperparameter; did you "
                           "mean hidden_size? Allowed for task 'tabular' with model mlp: ")
    assert "learning_rate" in line and "num_layers" in line  # the allowed ones
    code, _, err = run_cli(["tune", "--set", "space.optimizer={choice: [{name: sgd, "
                            "momentm: 0.9}]}"], capsys)
    assert code == 2 and "space.optimizer.choice[0].momentm: unknown hyperparameter; did you " \
        "mean momentum?" in err
    code, _, err = run_cli(["train", "--params", "{learnin_rate: 0.01}"], capsys)
    assert code == 2 and "--params: learnin_rate: unknown hyperparameter; did you mean " \
        "learning_rate?" in err
    # a space the sampler cannot draw is refused as early (its sampler is made before a run)
    code, _, err = run_cli(["tune", "--algo", "optuna-tpe", "--set",
                            "space.learning_rate={lognormal: [-5, 1]}"], capsys)
    assert code == 2 and err.strip() == (
        "mltune: error: space.learning_rate: lognormal cannot be sampled by optuna-tpe; use "
        "uniform or loguniform, or algo: tpe")
    assert all_runs(client) == []  # no run was opened


NETS = '''
from torch import nn


def build(params, data):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, int(params["width"])), nn.ReLU(),
                         nn.Linear(int(params["width"]), data.classes))


build.hyperparameters = ("width",)


def anything(params, data):
    return build(params, data)
'''


def test_a_typo_in_the_space_of_ones_own_network_is_refused_when_it_declares_its_keys(
        tracking_uri, client, tmp_path, capsys):
    (tmp_path / "nets.py").write_text(textwrap.dedent(NETS))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"model": f"{tmp_path}/nets.py:build",
                                    "space": {"widht": {"choice": [8, 16]}}}))
    code, out, err = run_cli(["tune", "--config", str(spec)], capsys)
    assert code == 2 and "Traceback" not in out + err
    assert err.startswith("mltune: error: space.widht: unknown hyperparameter; did you mean "
                          "width? Allowed for task 'image' with your network ")
    assert "augment_shift, batch_size, learning_rate, loss, optimizer, weight_decay, width\n" in err
    assert all_runs(client) == []
    # a network that declares nothing takes any key (the docs say so once)
    spec.write_text(yaml.safe_dump({"model": f"{tmp_path}/nets.py:anything", "max_evals": 1,
                                    "space": {"width": 8, "widht": 3}}))
    code, out, err = run_cli(["tune", "--config", str(spec), "--dry-run"], capsys)
    assert code == 0, err
    assert re.search(r"^  widht\* +fixed 3 ", out, flags=re.M)


def test_dry_run_and_check_print_the_plan_and_open_no_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow's default: ./mlflow.db
    code, out, err = run_cli(["tune", "--dry-run", "--max-evals", "12", "--epochs", "9",
                              "--set", "cv=3", "--set", "space.dropout={uniform: [0, 0.3]}"],
                             capsys)
    assert code == 0, err
    assert "  epochs: 9\n" in out and "  cv: 3\n" in out  # the resolved spec
    assert re.search(r"^  dropout\* +uniform \[0, 0\.3\] +0\.1$", out, flags=re.M)
    assert re.search(r"^  channels +choice \[.*\] +\d+$", out, flags=re.M)  # the task's own
    assert "First trial (the task's defaults): activation=relu, " in out
    assert "Scheduler: asha: rungs at epochs 1 and 3 of 9; " in out
    assert ("Budget: at most 12 trials x 9 epochs = 108 epochs, each on 3 folds (324 "
            "fold-epochs); then a refit of up to 9 epochs") in out
    assert out.strip().endswith("Checked: nothing was run or logged. Run it: mltune tune "
                                "--max-evals 12 --epochs 9 --cv 3 --set 'space.dropout="
                                "{uniform: [0, 0.3]}'")
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: tabular\nmax_evals: 6\nepochs: 4\npruning: {rule: hyperband}\n")
    code, out, err = run_cli(["check", str(spec), "--set", "start=[]"], capsys)
    assert code == 0, err
    assert "Scheduler: hyperband: 2 brackets of ASHA (top 1/3 go on)" in out
    assert "First trial: the sampler's first proposal (start: [])" in out
    assert "Budget: at most 6 trials x 4 epochs = 24 epochs" in out
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    code, _, err = run_cli(["check", str(spec), "--set", "space.hiden_size=8"], capsys)
    assert code == 2 and "did you mean hidden_size?" in err


def test_the_printed_resume_command_run_as_printed_resumes_the_same_search(
        tracking_uri, client, tmp_path):
    """Started with a spec file and overrides, stopped by Ctrl-C: the last line names every
    override; run as printed it resumes that search (its epochs, not the file's) to its
    max_evals."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("max_evals: 30\nepochs: 5\npack: 1\n")
    started = ["--config", str(spec), "--max-evals", "3", "--set", "epochs=2", "--set",
               "pruning=none", "--set", "space.dropout={choice: [0.0, 0.2]}"]
    env = env_for_subprocess(tracking_uri)
    process = subprocess.Popen([sys.executable, "-m", "mltune", "tune", *started], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    parent_id = wait_for_finished_trials(client, 1, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    printed = last.split("Resume with: ", 1)[1]
    assert printed == (f"mltune tune --config {spec} --max-evals 3 --epochs 2 --set "
                       "pruning=none --set 'space.dropout={choice: [0.0, 0.2]}' --resume "
                       f"{parent_id}")
    words = shlex.split(printed)
    assert words[:2] == ["mltune", "tune"]
    done = subprocess.run([sys.executable, "-m", "mltune", *words[1:]], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"parent run {parent_id}" in done.stdout
    children = children_of(client, parent_id)
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(finished) == 3  # max_evals of the search, not the file's 30
    assert all(c.data.params["dropout"] in ("0.0", "0.2") for c in finished)
    assert all(len(client.get_metric_history(c.info.run_id, "val_accuracy")) == 2
               for c in finished)  # epochs=2, not the file's 5
    assert client.get_run(parent_id).data.tags["mltune.resumed"] == "1"
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]


def test_a_search_started_without_a_spec_file_resumes_without_one(tracking_uri, capsys):
    """The hint names no examples/digits.yaml the search never read."""
    from mltune.cli import resume_command
    from mltune.spec.build import load_spec

    origin = load_spec(None, {"max_evals": 30, "epochs": 3}).origin
    assert resume_command("abc", origin) == "mltune tune --max-evals 30 --epochs 3 --resume abc"
    assert Path("examples/digits.yaml").name not in resume_command("abc", None)
