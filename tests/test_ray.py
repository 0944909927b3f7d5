"""The ray backend on a real local Ray: trials in parallel, the same MLflow record as local.

Most tests join one Ray started for the module (``ray start --head --num-cpus 2``) through
``ray_address``, as a user joins a cluster; one test lets the search start and stop its own.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import REPO, all_runs, children_of, env_for_subprocess, tracking_store
from mlflow.tracking import MlflowClient
from serving import free_port
from sklearn.datasets import load_breast_cancer, load_digits

import mltune
from mltune.backends.ray.store import check_tracking_store, is_local_store, worker_tracking_uri
from mltune.core.errors import SpecError
from mltune.spec.build import build_spec, load_spec

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'mltune[ray]')")

TINY = {"epochs": 1, "seed": 7, "backend": "ray", "parallelism": 2, "device": "cpu"}


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 90) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not listen on port {port}")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=45)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Ray head with 2 CPUs, as `ray start --head` makes one; its workers import this tree."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}  # no token on CI runners
    env.pop("MLFLOW_TRACKING_URI", None)  # the workers get it from the search, not from here
    log = (tmp_path_factory.mktemp("ray") / "head.log").open("w")
    process = subprocess.Popen(
        ["ray", "start", "--head", "--num-cpus", "2", "--num-gpus", "0", "--port", str(port),
         "--include-dashboard", "false", "--disable-usage-stats", "--block"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, "ray start --head")
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)  # --block: SIGTERM stops the head's processes
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 (sqlite behind it, artifacts proxied)."""
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env_for_subprocess(""), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=root)
    try:
        wait_for_port(port, process, "mlflow server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def overlapping(runs: list) -> bool:
    """Some two runs were running at the same time."""
    return any(a.info.start_time < b.info.end_time and b.info.start_time < a.info.end_time
               for a, b in itertools.combinations(runs, 2))


@pytest.mark.slow
@needs_ray
def test_parallel_trials_leave_the_record_of_a_local_search(cluster, client):
    result = mltune.tune(load_spec(None, {**TINY, "max_evals": 4, "ray_address": cluster}))

    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.role"] == "search"
    assert parent.data.params["spec.backend"] == "ray"
    assert parent.data.metrics["trials_finished"] == 4

    children = children_of(client, result.parent_run_id)
    assert [c.info.run_name for c in children] == [f"trial-000{n}" for n in (1, 2, 3, 4)]
    assert overlapping(children), "2 trials on 2 CPUs should have run at the same time"
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["mltune.search_id"] == parent.data.tags["mltune.search_id"]
        assert child.data.tags["mltune.device"] in {"cpu#1", "cpu#2"}  # one per worker
        assert "mltune.hyperopt_vals" not in child.data.tags  # resume reads the params
        assert child.data.params["activation"] in {"relu", "gelu", "tanh", "silu", "leaky_relu",
                                                   "elu"}
        assert child.data.params["num_blocks"] in {"1", "2", "3"}  # decoded, not '2.0'
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [1]
    steps = sorted(m.step for m in client.get_metric_history(parent.info.run_id,
                                                             "best_val_accuracy"))
    assert steps == [1, 2, 3, 4]  # each outcome reached the driver as it arrived

    best_child = max(children, key=lambda c: c.data.metrics["val_accuracy"])
    champion = client.get_model_version_by_alias("mltune-image", "champion")
    assert champion.run_id == best_child.info.run_id == result.best.run_id
    assert all(c.data.tags["mltune.model_uri"].startswith("models:/") for c in children)
    model = mlflow.pyfunc.load_model("models:/mltune-image@champion")
    assert set(model.predict(load_digits().data[:5])["label"]) <= set(range(10))
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]


