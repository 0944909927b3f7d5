"""The Ray side of the ray backend (imported only when Ray is installed): a pack per worker.

The layer: Ray core actors, driven by mltune's own pack loop (``search.packloop``), not Ray
Tune. A worker is a ``PackWorker`` actor holding the search's data on its device (moved there
once) and a ``TrialRunner``: it trains one pack at a time, exactly as a local device does
(fused members, refills at epoch ends, its own child runs under the one parent), and its pack
sizes are measured on its own device. The driver keeps everything a search shares: the
sampler (a point pending in one pack only), the numbering, the stop rules, progress and the
parent run; each worker is a lane of the pack loop, driven from a thread of the driver through
``WorkerRunner``, which relays the worker's events (a slot to refill, a trial that ended, the
pack done). Tune would have to see a pack as one trial whose members come and go at epoch
ends, ask the sampler through its ``Searcher`` for points that are not trials, and it kills
the trial's worker on a stop, leaving runs to be closed from outside; with actors the loop,
its refills and its bookkeeping are the local backend's own code, and Ray only places workers
and carries calls.

A worker that dies (killed, out of host memory, node lost) loses only the pack it was
training: its unfinished trials' runs are closed KILLED (``mltune.interrupted``), their points
run again first (``LaneLost``), and a new worker takes its place (up to ``MAX_RESTARTS``
times); the search ends with its whole budget. Pruning uses mltune's own rules in a small
actor that every worker asks after each epoch (``SchedulerActor``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import ray
import torch
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from ray.exceptions import RayActorError

from mltune.backends.ray.store import check_tracking_store, worker_env, worker_tracking_uri
from mltune.core import interrupts
from mltune.core.errors import SpecError
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction
from mltune.data.splits import TaskData
from mltune.search.crossval import search_folds
from mltune.search.devices import Lane, LaneLost
from mltune.search.packloop import run_loops
from mltune.search.packs import PackSizes
from mltune.search.schedulers import make_scheduler
from mltune.search.schedulers.base import Decision
from mltune.search.session import Session
from mltune.search.trial import TrialRunner
from mltune.spec.distributions import Space
from mltune.spec.model import PruningSpec, SearchSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.runs import SearchRun
from mltune.training.device import numbered, resolve_device
from mltune.training.engine import Occupancy
from mltune.training.precision import resolve_precision

log = logging.getLogger(__name__)
POLL_S = 0.5  # how long a worker holds the driver's ask for its next event
MAX_RESTARTS = 3  # new workers a lane may start after its worker died
Members = list[tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class TrialContext:
    """What a worker needs besides the data: plain values, so it pickles."""

    spec: SearchSpec
    task: Task
    tracking_uri: str
    parent_run_id: str
    experiment_id: str
    search_id: str


class SchedulerActor:
    """The search's scheduler, shared by all workers (it judges across trials)."""

    def __init__(self, spec: PruningSpec, direction: Direction, space: Space | None = None,
                 seed: int = 0) -> None:
        self.scheduler = make_scheduler(spec, direction, space, seed)

    def on_start(self, trial: int, params: Mapping[str, Any]) -> None:
        self.scheduler.on_start(trial, params)

    def on_result(self, trial: int, epoch: int, value: float,
                  peers: Mapping[int, float] | None = None) -> Decision:
        return self.scheduler.on_result(trial, epoch, value, peers)

    def on_end(self, trial: int) -> None:
        self.scheduler.on_end(trial)


def worker_device(spec: SearchSpec) -> torch.device:
    """The GPU Ray gave this worker (Ray sets CUDA_VISIBLE_DEVICES to it), else the CPU."""
    if spec.device == "cpu":
        return torch.device("cpu")
    if spec.gpus_per_worker > 0 and ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda", 0)
    if spec.device == "auto":
        return torch.device("cpu")
    return resolve_device(spec.device)


class ActorScheduler:
    """The scheduler actor as a trial asks it (a ``Scheduler``)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def on_start(self, trial: int, params: Mapping[str, Any]) -> None:
        self.actor.on_start.remote(trial, dict(params))  # one caller's calls arrive in order

    def on_result(self, trial: int, epoch: int, value: float,
                  peers: Mapping[int, float] | None = None) -> Decision:
        decision: Decision = ray.get(self.actor.on_result.remote(trial, epoch, value, peers))
        return decision

    def on_end(self, trial: int) -> None:
        self.actor.on_end.remote(trial)


def _last_line(error: Any) -> str:
    """A worker's error in one line: the last of its traceback, the exception itself."""
    text = str(error or "no error recorded").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else text


