"""A Ray worker's driver reaches the search's coordinator through a relay: every call a plain
value each way. Here the relay runs between two threads of this process, each answer pickled
as Ray would carry it, with every sampler of the catalog behind the coordinator: the trials
numbered once, each point the sampler's, each outcome recorded where the search keeps it."""

from __future__ import annotations

import importlib.util
import pickle
import threading

import pytest
import torch
from recording import RecordingTracker, ScriptedScheduler

import mltune  # noqa: F401  (registers the tasks, samplers and schedulers)
from mltune.backends.ray.relay import Relay, RelayCoordinator
from mltune.core.interrupts import Stop
from mltune.core.terms import TrialStatus
from mltune.search.history.resume import ResumeState, rebuilt
from mltune.search.history.stopping import Progress
from mltune.search.packs.coordinator import Coordinator
from mltune.search.packs.driver import Driver
from mltune.search.packs.lane import Lane
from mltune.search.packs.shapes import is_free
from mltune.spec.build import build_spec
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.space import build_space
from mltune.tasks import task_for

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="the relay lives in the ray backend: pip install ray")
OPTUNA = {"optuna-tpe", "optuna-gp", "auto"}


def answer(coordinator: Coordinator, relay: Relay, done: threading.Event) -> dict[int, str]:
    """The search's side: each call answered by the coordinator, pickled as Ray carries it;
    the trials handed to the worker, by number, with what ended them."""
    from mltune.backends.ray.runner import RayRunner

    handed: set[int] = set()
    held: set[int] = set()  # every trial the worker was known to hold, at some point
    calls: dict[int, str] = {}
    while not done.is_set() or not relay.events.empty():
        event = relay.next_event(0.05)
        if event is None:
            continue
        _, (method, args) = event
        args = pickle.loads(pickle.dumps(args))
        result = RayRunner._answer(coordinator, handed, method, args)
        held |= handed
        if method == "ended":
            calls[args[0].number] = args[0].status.value
        relay.answers.put(pickle.loads(pickle.dumps(result)))
    assert not handed, f"trials handed out and never ended: {handed}"
    assert held == set(calls), "a trial the worker held was not known to the search's side"
    return calls


@needs_ray
@pytest.mark.parametrize("algo", SAMPLERS.names())
def test_a_worker_drives_through_the_relay_with_every_sampler(algo):
    if algo in OPTUNA and importlib.util.find_spec("optuna") is None:
        pytest.skip("optuna is not installed")
    spec = build_spec({"task": "tabular", "data": {"source": "sklearn:breast_cancer"},
                       "algo": algo, "max_evals": 5, "epochs": 2, "pack": 2, "seed": 0,
                       "space": {"hidden_size": 8, "num_layers": 1, "norm": "none",
                                 "batch_size": 64, "optimizer": "adam",
                                 "activation": "relu"}})
    task = task_for(spec)
    data = task.load(spec.data, spec.seed)
    space = build_space(spec.space)
    stop = Stop()
    sampler, _ = rebuilt(spec, space, ResumeState(),
                         SAMPLERS.get(algo)(space, spec.planned_trials, spec.seed))
    coordinator = Coordinator(spec, sampler, ScriptedScheduler(),
                              Progress(spec, lambda *a: None, None), ResumeState(),
                              lambda key: is_free(key, task), pack_limit=2, stop=stop)
    relay, done = Relay(), threading.Event()
    tracker = RecordingTracker()
    worker = threading.Thread(target=lambda: (Driver(
        Lane(spec, task, data, torch.device("cpu"), "cpu"), RelayCoordinator(relay), tracker,
        stop).run(), done.set()))
    worker.start()
    ended = answer(coordinator, relay, done)
    worker.join()
    assert sorted(ended) == [1, 2, 3, 4, 5]
    assert all(status == "FINISHED" for status in ended.values())
    assert sorted(coordinator.outcomes) == [1, 2, 3, 4, 5]
    assert all(o.status is TrialStatus.FINISHED for o in coordinator.outcomes.values())
    assert sorted(tracker.records) == [1, 2, 3, 4, 5]
    assert {r.pack for r in tracker.records.values()} - {None}  # packs of two, relayed
    points = [tuple(sorted(r.params.items())) for r in tracker.records.values()]
    assert len(set(points)) == 5  # every point the sampler's own, none twice
