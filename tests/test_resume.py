"""A search that survives: kill -9 then resume, SIGTERM, refused resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from conftest import all_runs, children_of, env_for_subprocess
from mlflow.entities import Param
from test_cli import run_cli

import mltune


def start_search(tracking_uri: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mltune", "tune", *args],
                            env=env_for_subprocess(tracking_uri), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_finished_trials(client, count: int, process: subprocess.Popen,
                             timeout: float = 240) -> str:
    """Poll MLflow until ``count`` trials of the (only) search finished; return its id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        runs = all_runs(client)
        parents = [r for r in runs if r.data.tags.get("mltune.role") == "search"]
        if parents:
            done = [r for r in children_of(client, parents[0].info.run_id)
                    if r.info.status == "FINISHED"]
            if len(done) >= count:
                return parents[0].info.run_id
        time.sleep(0.2)
    raise TimeoutError(f"{count} trials did not finish in time")


def kill_9_then_resume(tracking_uri: str, client, args: list[str], capsys,
                       finished: int = 2) -> tuple[str, str]:
    """``mltune tune ARGS`` killed (SIGKILL) once ``finished`` trials finished, then resumed in
    this process, which must succeed: the search's parent run id and the resume's stdout."""
    process = start_search(tracking_uri, *args)
    parent_id = wait_for_finished_trials(client, finished, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    code, out, err = run_cli(["tune", *args, "--resume", parent_id], capsys)
    assert code == 0, err
    return parent_id, out


def test_kill_9_then_resume_ends_with_max_evals_finished_trials(tracking_uri, client, capsys):
    # every trial trained in full (ASHA's pruned trials: the kill test of tests/test_packing.py)
    args = ["--max-evals", "4", "--epochs", "2", "--seed", "5", "--set", "pruning.rule=none"]
    parent_id, out = kill_9_then_resume(tracking_uri, client, args, capsys)
    assert f"parent run {parent_id}" in out

    children = children_of(client, parent_id)
    numbers = [int(c.data.tags["mltune.trial"]) for c in children]
    assert len(numbers) == len(set(numbers))  # no duplicate trial numbers
    assert [c.info.status for c in children].count("FINISHED") == 4
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    for child in children:
        if child.info.status == "KILLED":  # the trial in flight at the kill
            assert child.data.tags["mltune.interrupted"] == "true"
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.resumed"] == "1"
    best = max((c for c in children if c.info.status == "FINISHED"),
               key=lambda c: c.data.metrics["val_accuracy"])
    assert parent.data.tags["mltune.best_run_id"] == best.info.run_id


def test_sigterm_marks_trial_and_search_killed_and_prints_resume_command(tracking_uri, client):
    process = start_search(tracking_uri, "--max-evals", "30", "--epochs", "3")
    parent_id = wait_for_finished_trials(client, 1, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "mltune: error: search interrupted (SIGTERM); finished trials are kept. Resume with: "
        f"mltune tune --max-evals 30 --epochs 3 --resume {parent_id}")
    assert "Traceback" not in stderr
    assert client.get_run(parent_id).info.status == "KILLED"
    runs = all_runs(client)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in children_of(client, parent_id) if r.info.status == "KILLED"
              and r.data.tags.get("mltune.pruned") != "true"]  # a pruned trial is KILLED too
    assert all(r.data.tags["mltune.interrupted"] == "true" for r in killed)


def test_resume_with_a_changed_space_or_unknown_run_is_refused(tracking_uri, client, capsys):
    result = mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 1}))
    capsys.readouterr()
    code, _, err = run_cli(["tune", "--max-evals", "2", "--epochs", "1", "--set",
                            "space.dropout=0.3", "--resume", result.parent_run_id], capsys)
    assert code == 2
    assert "--resume: the spec differs from the search's in space.dropout" in err
    code, _, err = run_cli(["tune", "--max-evals", "2", "--epochs", "1", "--set", "seed=3",
                            "--resume", result.parent_run_id], capsys)
    assert code == 2  # another seed would draw other splits under the trials already scored
    assert "--resume: the spec differs from the search's in seed (it draws the splits" in err
    code, _, err = run_cli(["tune", "--resume", "0" * 32], capsys)
    assert code == 2 and "--resume: no run" in err
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
    assert len(children_of(client, result.parent_run_id)) == 1


def test_a_finished_search_extended_by_resume_continues_its_numbers(tracking_uri, client):
    first = mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 1, "seed": 1}))
    more = mltune.tune(mltune.load_spec(None, {"max_evals": 3, "epochs": 1, "seed": 1}),
                       resume=first.parent_run_id)
    assert more.parent_run_id == first.parent_run_id
    assert [t.number for t in more.trials] == [1, 2, 3]
    children = children_of(client, first.parent_run_id)
    assert [c.info.status for c in children] == ["FINISHED"] * 3
    parent = client.get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.best_run_id"] == more.best.run_id


def test_points_killed_in_two_attempts_run_once_and_packs_stay_within_max_evals(client):
    spec = {"task": "tabular", "max_evals": 4, "epochs": 1, "pack": 2, "seed": 2}
    first = mltune.tune(mltune.load_spec(None, spec))
    parent = first.parent_run_id
    runs = sorted(children_of(client, parent), key=lambda r: int(r.data.tags["mltune.trial"]))
    # as two kills leave it: trials 2-4 in flight at the last one, trial 2's point also in
    # flight (as trial 5) at the one before; the search itself was running
    for run in runs[1:]:
        client.set_terminated(run.info.run_id, "RUNNING")
    again = {k: v for k, v in runs[1].data.tags.items() if k.startswith(("mltune.", "mlflow.p"))}
    again["mltune.trial"] = "5"
    twice = client.create_run(runs[1].info.experiment_id, tags=again, run_name="trial-0005")
    client.log_batch(twice.info.run_id, params=[Param(k, v) for k, v in
                                                runs[1].data.params.items()])
    client.set_terminated(parent, "RUNNING")

    resumed = mltune.tune(mltune.load_spec(None, spec), resume=parent)

    children = children_of(client, parent)
    assert [c.info.status for c in children].count("FINISHED") == 4
    assert len(resumed.trials) == 4
    points = [tuple(sorted(c.data.params.items())) for c in children
              if c.info.status == "FINISHED"]
    assert len(set(points)) == 4  # trial 2's point ran again once, not twice
    assert client.get_run(twice.info.run_id).info.status == "KILLED"
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