def _close_runs(search: SearchRun, status: str, tag: str, value: str,
                number: int | None = None) -> str | None:
    """End this search's trial runs still RUNNING (all, or trial ``number``'s)."""
    query = (f"tags.`{T.SEARCH_ID}` = '{search.search_id}' and "
             f"tags.`{T.ROLE}` = 'trial' and attributes.status = 'RUNNING'")
    if number is not None:
        query += f" and tags.`{T.TRIAL}` = '{number}'"
    found = None
    for run in search.client.search_runs([search.experiment_id], filter_string=query):
        search.client.log_batch(run.info.run_id, tags=[RunTag(tag, value)])
        search.client.set_terminated(run.info.run_id, status)
        found = run.info.run_id
    return found


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
        ray.shutdown()
        if auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)




class PackWorker:
    """In a Ray worker process: the packs the driver hands it, trained one at a time on its
    device by a ``TrialRunner`` (the local backend's own), in a thread of the actor while the
    driver asks for its events: ``("refill", free)`` (answered by ``answer``), ``("ended",
    outcome)``, and at the end ``("done", (outcomes, occupancy))`` or ``("raised", error)``."""

    def __init__(self, context: TrialContext, data: TaskData, scheduler: Any) -> None:
        os.environ.pop("MLFLOW_RUN_ID", None)  # never log into the parent (mlflow#15713)
        mlflow.set_tracking_uri(context.tracking_uri)
        spec = context.spec
        torch.set_num_threads(max(1, int(spec.cpus_per_trial)))
        self.device = worker_device(spec)
        self.data = data.to(self.device)  # once per worker
        search = SearchRun(context.parent_run_id, context.experiment_id, context.search_id,
                           MlflowClient())
        self.runner = TrialRunner(spec, context.task, self.data, search, self.device,
                                  resolve_precision(spec.precision, self.device).name,
                                  scheduler=ActorScheduler(scheduler) if scheduler else None,
                                  folds=search_folds(spec, context.task, self.data))
        self.sizes = PackSizes(context.task, self.data, self.device, spec.precision)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.answers: queue.Queue[Members] = queue.Queue()

    def where(self) -> tuple[str, str]:
        """(its device, its node's address)."""
        return str(self.device), ray.util.get_node_ip_address()

    def name(self, label: str) -> None:
        """What its trials' ``mltune.device`` says."""
        self.runner.label = label

    def size(self, params: Mapping[str, Any], limit: int) -> int:
        """``pack: auto``'s size for this shape, measured on its own device."""
        return self.sizes.size(params, limit)

    def start(self, pack: int | None, members: Members, refills: bool,
              seconds_left: float | None) -> None:
        """Train a pack in the background; its events follow (``next_event``)."""
        deadline = None if seconds_left is None else time.monotonic() + seconds_left
        before = Occupancy(self.runner.occupancy.member_s, self.runner.occupancy.slot_s)

        def train() -> None:
            try:
                outcomes = self.runner.run_pack(
                    pack, members, refill=self._refill if refills else None,
                    on_end=lambda o: self.events.put(("ended", asdict(o))), deadline=deadline)
                used = self.runner.occupancy
                self.events.put(("done", ([asdict(o) for o in outcomes],
                                          (used.member_s - before.member_s,
                                           used.slot_s - before.slot_s))))
            except BaseException as exc:  # noqa: B036 (Ctrl-C too: the driver raises it)
                self.events.put(("raised", portable(exc)))
            finally:
                interrupts.clear()  # this worker trains the next pack

        threading.Thread(target=train, daemon=True, name="mltune-pack").start()

    def _refill(self, free: int) -> Members:
        self.events.put(("refill", free))
        return self.answers.get()

    def next_event(self, wait_s: float) -> tuple[str, Any] | None:
        try:
            return self.events.get(timeout=wait_s)
        except queue.Empty:
            return None

    def answer(self, members: Members) -> None:
        self.answers.put(members)

    def interrupt(self) -> None:
        """The driver was interrupted: the pack stops at its next batch, its runs KILLED."""
        interrupts.request("SIGINT")


