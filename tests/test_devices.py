"""Every device busy: one pack loop per device, each a thread of the search's process, sharing
one sampler, scheduler and trial numbering. Two loops on the CPU (``device: [cpu, cpu]``)
exercise the same code as a machine of several GPUs; the real GPUs are ``gpu``-marked."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
import torch
from conftest import all_runs, children_of, run_cli
from recording import RecordingTracker
from test_resume import kill_9_then_resume, start_search, wait_for_finished_trials

import mltune
from mltune.core.errors import SpecError
from mltune.core.interrupts import Stop
from mltune.search.packs.coordinator import FixedPoints
from mltune.search.packs.driver import Driver
from mltune.search.packs.lane import Lane
from mltune.search.packs.lanes import STOPPED_BY_PEER, run_lanes
from mltune.tasks import task_for
from mltune.training.device import resolve_devices

TWO_CPUS = {"task": "tabular", "max_evals": 8, "epochs": 3, "pack": 2, "seed": 3,
            "device": ["cpu", "cpu"], "pruning": {"rule": "none"}}


def overlapping(a, b) -> bool:
    return a.info.start_time < b.info.end_time and b.info.start_time < a.info.end_time


def test_two_cpu_loops_train_two_packs_at_once_each_trial_numbered_once(client, capsys):
    code, out, err = run_cli(["tune", "--set", "task=tabular", "--max-evals", "8",
                              "--epochs", "3", "--pack", "2", "--seed", "3",
                              "--device", "cpu,cpu", "--set", "pruning.rule=none"], capsys)
    assert code == 0, err
    parent = [r for r in all_runs(client) if r.data.tags.get("mltune.role") == "search"][0]
    children = children_of(client, parent.info.run_id)
    assert [int(c.data.tags["mltune.trial"]) for c in children] == list(range(1, 9))
    assert all(c.info.status == "FINISHED" for c in children)
    points = [tuple(sorted(c.data.params.items())) for c in children]
    assert len(set(points)) == 8  # no point trained twice: pending in one pack only
    by_device: dict[str, list] = {}
    for child in children:
        by_device.setdefault(child.data.tags["mltune.device"], []).append(child)
    assert set(by_device) == {"cpu#1", "cpu#2"}
    # a pack trains on one device; the two devices trained at the same time
    packs = {}
    for child in children:
        packs.setdefault(child.data.tags["mltune.pack"], set()).add(
            child.data.tags["mltune.device"])
    assert all(len(devices) == 1 for devices in packs.values())
    assert any(overlapping(a, b) for a in by_device["cpu#1"] for b in by_device["cpu#2"])
    # what a user reads: the parent run and the summary say where the trials trained
    shares = json.loads(parent.data.tags["mltune.devices"])
    assert shares == {k: len(v) for k, v in by_device.items()}
    assert parent.data.metrics["devices"] == 2
    line = [x for x in out.splitlines() if x.startswith("Devices:")]
    assert line and line[0].startswith("Devices: trained on 2 devices: cpu#")
    assert "Devices:** trained on 2 devices" in parent.data.tags["mlflow.note.content"]
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/timeline.png" in report  # the report's trials per device over time


def test_one_device_is_one_loop_and_says_so(client):
    result = mltune.tune(mltune.load_spec(None, {**TWO_CPUS, "device": "cpu",
                                                 "max_evals": 2}))
    children = children_of(client, result.parent_run_id)
    assert {c.data.tags["mltune.device"] for c in children} == {"cpu"}
    assert result.devices == {"cpu": 2}
    assert json.loads(client.get_run(result.parent_run_id).data.tags["mltune.devices"]) == \
        {"cpu": 2}
    report = {a.path for a in client.list_artifacts(result.parent_run_id, "report")}
    assert "report/optimisation_history.png" in report
    assert "report/timeline.png" not in report  # one device: nothing a timeline would add


def test_kill_9_with_two_cpu_loops_then_resume_ends_with_max_evals_trials(tracking_uri,
                                                                          client, capsys):
    args = ["--set", "task=tabular", "--max-evals", "10", "--epochs", "3", "--pack", "2",
            "--seed", "4", "--device", "cpu,cpu", "--set", "pruning.rule=none"]
    parent_id, _ = kill_9_then_resume(tracking_uri, client, args, capsys, finished=3)
    children = children_of(client, parent_id)
    numbers = [int(c.data.tags["mltune.trial"]) for c in children]
    assert len(numbers) == len(set(numbers))
    assert [c.info.status for c in children].count("FINISHED") == 10
    killed = [c for c in children if c.info.status == "KILLED"]
    assert all(c.data.tags["mltune.interrupted"] == "true" for c in killed)
    assert len(children) == 10 + len(killed)
    # each interrupted point ran again once, after the resume
    finished_points = [tuple(sorted(c.data.params.items())) for c in children
                       if c.info.status == "FINISHED"]
    assert len(set(finished_points)) == 10
    for k in killed:
        assert finished_points.count(tuple(sorted(k.data.params.items()))) == 1
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert sum(json.loads(parent.data.tags["mltune.devices"]).values()) == 10


def test_sigterm_stops_both_loops_their_packs_killed_and_the_resume_command_printed(
        tracking_uri, client):
    process = start_search(tracking_uri, "--set", "task=tabular", "--max-evals", "40",
                           "--epochs", "20", "--pack", "2", "--device", "cpu,cpu",
                           "--set", "pruning.rule=none")
    parent_id = wait_for_finished_trials(client, 1, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith(
        "mltune: error: search interrupted (SIGTERM); finished trials are kept. Resume with: ")
    assert "Traceback" not in stderr
    assert client.get_run(parent_id).info.status == "KILLED"
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    killed = [r for r in children_of(client, parent_id) if r.info.status == "KILLED"]
    assert killed and all(r.data.tags["mltune.interrupted"] == "true" for r in killed)


def test_networks_built_by_two_lanes_at_once_have_their_seeds_weights():
    spec = mltune.load_spec(None, {"task": "tabular", "seed": 9})
    task = task_for(spec)
    data = task.load(spec.data, spec.seed)
    driver = Driver(Lane(spec, task, data, torch.device("cpu"), "cpu"), FixedPoints([]),
                    RecordingTracker(), Stop())
    params = task.default_params()
    alone = {n: driver.build(n, params)[0].state_dict() for n in range(1, 21)}
    built: dict[int, dict] = {}

    def build(numbers: range) -> None:
        for n in numbers:
            built[n] = driver.build(n, params)[0].state_dict()

    threads = [threading.Thread(target=build, args=(r,)) for r in (range(1, 11),
                                                                    range(11, 21))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, state in alone.items():
        assert all(torch.equal(state[k], built[n][k]) for k in state), n


class Runner:
    """A lane whose driver is a test's own loop."""

    def __init__(self, label: str, loop) -> None:
        self.label, self.loop = label, loop

    def run(self, coordinator, stop: Stop) -> None:
        self.loop(self.label, stop)


