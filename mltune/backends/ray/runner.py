"""The Ray side of the ray backend (imported only when Ray is installed): a driver per worker.

The layer: Ray core actors running mltune's own driver (``search.packs.driver``), not Ray Tune.
A worker is a ``PackWorker`` actor holding the search's data on its device (moved there once),
its lane and its trials' tracker: it runs the same driver a local lane runs (packs filled,
refilled at epoch ends, each trial's record its own child run under the one parent, pack sizes
measured on its own device), with the search's coordinator reached through a relay
(``relay``): a thread of the search's process per worker answers its calls (``RayRunner``).
So everything a search shares (the sampler, the numbering, the one scheduler, stop rules,
progress, the out-of-fold predictions an ensemble is chosen on) stays in the search's process,
and every feature of a local lane works in a worker by construction. Tune would have to see a
pack as one trial whose members come and go at epoch ends, ask the sampler through its
``Searcher`` for points that are not trials, and it kills the trial's worker on a stop, leaving
runs to be closed from outside; with actors Ray only places workers and carries calls.

A worker that dies (killed, out of host memory, node lost) loses only the pack it was
training: its unfinished trials' runs are closed KILLED (``mltune.interrupted``), their points
run again first (``LaneLost``), and a new worker takes its place (up to ``MAX_RESTARTS``
times); the search ends with its whole budget.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mlflow
import ray
import torch
from mlflow.tracking import MlflowClient
from ray.exceptions import RayActorError

from mltune.backends.ray.relay import CALLS, Relay, RelayCoordinator
from mltune.backends.ray.store import check_tracking_store, worker_env, worker_tracking_uri
from mltune.core.errors import SpecError
from mltune.core.interrupts import Stop
from mltune.data.splits import TaskData
from mltune.search.packs.coordinator import Admitted, Coordinator, PackStart
from mltune.search.packs.driver import Driver
from mltune.search.packs.folds import search_folds
from mltune.search.packs.lane import Lane, SearchSetup
from mltune.search.packs.lanes import LaneLost, run_lanes
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking.background import Finisher
from mltune.tracking.runs import SearchRun
from mltune.tracking.tracker import MlflowTracker, end_orphans
from mltune.training.device import numbered, resolve_device
from mltune.training.precision import resolve_precision

log = logging.getLogger(__name__)
POLL_S = 0.5  # how long a worker holds the search's ask for its next event
MAX_RESTARTS = 3  # new workers a lane may start after its worker died


@dataclass(frozen=True)
class WorkerContext:
    """What a worker needs besides the data: plain values, so it pickles."""

    spec: SearchSpec
    task: Task
    tracking_uri: str
    parent_run_id: str
    experiment_id: str
    search_id: str


def worker_device(spec: SearchSpec) -> torch.device:
    """The GPU Ray gave this worker (Ray sets CUDA_VISIBLE_DEVICES to it), else the CPU."""
    if spec.device == "cpu":
        return torch.device("cpu")
    if spec.gpus_per_worker > 0 and ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda", 0)
    if spec.device == "auto":
        return torch.device("cpu")
    return resolve_device(spec.device)


def _last_line(error: Any) -> str:
    """A worker's error in one line: the last of its traceback, the exception itself."""
    text = str(error or "no error recorded").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else text


@contextlib.contextmanager
def ray_session(spec: SearchSpec, tracking_uri: str) -> Iterator[None]:
    """Ray for the search: started here (and stopped after) unless it already runs in this
    process; joined when ``ray_address`` names a cluster. Quiet: no dashboard, no worker logs."""
    if ray.is_initialized():
        yield
        return
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    auth_mode = os.environ.get("RAY_AUTH_MODE")  # a local start sets it for this process
    ray.init(address=spec.ray_address or "local",  # "local": never a stray cluster
             include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, runtime_env={"env_vars": worker_env(tracking_uri)})
    if main:
        signal.signal(signal.SIGTERM, sigterm)  # ray.init replaced ours (interrupts)
    try:
        yield
    finally:
        _shutdown(started=not spec.ray_address)
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)