def portable(error: BaseException) -> BaseException:
    """``error`` as it can travel back to the driver (pickled), else its type and message."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


class WorkerRunner:
    """A Ray worker as its lane of the pack loop sees it: ``run_pack`` as ``TrialRunner``'s,
    the pack trained in the worker, its events relayed from this thread of the driver (a
    refill asked of the loop, each trial's end recorded). A worker that died raises
    ``LaneLost`` with the trials it had not finished; the next pack starts a new one."""

    def __init__(self, start: Callable[[int], Any], search: SearchRun,
                 scheduler: Any = None) -> None:
        self.start, self.search, self.scheduler = start, search, scheduler
        self.restarts = 0
        self.actor: Any = start(0)
        self.label = ""
        self.occupancy = Occupancy()

    def worker(self) -> Any:
        if self.actor is None:
            self.restarts += 1
            self.actor = self.start(self.restarts)
            ray.get(self.actor.name.remote(self.label))
        return self.actor

    def size(self, params: Mapping[str, Any], limit: int) -> int:
        """``pack: auto``'s size, measured by the worker on its device (1 if it died)."""
        try:
            return int(ray.get(self.worker().size.remote(dict(params), limit)))
        except RayActorError:
            self.actor = None
            return 1

    def run_pack(self, pack: int | None, members: Sequence[tuple[int, Mapping[str, Any]]],
                 refill: Callable[[int], Sequence[tuple[int, Mapping[str, Any]]]] | None = None,
                 on_end: Callable[[TrialOutcome], None] | None = None,
                 deadline: float | None = None) -> list[TrialOutcome]:
        running = {n: dict(p) for n, p in members}  # started in the worker, not yet ended
        seconds_left = None if deadline is None else deadline - time.monotonic()
        stopping = False
        try:
            actor = self.worker()
            ray.get(actor.start.remote(pack, list(running.items()), refill is not None,
                                       seconds_left))
            while True:
                if not stopping and _interrupted():
                    actor.interrupt.remote()  # its pack ends KILLED; then it says so
                    stopping = True
                event = ray.get(actor.next_event.remote(POLL_S))
                if event is None:
                    continue
                kind, value = event
                if kind == "refill":
                    taken = [] if stopping or refill is None else [
                        (n, dict(p)) for n, p in refill(value)]
                    running.update(taken)
                    actor.answer.remote(taken)
                elif kind == "ended":
                    outcome = TrialOutcome(**value)
                    running.pop(outcome.number, None)
                    if on_end is not None:
                        on_end(outcome)
                elif kind == "done":
                    outcomes, (member_s, slot_s) = value
                    self.occupancy.member_s += member_s
                    self.occupancy.slot_s += slot_s
                    return [TrialOutcome(**o) for o in outcomes]
                else:
                    if stopping:  # the driver's own interrupt (SIGTERM, SIGINT) is the reason
                        interrupts.check()
                    raise value
        except RayActorError as exc:
            self.actor = None
            reason = f"the Ray worker {self.label} died mid-pack: {_last_line(exc)}"
            for number in running:
                _close_runs(self.search, "KILLED", T.INTERRUPTED, "true", number=number)
                if self.scheduler is not None:
                    self.scheduler.on_end.remote(number)
            raise LaneLost(reason, list(running.items()),
                           restartable=self.restarts < MAX_RESTARTS) from None


def _interrupted() -> bool:
    try:
        interrupts.check()
    except KeyboardInterrupt:
        return True
    return False


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


class WorkerSizes:
    """A worker's pack sizes, as its lane's ``sizes``."""

    def __init__(self, runner: WorkerRunner) -> None:
        self.runner = runner

    def size(self, params: Mapping[str, Any], limit: int) -> int:
        return self.runner.size(params, limit)


def run_search(session: Session, space: Space) -> None:
    """The rest of the search's budget in Ray workers, one pack loop each (``run_loops``, the
    local backend's); outcomes are recorded by the session as they arrive."""
    spec = session.spec
    if spec.max_evals is not None and spec.max_evals <= len(session.history.outcomes):
        return
    search = session.search
    uri = worker_tracking_uri(mlflow.get_tracking_uri())
    try:
        with ray_session(spec, uri):
            check_tracking_store(uri, sum(1 for node in ray.nodes() if node["Alive"]))
            count = worker_count(spec, ray.cluster_resources())
            scheduler = None
            if spec.pruning.rule != "none":
                scheduler = ray.remote(num_cpus=0)(SchedulerActor).remote(
                    spec.pruning, spec.direction, space, spec.seed)
            context = TrialContext(spec, session.task, uri, search.run_id,
                                   search.experiment_id, search.search_id)
            data = ray.put(session.data.to("cpu"))  # shipped once, moved once per worker
            actor = ray.remote(PackWorker)

            def starter(i: int) -> Callable[[int], Any]:
                def start(restart: int) -> Any:
                    name = f"mltune-{search.search_id}-worker-{i}"
                    return actor.options(
                        name=name + (f"-r{restart}" if restart else ""), max_concurrency=4,
                        num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_worker,
                    ).remote(context, data, scheduler)
                return start

            runners = [WorkerRunner(starter(i + 1), search, scheduler) for i in range(count)]
            places = ray.get([r.actor.where.remote() for r in runners])
            labels = labels_of(places)
            ray.get([r.actor.name.remote(label) for r, label in zip(runners, labels,
                                                                    strict=True)])
            lanes = []
            for runner, label, (device, _) in zip(runners, labels, places, strict=True):
                runner.label = label
                lanes.append(Lane(torch.device(device), label, None, runner,
                                  WorkerSizes(runner)))
            log.info("training in %d Ray workers: %s", count, ", ".join(labels))
            session.lanes = lanes  # the summary's occupancy: the workers'
            run_loops(session, space, lanes)
    finally:
        _close_runs(search, "KILLED", T.INTERRUPTED, "true")  # none after a clean run