@pytest.mark.slow
@needs_ray
def test_on_a_tracking_server_a_crashed_search_resumes_from_the_cli_on_its_own_ray(
        cluster, server):
    """Trials on the cluster log to a real `mlflow server`; after a crash the search is resumed
    as `mlflow run -P resume=...` does it: MLFLOW_RUN_ID set, a local Ray started and stopped."""
    client = MlflowClient(server, server)
    with tracking_store(server):
        first = mltune.tune(load_spec(None, {**TINY, "max_evals": 2, "ray_address": cluster,
                                             "registered_model": "ray-served"}))
        # the model went through the server's artifact proxy
        served = mlflow.pyfunc.load_model("models:/ray-served@champion")
        assert len(served.predict(load_digits().data[:3])) == 3
    children = children_of(client, first.parent_run_id)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    assert overlapping(children)
    champion = client.get_model_version_by_alias("ray-served", "champion")
    assert champion.run_id in {c.info.run_id for c in children}

    crashed = children[1]  # a crash mid-trial leaves its run RUNNING
    client.set_terminated(crashed.info.run_id, "RUNNING")
    launcher = client.create_run(first.experiment_id)
    own_ray = tempfile.mkdtemp(prefix="mlt-ray-")  # short: Ray's socket paths must fit
    env = {**env_for_subprocess(server), "MLFLOW_RUN_ID": launcher.info.run_id,
           "RAY_TMPDIR": own_ray}  # the search's own Ray keeps its session there
    process = subprocess.run(
        [sys.executable, "-m", "mltune", "tune", "--backend", "ray", "--parallelism", "2",
         "--max-evals", "3", "--epochs", "1", "--seed", "7", "--device", "cpu",
         "--cpus-per-trial", "1", "--registered-model", "ray-served",
         "--resume", first.parent_run_id], env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert f"parent run {first.parent_run_id}" in process.stdout
    noise = [line for line in process.stderr.splitlines() if "Ray" in line or "WARN" in line]
    assert noise == []  # Ray started and stopped without a word

    children = children_of(client, first.parent_run_id)
    assert [int(c.data.tags["mltune.trial"]) for c in children] == [1, 2, 3, 4]
    assert [c.info.status for c in children] == ["FINISHED", "KILLED", "FINISHED", "FINISHED"]
    assert children[1].data.tags["mltune.interrupted"] == "true"
    points = [c.data.params for c in children]
    assert points[2] == points[1], "the interrupted trial's point runs again, first"
    parent = client.get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.resumed"] == "1"
    launched = client.get_run(launcher.info.run_id)
    assert launched.data.tags["mltune.resumes"] == first.parent_run_id
    assert launched.data.metrics == {}  # no worker logged into the launcher's run
    assert all(c.data.tags["mlflow.parentRunId"] == first.parent_run_id for c in children)
    assert list(Path(own_ray).glob("ray/session_*")), "the search started a Ray of its own"
    assert ray_processes_after(own_ray) == {}  # and it is gone
    shutil.rmtree(own_ray, ignore_errors=True)
    client.set_terminated(launcher.info.run_id)
    assert [r.info.run_id for r in all_runs(client) if r.info.status == "RUNNING"] == []


USER_NET = """
from torch import nn


class Digits(nn.Sequential):
    def __init__(self, params, data):
        super().__init__(nn.Flatten(), nn.Linear(64, params["width"]), nn.ReLU(),
                         nn.Linear(params["width"], data.classes))
"""


@pytest.mark.slow
@needs_ray
def test_a_network_of_ones_own_reaches_the_workers_by_value(cluster, client, tmp_path):
    """The workers run where the user's file is not (another folder, another machine): the
    network travels pickled with the task, and each worker logs its source with the model."""
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "digits.py").write_text(USER_NET)
    result = mltune.tune(load_spec(None, {
        **TINY, "max_evals": 2, "ray_address": cluster, "model": "nets/digits.py:Digits",
        "registered_model": "ray-user", "space": {"width": {"choice": [6, 10]}}}))
    children = children_of(client, result.parent_run_id)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    assert {c.data.params["width"] for c in children} <= {"6", "10"}
    (tmp_path / "nets" / "digits.py").unlink()
    model = mlflow.pyfunc.load_model("models:/ray-user@champion")
    assert type(model.unwrap_python_model().network).__name__ == "Digits"
    assert set(model.predict(load_digits().data[:4])["label"]) <= set(range(10))


def ray_processes(mentioning: str) -> dict[int, str]:
    """Live raylet and gcs_server processes whose command line mentions ``mentioning`` (a
    Ray's temp dir: its session's processes), with that command line. A zombie, dead but not
    yet reaped by a container's init, is not Ray left running."""
    out = subprocess.run(["ps", "-eo", "pid,stat,args"], capture_output=True, text=True).stdout
    rows = [line.split(None, 2) for line in out.splitlines()[1:]]
    return {int(row[0]): row[2][:300] for row in rows
            if len(row) == 3 and not row[1].startswith("Z") and mentioning in row[2]
            and Path(row[2].split()[0]).name in ("raylet", "gcs_server")}


