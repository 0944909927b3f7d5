"""Resuming a search from what MLflow holds: no pickle, no side files.

Each trial run holds its decoded point as params (read back typed by the space) and the value it
was scored by (tag ``mltune.objective``), so any sampler's history is rebuilt from the finished,
failed and pruned children; a store written by an earlier mltune has both too. The scheduler is
rebuilt from each ended trial's curve, the search's metric by epoch (tag ``mltune.curve``; the
metric's history where an older mltune wrote no such tag), so a resumed search judges its next
trials as the uninterrupted one would. Children left RUNNING by a crash are marked KILLED and
their points are evaluated again first; trial numbers continue after the highest one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mltune.core.errors import SpecError
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import TrialStatus
from mltune.search.history.priors import Priors, warm
from mltune.search.samplers.base import Finished, Sampler, loss_of
from mltune.search.schedulers import make_scheduler
from mltune.search.schedulers.base import Context, Scheduler, TrialCurve
from mltune.spec.build import stored_spec
from mltune.spec.distributions import Space
from mltune.spec.model import SearchSpec, model_name
from mltune.spec.space import parse_point
from mltune.tasks import get_task
from mltune.tracking import tags as T
from mltune.tracking.model import quiet_model_io
from mltune.tracking.runs import SPEC_FILE, SearchRun, record_spec


@dataclass
class ResumeState:
    """The part of a search that already ran."""

    outcomes: list[TrialOutcome] = field(default_factory=list)  # finished, failed, pruned
    curves: list[TrialCurve] = field(default_factory=list)  # what the scheduler is rebuilt from
    requeue: list[dict[str, Any]] = field(default_factory=list)  # interrupted points: run again
    next_number: int = 1
    next_pack: int = 1
    priors: Priors = field(default_factory=Priors)  # what earlier searches taught (warm_start)


def rebuilt(spec: SearchSpec, space: Space, history: ResumeState,
            sampler: Sampler) -> tuple[Sampler, Scheduler]:
    """The search's sampler (``algo``: the one ``prepare`` made, told nothing yet) and
    scheduler (``pruning.rule``) knowing what already ran: earlier searches' trials and curves
    first (a warm start, ``priors.warm``), then this search's finished, failed and pruned
    trials and their curves, the interrupted ones pending (they run again first, never asked
    anew). Every backend starts from them."""
    scheduler = make_scheduler(spec.pruning, Context(spec.direction, space, spec.seed,
                                                     spec.epochs))
    scheduler = warm(sampler, scheduler, history.priors, spec)
    sampler.rebuild([Finished(o.params, loss_of(o, spec.metric, spec.direction))
                     for o in history.outcomes])
    for point in history.requeue:
        sampler.pending(point)
    scheduler.rebuild(history.curves)
    return sampler, scheduler


def curve_of(client: MlflowClient, run: Any, metric: str) -> tuple[float, ...]:
    """A trial's metric by epoch: its ``mltune.curve`` tag, else its metric's history."""
    tag = run.data.tags.get(T.CURVE)
    if tag:
        return tuple(float(v) for v in json.loads(tag))
    if metric not in run.data.metrics:
        return ()
    history = client.get_metric_history(run.info.run_id, metric)
    return tuple(m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp)))


def _differences(original: SearchSpec, spec: SearchSpec) -> list[str]:
    found = [name for name in ("task", "data") if getattr(original, name) != getattr(spec, name)]
    # a series is cut by time: any seed splits alike (tasks.drawn_split_seed, asked here of
    # the task alone: one call fewer carrying the spec)
    drawn = get_task(spec.task).random_split
    if drawn and original.split_seed != spec.split_seed and "data" not in found:
        found.append("seed (it draws the splits: keep it, or set data.split_seed)")
    if network_of(original) != network_of(spec):
        found.append("model")
    keys = sorted(set(original.space) | set(spec.space))
    found += [f"space.{k}" for k in keys if original.space.get(k) != spec.space.get(k)]
    return found


def network_of(spec: SearchSpec) -> str:
    """``model:`` as text; none is the task's own family (``model: cnn`` is the same)."""
    return model_name(spec.model) or get_task(spec.task).family


def status_of(run: Any) -> TrialStatus:
    if run.data.tags.get(T.PRUNED) == "true":
        return TrialStatus.PRUNED
    return TrialStatus(run.info.status)