def _shutdown(started: bool) -> None:
    """Ray let go of; a Ray this search started is waited for until its processes are gone
    (on a loaded machine its raylet and GCS may outlive a search that does not wait, orphaned).
    A Ray without ``wait_for_processes`` is shut down without waiting."""
    try:
        ray.shutdown(wait_for_processes=started)
    except TypeError:
        ray.shutdown()


class PackWorker:
    """In a Ray worker process: this worker's lane and tracker, and its driver, run in a
    thread of the actor (``drive``) while the search's process answers its coordinator's
    calls through the relay (``next_event``, ``answer``)."""

    def __init__(self, context: WorkerContext, data: TaskData) -> None:
        os.environ.pop("MLFLOW_RUN_ID", None)  # never log into the parent (mlflow#15713)
        mlflow.set_tracking_uri(context.tracking_uri)
        spec = context.spec
        torch.set_num_threads(max(1, int(spec.cpus_per_trial)))
        device = worker_device(spec)
        data = data.to(device)  # once per worker
        self.lane = Lane(spec, context.task, data, device, str(device),
                         search_folds(spec, context.task, data))
        self.search = SearchRun(context.parent_run_id, context.experiment_id,
                                context.search_id, MlflowClient())
        self.relay = Relay()
        self.stop = Stop()

    def where(self) -> tuple[str, str]:
        """(its device, its node's address)."""
        return str(self.lane.device), ray.util.get_node_ip_address()

    def drive(self, label: str) -> None:
        """Run the driver in the background, as lane ``label``; its calls and its end
        follow as events."""
        lane, self.lane.label = self.lane, label
        self.stop.clear()

        def main() -> None:
            finisher = Finisher()
            tracker = MlflowTracker(self.search, lane.task, lane.data, lane.device, label=label,
                                    precision=resolve_precision(lane.spec.precision,
                                                                lane.device).name,
                                    finisher=finisher)
            try:
                Driver(lane, RelayCoordinator(self.relay), tracker,  # type: ignore[arg-type]
                       self.stop).run()
                finisher.close()
                self.relay.end("done", None)
            except BaseException as exc:  # noqa: B036 (Ctrl-C too: the search raises it)
                self.relay.end("raised", portable(exc))

        threading.Thread(target=main, daemon=True, name="mltune-driver").start()

    def next_event(self, wait_s: float) -> tuple[str, Any] | None:
        return self.relay.next_event(wait_s)

    def answer(self, value: Any) -> None:
        self.relay.answers.put(value)

    def interrupt(self, reason: str) -> None:
        """The search was stopped: the pack stops at its next batch, its runs KILLED."""
        self.stop.request(reason)