def ray_processes_after(mentioning: str, grace_s: float = 30.0) -> dict[int, str]:
    """Those processes still alive once they have had ``grace_s`` to exit: ray.shutdown
    signals them, a loaded machine may take seconds to see them go."""
    deadline = time.monotonic() + grace_s
    while (left := ray_processes(mentioning)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.slow
def test_without_ray_the_ray_backend_is_one_line_with_the_install_command(tracking_uri,
                                                                          client):
    code = ("import sys; sys.modules['ray'] = None; from mltune.cli import main; "
            "main(['tune', '--backend', 'ray', '--max-evals', '2'])")
    process = subprocess.run([sys.executable, "-c", code], env=env_for_subprocess(tracking_uri),
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("mltune: error: backend: 'ray' needs Ray, which is not installed")
    assert "pip install 'mltune[ray]'" in lines[0]
    assert all_runs(client) == []  # refused before any run opened


def test_a_cluster_needs_a_tracking_server_not_a_local_store():
    for store in ("sqlite:////data/mlflow.db", "file:///data/mlruns", "/data/mlruns"):
        assert is_local_store(store)
        check_tracking_store(store, nodes=1)  # one machine: the workers write the same file
        with pytest.raises(SpecError, match=r"local store, which workers on the other 2 Ray "
                                            r"node\(s\) cannot write; start `mlflow server`"):
            check_tracking_store(store, nodes=3)
    check_tracking_store("http://10.0.0.5:5000", nodes=3)
    assert not is_local_store("https://mlflow.example.com")


def test_worker_tracking_uri_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert worker_tracking_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert worker_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert worker_tracking_uri("mlruns") == str(tmp_path / "mlruns")
    assert worker_tracking_uri("http://h:5000") == "http://h:5000"


BAD_RAY_KEYS = {
    "gpus_per_trial": (-1, "gpus_per_trial: -1 is not allowed; expected a number >= 0"),
    "gpus_per_trial ": (1.5, "gpus_per_trial: 1.5 is not allowed"),
    "gpus_per_worker": (-1, "gpus_per_worker: -1 is not allowed; expected a number >= 0"),
    "cpus_per_trial": (0, "cpus_per_trial: 0 is not allowed; expected a number > 0"),
    "ray_address": ("", "ray_address: '' is not allowed; expected auto, host:port"),
}


@pytest.mark.parametrize("key", sorted(BAD_RAY_KEYS))
def test_bad_ray_keys_are_one_line(key):
    value, message = BAD_RAY_KEYS[key]
    with pytest.raises(SpecError, match=message):
        load_spec(None, {"backend": "ray", key.strip(): value})


def test_cuda_with_ray_needs_a_gpu_per_worker():
    with pytest.raises(SpecError, match="device: 'cuda' with backend ray needs gpus_per_worker"):
        load_spec(None, {"backend": "ray", "device": "cuda"})


def test_ray_keys_round_trip_through_the_spec_file():
    spec = load_spec(None, {"backend": "ray", "parallelism": 4, "gpus_per_worker": 0.5,
                            "cpus_per_trial": 2, "ray_address": "auto"})
    assert (spec.gpus_per_worker, spec.cpus_per_trial, spec.ray_address) == (0.5, 2.0, "auto")
    assert build_spec(spec.to_dict()) == spec
    assert "gpus_per_worker: 0.5" in yaml.safe_dump(spec.to_dict())
    assert load_spec(None, {}).ray_address is None


def test_the_old_gpus_per_trial_key_is_read_as_gpus_per_worker_with_one_notice(caplog):
    with caplog.at_level(logging.WARNING, logger="mltune.spec.build"):
        spec = load_spec(None, {"backend": "ray", "gpus_per_trial": 0.5})
    assert spec.gpus_per_worker == spec.gpus_per_trial == 0.5
    assert [r.getMessage() for r in caplog.records] == [
        "gpus_per_trial is now gpus_per_worker (each Ray worker trains packs); read as "
        "gpus_per_worker: 0.5"]
    with pytest.raises(SpecError, match="gpus_per_trial: given with gpus_per_worker"):
        load_spec(None, {"gpus_per_trial": 1, "gpus_per_worker": 1})


@needs_ray
def test_a_cluster_address_where_nothing_answers_is_one_line():
    from mltune.backends.ray import preflight

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(SpecError, match=rf"ray_address: '{address}': nothing answers at "):
        preflight(load_spec(None, {"backend": "ray", "ray_address": address}))


# --- a pack per worker, on a Ray this process starts (ray.init), as a notebook user would ----

PACKED = {"task": "tabular", "backend": "ray", "parallelism": 2, "pack": 4, "device": "cpu",
          "seed": 3, "pruning": {"rule": "none"}}


@pytest.mark.slow
@needs_ray
def test_two_workers_train_packs_of_four_each_member_a_trial_of_its_own(local_ray, client):
    result = mltune.tune(load_spec(None, {**PACKED, "max_evals": 16, "epochs": 2,
                                          "registered_model": "ray-packs"}))
    children = children_of(client, result.parent_run_id)
    assert [int(c.data.tags["mltune.trial"]) for c in children] == list(range(1, 17))
    assert all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.tags["mlflow.parentRunId"] == result.parent_run_id for c in children)
    packs: dict[str, list] = {}
    for child in children:
        packs.setdefault(child.data.tags["mltune.pack"], []).append(child)
    assert sorted(len(members) for members in packs.values()) == [4, 4, 4, 4]
    assert all(len({c.data.tags["mltune.device"] for c in members}) == 1
               for members in packs.values())  # a pack trains in one worker
    workers = {c.data.tags["mltune.device"] for c in children}
    assert workers == {"cpu#1", "cpu#2"}
    one = [c for c in children if c.data.tags["mltune.device"] == "cpu#1"]
    two = [c for c in children if c.data.tags["mltune.device"] == "cpu#2"]
    assert any(overlapping([a, b]) for a in one for b in two), "2 workers at the same time"
    points = [tuple(sorted(c.data.params.items())) for c in children]
    assert len(set(points)) == 16
    parent = client.get_run(result.parent_run_id)
    assert json.loads(parent.data.tags["mltune.devices"]) == {"cpu#1": len(one),
                                                              "cpu#2": len(two)}
    assert 0 < parent.data.metrics["pack_occupancy"] <= 1
    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(3)
    for child in (children[0], children[-1]):  # each member's own model, served
        model = mlflow.pyfunc.load_model(child.data.tags["mltune.model_uri"])
        assert len(model.predict(frame)) == 3


@pytest.mark.slow
@needs_ray
def test_a_worker_killed_mid_pack_loses_only_its_pack_and_the_search_ends_with_max_evals(
        local_ray, client):
    import ray

    spec = load_spec(None, {**PACKED, "max_evals": 12, "epochs": 12})
    outcome: list = []
    search = threading.Thread(target=lambda: outcome.append(mltune.tune(spec)))
    search.start()
    deadline = time.monotonic() + 240
    killed = None
    while killed is None and time.monotonic() < deadline:  # worker 1 inside a pack: kill it
        runs = all_runs(client)
        parents = [r for r in runs if r.data.tags.get("mltune.role") == "search"]
        training = [r for r in runs if r.info.status == "RUNNING"
                    and r.data.tags.get("mltune.device") == "cpu#1"
                    and client.get_metric_history(r.info.run_id, "val_loss")]
        if parents and training:
            search_id = parents[0].data.tags["mltune.search_id"]
            ray.kill(ray.get_actor(f"mltune-{search_id}-worker-1"))
            killed = parents[0].info.run_id
        time.sleep(0.1)
    search.join(timeout=300)
    assert killed is not None and outcome, "the search did not finish"
    children = children_of(client, killed)
    numbers = [int(c.data.tags["mltune.trial"]) for c in children]
    assert len(numbers) == len(set(numbers))
    finished = [c for c in children if c.info.status == "FINISHED"]
    lost = [c for c in children if c.info.status == "KILLED"]
    assert len(finished) == 12 and outcome[0].finished == 12
    assert lost and all(c.data.tags["mltune.interrupted"] == "true" for c in lost)
    assert {c.data.tags["mltune.device"] for c in lost} == {"cpu#1"}
    again = [tuple(sorted(c.data.params.items())) for c in finished]
    for child in lost:  # each lost trial's point trained again, once
        assert again.count(tuple(sorted(child.data.params.items()))) == 1
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    assert client.get_run(killed).info.status == "FINISHED"


@pytest.mark.slow
@needs_ray
def test_sigterm_stops_every_workers_pack_and_prints_the_resume_command(tracking_uri, client):
    from test_resume import wait_for_finished_trials

    env = {**env_for_subprocess(tracking_uri), "RAY_AUTH_MODE": "disabled",
           "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mltune", "tune", "--set", "task=tabular", "--backend", "ray",
         "--parallelism", "2", "--pack", "2", "--max-evals", "40", "--epochs", "20",
         "--device", "cpu", "--set", "pruning.rule=none"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent_id = wait_for_finished_trials(client, 1, process, timeout=180)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "mltune: error: search interrupted (SIGTERM); finished trials are kept. Resume with: "
        "mltune tune --backend ray --parallelism 2 --pack 2 --max-evals 40 --epochs 20 "
        f"--device cpu --set task=tabular --set pruning.rule=none --resume {parent_id}")
    assert client.get_run(parent_id).info.status == "KILLED"
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    killed = [r for r in children_of(client, parent_id) if r.info.status == "KILLED"]
    assert killed and all(r.data.tags["mltune.interrupted"] == "true" for r in killed)