def resume_search(parent_run_id: str, spec: SearchSpec, space: Space,
                  data_fingerprint: str) -> tuple[SearchRun, ResumeState]:
    """Re-open ``parent_run_id`` and rebuild the search's history from its children. What
    cannot be resumed (another search's spec, changed data) is refused before anything is
    written."""
    client = MlflowClient()
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)  # `mlflow run -P resume=...` made one
    if launcher and launcher != parent_run_id:
        client.set_tag(launcher, T.RESUMES, parent_run_id)
    parent = _parent(client, parent_run_id)
    stored = _stored_spec(parent_run_id)
    differences = _differences(stored_spec(yaml.safe_load(stored)), spec) if stored else []
    if differences:
        raise SpecError(f"the spec differs from the search's in {', '.join(differences)}; a "
                        "resumed search keeps its task, data, splits, model and space",
                        field="resume")
    recorded = parent.data.tags.get(T.DATA_FINGERPRINT)
    if recorded and recorded != data_fingerprint:
        raise SpecError(f"the data changed since the search started (fingerprint "
                        f"{recorded} -> {data_fingerprint})", field="resume")
    state = _history(client, parent, spec, space)
    if stored is None:  # stopped before it recorded its spec: no trial ran yet
        record_spec(client, parent_run_id, spec)
    client.set_terminated(parent_run_id, "RUNNING")
    resumed = int(parent.data.tags.get(T.RESUMED, "0")) + 1
    client.set_tag(parent_run_id, T.RESUMED, str(resumed))
    search = SearchRun(parent_run_id, parent.info.experiment_id, parent.data.tags[T.SEARCH_ID],
                       client, parent.info.run_name or parent_run_id)
    return search, state


def _parent(client: MlflowClient, parent_run_id: str) -> Any:
    """The search's parent run; one line when there is none."""
    try:
        parent = client.get_run(parent_run_id)
    except MlflowException:
        raise SpecError(f"no run {parent_run_id!r} in this tracking store",
                        field="resume") from None
    if parent.data.tags.get(T.ROLE) != "search":
        raise SpecError(f"run {parent_run_id} is not an mltune search (no tag "
                        f"{T.ROLE}=search)", field="resume")
    return parent


def _stored_spec(parent_run_id: str) -> str | None:
    """The spec the search recorded (``spec.yaml``), None when it stopped before it did."""
    try:
        with quiet_model_io():
            return mlflow.artifacts.load_text(f"runs:/{parent_run_id}/{SPEC_FILE}")
    except MlflowException:
        return None


def _history(client: MlflowClient, parent: Any, spec: SearchSpec, space: Space
             ) -> ResumeState:
    """What the search's trials left: the ended ones (their outcomes and curves), the
    interrupted ones (closed KILLED, their points to run again), the numbers to go on from."""
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{T.SEARCH_ID}` = '{parent.data.tags[T.SEARCH_ID]}' "
                      f"and tags.`{T.ROLE}` = 'trial'",
        max_results=50000)
    children.sort(key=lambda r: int(r.data.tags.get(T.TRIAL, 0)))
    state = ResumeState()
    interrupted: list[dict[str, Any]] = []
    for run in children:
        number = int(run.data.tags.get(T.TRIAL, 0))
        state.next_number = max(state.next_number, number + 1)
        if run.data.tags.get(T.PACK, "").isdigit():
            state.next_pack = max(state.next_pack, int(run.data.tags[T.PACK]) + 1)
        point = parse_point(space, run.data.params)
        status = status_of(run)
        if status == TrialStatus.RUNNING:
            client.set_tag(run.info.run_id, T.INTERRUPTED, "true")
            client.set_terminated(run.info.run_id, "KILLED")
            status = TrialStatus.KILLED
        if point is None:  # its params never reached the store
            continue
        if status == TrialStatus.KILLED:
            interrupted.append(point)
            continue
        state.outcomes.append(_outcome(run, number, point, status, spec.metric))
        state.curves.append(TrialCurve(number, point, curve_of(client, run, spec.metric)))
    ran = [o.params for o in state.outcomes]
    for point in interrupted:  # a point killed twice (two attempts) runs again once
        if point not in ran and point not in state.requeue:
            state.requeue.append(point)
    return state


def _outcome(run: Any, number: int, point: dict[str, Any], status: TrialStatus,
             metric: str) -> TrialOutcome:
    """An ended trial as its run recorded it."""
    objective = run.data.tags.get(T.OBJECTIVE)
    return TrialOutcome(number, run.info.run_id, point, status,
                        metrics={metric: float(objective)} if objective else {},
                        model_uri=run.data.tags.get(T.MODEL_URI),
                        error=run.data.tags.get(T.ERROR),
                        epochs=int(run.data.tags.get(T.EPOCHS_RUN, "0") or 0),
                        device=run.data.tags.get(T.DEVICE))
