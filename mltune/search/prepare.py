"""Everything before a search's first trial, in the order the data flows, each refusal before
any run is opened: the network (a user's imported), the task, the devices, the backend's own
checks, the space, the tracking server, the data (loaded once, moved to the first device), a
user's network built and run on two samples, what packs may hold, refit and the folds; then
the parent run (new, or the resumed search's) with the splits as its datasets, and the points
that train first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from mltune.models.network import load
from mltune.search.history.priors import choose_starts, record_priors, start_count
from mltune.search.history.resume import ResumeState, resume_search
from mltune.search.history.sources import find_priors, recorded_priors, search_experiment
from mltune.search.packs.folds import search_folds
from mltune.search.packs.lane import SearchSetup
from mltune.search.packs.lanes import BACKENDS, Backend
from mltune.search.packs.shapes import pack_limit
from mltune.search.samplers.base import Sampler
from mltune.spec.build import with_model
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.distributions import Space
from mltune.spec.model import SearchSpec, model_name
from mltune.spec.space import build_space
from mltune.spec.start import not_yet_run, start_points
from mltune.tasks import task_for
from mltune.tasks.base import Task
from mltune.tracking.datasets import split_datasets
from mltune.tracking.remote import check_tracking_server
from mltune.tracking.runs import SearchRun, mark_experiment, start_search
from mltune.tracking.store import create_tables
from mltune.tracking.system import GPU_METRICS_NOTICE, gpu_metrics_available
from mltune.training.device import resolve_devices

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A search ready to run: its set-up (what lanes are made of), its space, its backend,
    the most trials a pack may hold, its sampler (made, told nothing yet)."""

    setup: SearchSetup
    space: Space
    backend: Backend
    pack_limit: int
    sampler: Sampler


def with_network(spec: SearchSpec, model: Any = None) -> tuple[SearchSpec, Task]:
    """The spec (for ``model`` when given: a callable from Python) and its task with the
    network loaded: a user's code is imported here, before anything is read or opened, and
    the space's keys checked against what the network reads. The spec returned names the
    network as text (a callable as ``module:qualname``)."""
    if model is not None:
        spec = with_model(spec, model)
    task = task_for(spec)
    if task.network is not None:
        task = task.with_network(load(task.network), spec.space)
        spec = replace(spec, model=model_name(spec.model))
    # a key nothing reads (a typo) is refused, not tuned in vain: the family's names, or the
    # user's network's declared ones beside the training ones
    task.check_space_names({k: spec.space[k] for k in spec.space_given})
    return spec, task


def prepare(spec: SearchSpec, model: Any = None, resume: str | None = None) -> Prepared:
    """The search's set-up, everything checked; no run is opened yet."""
    spec, task = with_network(spec, model)
    devices = resolve_devices(spec.device)  # one lane each (the local backend)
    backend = BACKENDS.get(spec.backend, field="backend")
    backend.preflight(spec)  # e.g. ray: is it installed?
    space = build_space(spec.space)
    # the sampler made once, now: one that cannot draw the space (Optuna and a normal), or
    # whose library is missing, is refused before any run is opened
    sampler = SAMPLERS.get(spec.algo, field="algo")(space, spec.planned_trials, spec.seed)
    check_tracking_server(resume)  # a refused password costs seconds, not a data load
    data = task.loaded(spec.data, spec.split_seed, devices[0])  # bad data fails before any run
    task.check_network(data)  # a user's network: built, and two samples through it
    limit, _ = pack_limit(spec, task, data)  # pack: N that cannot be: refused now
    folds = search_folds(spec, task, data)  # cv: k, refit: what cannot be is refused now
    if any(d.type == "cuda" for d in devices) and not gpu_metrics_available():
        log.warning(GPU_METRICS_NOTICE)
    if spec.backend != "local":
        devices = devices[:1]  # a remote worker chooses its own device
    setup = SearchSetup(spec, task, data, devices, folds, None)
    return Prepared(setup, space, backend, limit, sampler)


def open_search(prepared: Prepared, resume: str | None) -> tuple[SearchRun, ResumeState]:
    """The parent run (new, or ``resume``'s re-opened with its history), the splits as its
    datasets; what earlier searches of the same problem teach it (``warm_start``: a named
    search that is not one is refused before the run opens; a resumed search learns what it
    learnt when it started); the ``start:`` points, then the earlier best configurations,
    not yet run, queued first."""
    setup = prepared.setup
    spec, data, space = setup.spec, setup.data, prepared.space
    create_tables()  # a new local store: one process at a time runs MLflow's migrations
    if resume:
        search, history = resume_search(resume, spec, space, data.fingerprint)
        mark_experiment(search.client, search.experiment_id)
        history.priors = recorded_priors(search.client.get_run(search.run_id), spec, space)
    else:
        priors = find_priors(spec, space, data, search_experiment())
        search, history = start_search(spec, data.fingerprint), ResumeState(priors=priors)
    # the splits as its datasets, once per search (a search of an older mltune lacks them)
    search.log_datasets(split_datasets(spec.data.shown(spec.data.source), data))
    seen = [o.params for o in history.outcomes] + history.requeue
    first = start_points(spec, setup.task, space)
    warm = choose_starts(history.priors, first, setup.task, space, start_count(spec))
    history.requeue[:0] = not_yet_run(first + warm, seen)
    if not resume:
        record_priors(search, history.priors)
    setup.search = search
    return search, history