def test_a_failing_lane_stops_the_other_and_its_error_is_raised():
    stopped: list[str] = []

    def loop(label: str, stop: Stop) -> None:
        if label == "cpu#1":
            time.sleep(0.2)
            raise ValueError("the sampler broke")
        try:
            while True:  # a pack training: it stops at its next batch
                stop.check()
                time.sleep(0.01)
        except KeyboardInterrupt as exc:
            stopped.append(str(exc))
            raise

    stop = Stop()
    with pytest.raises(ValueError, match="the sampler broke"):
        run_lanes([Runner("cpu#1", loop), Runner("cpu#2", loop)], None, stop)
    assert stopped == [STOPPED_BY_PEER]
    assert Stop().reason is None  # the search's own stop: another search is not stopped


@pytest.mark.parametrize("device, message", [
    (["cpu", "tpu"], "device: entry 'tpu' of ['cpu', 'tpu'] is not allowed; expected auto, "
                     "cpu, cuda (every GPU), cuda:N, mps, or a list of cpu / cuda:N entries"),
    ([], "device: [] is not allowed; expected auto"),
    (["cuda", "cpu"], "device: entry 'cuda' of ['cuda', 'cpu'] is not allowed"),
    ("gpu", "device: 'gpu' is not allowed; expected auto"),
    ([3], "device: entry 3 of [3] is not allowed"),
])
def test_bad_device_entries_are_refused_with_one_line(device, message):
    with pytest.raises(SpecError) as error:
        mltune.load_spec(None, {"device": device})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_bad_device_on_the_cli_exits_2_with_one_line(tracking_uri, capsys):
    code, out, err = run_cli(["tune", "--device", "cpu,gpu:1", "--max-evals", "1"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "mltune: error: device: entry 'gpu:1' of ['cpu', 'gpu:1'] is not allowed; expected "
        "auto, cpu, cuda (every GPU), cuda:N, mps, or a list of cpu / cuda:N entries "
        "([cuda:0, cuda:2]; [cpu, cpu]: two pack loops on the CPU)"]


def test_a_device_list_with_the_ray_backend_is_refused():
    with pytest.raises(SpecError, match=r"device: \['cpu', 'cpu'\] with backend 'ray' is not "
                                        "allowed; a list of devices is for backend local"):
        mltune.load_spec(None, {"device": ["cpu", "cpu"], "backend": "ray"})


def test_device_lists_resolve_in_order_and_a_missing_gpu_is_named():
    assert resolve_devices("cpu,cpu") == [torch.device("cpu")] * 2
    if not torch.cuda.is_available():
        assert resolve_devices("auto") == [torch.device("cpu")]
        with pytest.raises(SpecError, match="device: 'cuda:1' asked for, but this machine "
                                            "has no CUDA device"):
            resolve_devices("cpu,cuda:1")


@pytest.mark.gpu
def test_every_gpu_trains_a_pack_of_its_own(client):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    count = torch.cuda.device_count()
    result = mltune.tune(mltune.load_spec(None, {
        "max_evals": 8 * count, "epochs": 2, "seed": 4, "pack": 4, "device": "cuda",
        "pruning": {"rule": "none"}}))
    children = children_of(client, result.parent_run_id)
    assert {c.data.tags["mltune.device"] for c in children} == {f"cuda:{i}"
                                                                 for i in range(count)}
    assert sum(result.devices.values()) == 8 * count


@pytest.mark.gpu
def test_some_gpus_chosen_by_list(client):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    result = mltune.tune(mltune.load_spec(None, {
        "max_evals": 8, "epochs": 2, "seed": 4, "pack": 2, "device": ["cuda:1", "cuda:0"],
        "pruning": {"rule": "none"}}))
    assert set(result.devices) == {"cuda:0", "cuda:1"}
