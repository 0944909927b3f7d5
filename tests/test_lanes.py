"""The contract of a lane, over both ``PackRunner`` implementations (a lane of this process and
a Ray worker): given the same coordinator, they run the same driver and leave the same trials,
numbered once, pruned by the one scheduler, logged with their models, and the out-of-fold
predictions an ensemble is chosen on (what a Ray worker once lacked). One test runs both, so
their records can be held against each other."""

from __future__ import annotations

import importlib.util

import mlflow
import pytest
import torch
from conftest import children_of
from recording import ListSampler, ScriptedScheduler

import mltune  # noqa: F401  (registers the tasks and backends)
from mltune.core.interrupts import Stop
from mltune.core.terms import TrialStatus
from mltune.search.history.resume import ResumeState
from mltune.search.history.stopping import Progress
from mltune.search.packs.coordinator import Coordinator
from mltune.search.packs.folds import search_folds
from mltune.search.packs.lane import SearchSetup
from mltune.search.packs.lanes import LocalRunner, PackRunner, run_lanes
from mltune.search.packs.shapes import is_free
from mltune.search.schedulers.base import STOP
from mltune.spec.build import build_spec
from mltune.tasks import task_for
from mltune.tracking.runs import start_search

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'mltune[ray]')")
SPEC = build_spec({"task": "tabular", "data": {"source": "sklearn:breast_cancer"}, "epochs": 2,
                   "max_evals": 4, "pack": 2, "cv": 2, "ensemble": 2, "seed": 0,
                   "pruning": "none", "device": "cpu"})
TASK = task_for(SPEC)


def points() -> list[dict]:
    base = {**TASK.default_params(), "hidden_size": 8, "num_layers": 1, "norm": "none",
            "dropout": 0.0}
    return [{**base, "learning_rate": lr} for lr in (3e-3, 1e-2, 3e-2, 1e-3)]


def run_lane(kind: str) -> tuple[Coordinator, ScriptedScheduler, str]:
    """Four trials of one coordinator on one lane of ``kind``; trial 2 pruned at epoch 1."""
    data = TASK.load(SPEC.data, SPEC.seed)
    search = start_search(SPEC, data.fingerprint)
    setup = SearchSetup(SPEC, TASK, data, [torch.device("cpu")],
                        search_folds(SPEC, TASK, data), search)
    scheduler = ScriptedScheduler({(2, 1): STOP})
    stop = Stop()
    coordinator = Coordinator(SPEC, ListSampler(points()), scheduler,
                              Progress(SPEC, search.log_best, None), ResumeState(),
                              lambda key: is_free(key, TASK), pack_limit=2, per_trial=2,
                              stop=stop)
    runners: list[PackRunner]
    if kind == "local":
        runners = [LocalRunner(lane, search) for lane in setup.lanes()]
    else:
        from mltune.backends.ray.runner import ray_runners
        from mltune.backends.ray.store import worker_tracking_uri

        runners = ray_runners(setup, worker_tracking_uri(mlflow.get_tracking_uri()), 1)
    run_lanes(runners, coordinator, stop)
    search.end("FINISHED")
    return coordinator, scheduler, search.run_id


@pytest.mark.slow
@needs_ray
def test_a_local_lane_and_a_ray_worker_run_the_same_trials_and_leave_the_same_record(
        client, local_ray):
    runs = {kind: run_lane(kind) for kind in ("local", "ray")}
    for kind, (coordinator, scheduler, parent) in runs.items():
        outcomes = coordinator.outcomes
        assert sorted(outcomes) == [1, 2, 3, 4], kind
        assert outcomes[2].status is TrialStatus.PRUNED and outcomes[2].epochs == 1, kind
        for number in (1, 3, 4):
            assert outcomes[number].status is TrialStatus.FINISHED, kind
            assert outcomes[number].model_uri.startswith("models:/"), kind
        assert sorted(coordinator.oof) == [1, 3, 4], kind  # what the ensemble selects on
        assert all(p.shape == (len(TASK.load(SPEC.data, 0).y_train)
                               + len(TASK.load(SPEC.data, 0).y_val), 2)
                   for p in coordinator.oof.values()), kind
        heard = sorted((trial, epoch) for trial, epoch, _, _ in scheduler.heard)
        assert heard == [(1, 1), (1, 2), (2, 1), (3, 1), (3, 2), (4, 1), (4, 2)], kind
        assert coordinator.occupancy.slot_s > 0, kind
        children = children_of(mlflow.tracking.MlflowClient(), parent)
        assert [c.info.status for c in children] == ["FINISHED", "KILLED", "FINISHED",
                                                     "FINISHED"], kind
        assert all(c.data.tags["mltune.device"] == "cpu" for c in children), kind
    local, ray = (runs[k][0].outcomes for k in ("local", "ray"))
    for number in (1, 2, 3, 4):  # the same driver, seeds and batches: the same metrics
        assert local[number].metrics == pytest.approx(ray[number].metrics, abs=1e-5), number
