"""The Ray Tune side of the ray backend (imported only when Ray is installed).

Driver: ``run_search`` starts (or joins) Ray, hands Tune a ``SamplerSearch`` (the spec's sampler
from the catalog, behind Tune's ``Searcher``) that numbers its trials from the search's
``Session``, and records each outcome through ``Session.record`` as it
arrives, so the parent's ``best_<metric>``, the progress bar and the stop rules work as with the
local backend. Workers: ``train_in_worker`` trains one trial with ``TrialRunner`` (the same code
the local backend runs) and reports the outcome back.

Pruning uses mltune's own rules (median, asha) in a small actor that every trial asks after each
epoch: the worker then ends its run KILLED with ``mltune.pruned`` itself, as a local trial does.
(Ray's schedulers would kill the worker instead, leaving its run to be closed from outside.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import ray
import torch
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient
from ray import tune
from ray.experimental import internal_kv
from ray.tune.search import ConcurrencyLimiter, Searcher

from mltune.backends.ray.store import check_tracking_store, worker_env, worker_tracking_uri
from mltune.core import interrupts
from mltune.core.environ import temporarily
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.data.splits import TaskData
from mltune.search.resume import resumed_sampler
from mltune.search.samplers.base import Params, Sampler, loss_of
from mltune.search.schedulers import make_scheduler
from mltune.search.schedulers.base import Decision
from mltune.search.session import Session
from mltune.search.trial import TrialRunner
from mltune.spec.distributions import Space
from mltune.spec.model import PruningSpec, SearchSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.runs import SearchRun
from mltune.training.device import resolve_device
from mltune.training.precision import resolve_precision

log = logging.getLogger(__name__)
OUTCOME, LOSS = "mltune_outcome", "loss"


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
    """The GPU Ray gave this trial (Ray sets CUDA_VISIBLE_DEVICES to it), else the CPU."""
    if spec.device == "cpu":
        return torch.device("cpu")
    if spec.gpus_per_trial > 0 and ray.get_gpu_ids() and torch.cuda.is_available():
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


def train_in_worker(config: dict[str, Any], data: TaskData | None = None,
                    context: TrialContext | None = None, scheduler: Any = None) -> None:
    """One trial in a Ray worker: a child run opened here, the outcome reported to the driver."""
    assert data is not None and context is not None
    os.environ.pop("MLFLOW_RUN_ID", None)  # never log into the parent (mlflow#15713)
    mlflow.set_tracking_uri(context.tracking_uri)
    spec = context.spec
    torch.set_num_threads(max(1, int(spec.cpus_per_trial)))
    device = worker_device(spec)
    search = SearchRun(context.parent_run_id, context.experiment_id, context.search_id,
                       MlflowClient())
    runner = TrialRunner(spec, context.task, data.to(device), search, device,
                         resolve_precision(spec.precision, device).name,
                         scheduler=ActorScheduler(scheduler) if scheduler is not None else None)
    try:
        with stop_when_told(stop_key(context.search_id)):
            outcome = runner.run_params(config["number"], config["params"])
    except KeyboardInterrupt:
        return  # the search was interrupted: the run is KILLED, nothing to report
    tune.report({LOSS: loss_of(outcome, spec.metric, spec.direction),
                 OUTCOME: json.dumps(asdict(outcome))})


def stop_key(search_id: str) -> bytes:
    return f"mltune-stop-{search_id}".encode()


@contextlib.contextmanager
def stop_when_told(key: bytes, every_s: float = 0.5) -> Iterator[None]:
    """In a worker: when the driver is interrupted (it sets ``key`` in Ray's key-value store),
    the trial stops at its next batch, as a local trial does on Ctrl-C, and ends KILLED."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(every_s):
            if internal_kv._internal_kv_get(key):
                interrupts.request("SIGINT")
                return

    watcher = threading.Thread(target=watch, daemon=True, name="mltune-stop-watch")
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        interrupts.clear()  # this worker process may train the next search's trials


class SamplerSearch(Searcher):
    """Tune's searcher over the search's ``Sampler``: each trial gets its number and its
    decoded point (config ``{"number", "params"}``), and its loss is told back.

    The number is given here, in the driver, so numbers stay unique however trials interleave.
    A resumed search's interrupted points come first. When a stop rule fires, no new trial
    starts; the ones running finish.
    """

    def __init__(self, sampler: Sampler, session: Session) -> None:
        super().__init__(metric=LOSS, mode="min")
        self.sampler: Sampler | None = sampler
        self.session: Session | None = session
        self.queued = list(session.history.requeue)
        self.live: dict[str, Params] = {}  # Tune's trial id -> the point it runs

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        assert self.session is not None and self.sampler is not None
        if self.session.stop_reason() is not None:
            return Searcher.FINISHED
        if self.queued:
            point = self.queued.pop(0)
        else:
            points = self.sampler.ask(1)
            if not points:
                return None  # every point left is pending: ask again when one ends
            point = points[0]
        self.live[trial_id] = point
        return {"number": self.session.take_number(), "params": point}

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        # a failed trial (no loss) is a failed point for the sampler, not a crash of Tune
        point = self.live.pop(trial_id, None)
        if point is None or self.sampler is None:
            return
        loss = None if error or not result else result.get(LOSS)
        self.sampler.tell(point, loss)

    def save(self, checkpoint_path: str) -> None:
        """Nothing: a search resumes from MLflow (``--resume``), not from Tune's files."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing: see ``save``."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # Tune pickles its config: leave the driver's links out
        state["session"] = state["sampler"] = None
        return state


class Outcomes(tune.Callback):
    """In the driver: each trial's outcome, recorded as it arrives."""

    def __init__(self, session: Session) -> None:
        self.session: Session | None = session

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        if OUTCOME not in result:
            return
        outcome = TrialOutcome(**json.loads(result[OUTCOME]))
        if outcome.status == TrialStatus.FAILED:
            log.warning("trial %d failed: %s", outcome.number, outcome.error)
        assert self.session is not None
        self.session.record(outcome)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The worker itself died (killed, out of host memory, node lost): a FAILED trial."""
        number = trial.config["number"]
        error = f"the Ray worker of trial {number} died: {_last_line(trial.get_error())}"
        assert self.session is not None
        run_id = _close_runs(self.session.search, "FAILED", T.ERROR, error, number=number)
        log.warning("trial %d failed: %s", number, error)
        self.session.record(TrialOutcome(number, run_id or "", dict(trial.config["params"]),
                                         TrialStatus.FAILED, error=error))

    def __getstate__(self) -> dict[str, Any]:
        return {"session": None}


class Interrupted(tune.Stopper):
    """Ctrl-C / SIGTERM (noted by ``interrupts``): stop every trial now, workers told too."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        try:
            interrupts.check()
        except KeyboardInterrupt:
            internal_kv._internal_kv_put(self.key, b"1")
            return True
        return False


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


def run_search(session: Session, space: Space) -> None:
    """Run the rest of the search's budget on Ray Tune; outcomes go to ``session.record``."""
    spec = session.spec
    # time alone (no max_evals): -1, Ray Tune's "until the searcher says FINISHED", which it
    # does once a stop rule (the time budget) fires
    samples = -1
    if spec.max_evals is not None:
        samples = spec.max_evals - len(session.history.outcomes)
        if samples <= 0:
            return
    search = session.search
    uri = worker_tracking_uri(mlflow.get_tracking_uri())
    storage = tempfile.mkdtemp(prefix="mltune-ray-")
    quiet = temporarily({"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
                         "TUNE_DISABLE_SIGINT_HANDLER": "1", "RAY_AIR_NEW_OUTPUT": "0",
                         "RAY_DEDUP_LOGS": "0"})
    try:
        with quiet, ray_session(spec, uri):
            check_tracking_store(uri, sum(1 for node in ray.nodes() if node["Alive"]))
            scheduler = None
            if spec.pruning.rule != "none":
                scheduler = ray.remote(num_cpus=0)(SchedulerActor).remote(
                    spec.pruning, spec.direction, space, spec.seed)
            context = TrialContext(spec, session.task, uri, search.run_id,
                                   search.experiment_id, search.search_id)
            trainable = tune.with_parameters(train_in_worker, data=session.data.to("cpu"),
                                             context=context, scheduler=scheduler)
            searcher = SamplerSearch(resumed_sampler(spec, space, session.history), session)
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": spec.cpus_per_trial,
                                                "gpu": spec.gpus_per_trial}),
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=spec.parallelism),
                    num_samples=samples, reuse_actors=True,
                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
                run_config=tune.RunConfig(
                    name=f"mltune-{search.search_id}", storage_path=storage, verbose=0,
                    stop=Interrupted(stop_key(search.search_id)),
                    callbacks=[Outcomes(session)], log_to_file=False),
            )
            try:
                tuner.fit()
            finally:
                internal_kv._internal_kv_del(stop_key(search.search_id))
        interrupts.check()  # Ctrl-C stopped the trials: now stop the search
    finally:
        _close_runs(search, "KILLED", T.INTERRUPTED, "true")  # none after a clean run
        shutil.rmtree(storage, ignore_errors=True)


def _trial_name(trial: Any) -> str:
    return f"trial-{trial.config['number']:04d}"