def portable(error: BaseException) -> BaseException:
    """``error`` as it can travel back to the driver (pickled), else its type and message."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


class RayRunner:
    """A Ray worker as a lane of the search: its driver runs in the worker, its coordinator
    calls answered here, from this thread of the search's process. A worker that died raises
    ``LaneLost`` (its unfinished trials handed back); the next ``run`` starts a new one."""

    def __init__(self, start: Callable[[int], Any], search: SearchRun) -> None:
        self.start, self.search = start, search
        self.restarts = 0
        self.actor: Any = start(0)
        self.label = ""

    def worker(self) -> Any:
        if self.actor is None:
            self.restarts += 1
            self.actor = self.start(self.restarts)
        return self.actor

    def run(self, coordinator: Coordinator, stop: Stop) -> None:
        handed: set[int] = set()  # trials this worker was given and has not ended
        stopping = False
        try:
            actor = self.worker()
            ray.get(actor.drive.remote(self.label))
            while True:
                if not stopping and stop.reason is not None:
                    actor.interrupt.remote(stop.reason)  # its pack ends KILLED; then it says so
                    stopping = True
                event = ray.get(actor.next_event.remote(POLL_S))
                if event is None:
                    continue
                kind, value = event
                if kind == "call":
                    actor.answer.remote(self._answer(coordinator, handed, *value))
                elif kind == "done":
                    return
                else:
                    if stopping:  # the search's own stop (SIGTERM, SIGINT) is the reason
                        stop.check()
                    raise value
        except RayActorError as exc:
            self.actor = None
            reason = f"the Ray worker {self.label} died mid-pack: {_last_line(exc)}"
            points = coordinator.lost(sorted(handed))
            end_orphans(self.search, sorted(handed), points)
            raise LaneLost(reason, len(handed), restartable=self.restarts < MAX_RESTARTS
                           ) from None

    @staticmethod
    def _answer(coordinator: Coordinator, handed: set[int], method: str,
                args: Sequence[Any]) -> Any:
        """The coordinator's answer to a worker's call, noting which trials it holds."""
        if method not in CALLS:
            raise ValueError(f"a worker called {method!r}; allowed: {', '.join(CALLS)}")
        result = getattr(coordinator, method)(*args)
        admitted = result.admitted if isinstance(result, PackStart) else result
        if isinstance(admitted, Admitted):  # numbered by admit, or by next_pack at once
            handed.update(number for number, _ in admitted.trials)
        elif method == "refill":
            handed.update(number for number, _ in result)
        elif method == "ended":
            handed.discard(args[0].number)
        return result


def worker_count(spec: SearchSpec, resources: Mapping[str, float]) -> int:
    """``parallelism`` workers, as many as the cluster's CPUs and GPUs hold; none is a
    SpecError naming what a worker reserves."""
    fits = [spec.parallelism, int(resources.get("CPU", 0) // spec.cpus_per_trial)]
    if spec.gpus_per_worker > 0:
        fits.append(int(resources.get("GPU", 0) // spec.gpus_per_worker))
    count = min(fits)
    if count < 1:
        raise SpecError(f"cpus_per_trial: {spec.cpus_per_trial:g} CPU(s) and gpus_per_worker: "
                        f"{spec.gpus_per_worker:g} GPU(s) per worker, but the Ray cluster has "
                        f"{resources.get('CPU', 0):g} CPU(s) and {resources.get('GPU', 0):g} "
                        "GPU(s); ask for less per worker or join a larger cluster")
    return count


def labels_of(places: Sequence[tuple[str, str]]) -> list[str]:
    """Each worker's ``mltune.device``: its device, ``@node`` on a cluster of several nodes,
    ``#k`` when several workers share that name (``cpu#1``, ``cuda:0@10.0.0.5``)."""
    several_nodes = len({node for _, node in places}) > 1
    return numbered([f"{device}@{node}" if several_nodes else device for device, node in places])


def ray_runners(setup: SearchSetup, uri: str, count: int) -> list[RayRunner]:
    """``count`` workers of the search (Ray running), each a lane with its label."""
    spec, search = setup.spec, setup.search
    context = WorkerContext(spec, setup.task, uri, search.run_id, search.experiment_id,
                            search.search_id)
    data = ray.put(setup.data.to("cpu"))  # shipped once, moved once per worker
    actor = ray.remote(PackWorker)

    def starter(i: int) -> Callable[[int], Any]:
        def start(restart: int) -> Any:
            name = f"mltune-{search.search_id}-worker-{i}"
            return actor.options(
                name=name + (f"-r{restart}" if restart else ""), max_concurrency=4,
                num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_worker,
            ).remote(context, data)
        return start

    runners = [RayRunner(starter(i + 1), search) for i in range(count)]
    places = ray.get([r.actor.where.remote() for r in runners])
    for runner, label in zip(runners, labels_of(places), strict=True):
        runner.label = label
    return runners


def run_search(setup: SearchSetup, coordinator: Coordinator, stop: Stop) -> None:
    """The search's lanes in Ray workers, one driver each; their calls answered here."""
    spec, search = setup.spec, setup.search
    uri = worker_tracking_uri(mlflow.get_tracking_uri())
    try:
        with ray_session(spec, uri):
            check_tracking_store(uri, sum(1 for node in ray.nodes() if node["Alive"]))
            runners = ray_runners(setup, uri, worker_count(spec, ray.cluster_resources()))
            log.info("training in %d Ray workers: %s", len(runners),
                     ", ".join(r.label for r in runners))
            run_lanes(runners, coordinator, stop)
    finally:
        end_orphans(search)  # none after a clean run
