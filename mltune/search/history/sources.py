"""The earlier searches a warm start learns from, found and read in the tracking store
(``priors`` says what is done with them).

**The same problem** is decided from records, never guessed: the same task (tag
``mltune.task``), metric and mode (params ``spec.metric``, ``spec.mode``), network (the family,
or a user's network by its file's name) and data: the same fingerprint of all of it
(``mltune.data_fingerprint``: mltune's own hash; MLflow's dataset digest hashes the first
10,000 rows only) is the same data; the same columns (``mltune.data_columns``) under another
fingerprint is changed data. Under ``auto`` the matching searches of the experiment are read,
the newest first, up to ``MAX_TRIALS`` trials; a mismatch is simply not used. A search named
in ``warm_start:`` that does not match is refused in one line.

Each earlier trial is read as a resumed search reads its own (``resume``): its point from its
params (typed by its own search's space), its score from ``mltune.objective``, its curve from
``mltune.curve``; nothing is written to the earlier searches.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mltune.core.errors import MltuneError, SpecError
from mltune.core.terms import TrialStatus
from mltune.data.splits import TaskData
from mltune.search.history.priors import (
    MAX_SOURCES,
    MAX_TRIALS,
    RUNG_RULES,
    Candidate,
    Priors,
    Source,
    parse_tag,
)
from mltune.search.history.resume import curve_of, network_of, status_of
from mltune.search.samplers.base import Finished
from mltune.search.schedulers.base import TrialCurve
from mltune.spec.distributions import Space
from mltune.spec.model import SearchSpec
from mltune.spec.space import build_space, parse_point
from mltune.spec.transfer import fit_point
from mltune.tasks import get_task
from mltune.tracking import tags as T

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
SEARCHES_LOOKED_AT = 200  # the newest searches of the experiment an ``auto`` warm start reads


def data_columns(spec: SearchSpec, data: TaskData) -> str:
    """A short hash of what the data's columns are, whatever its rows: the spec's target,
    text and time columns and horizon, a table's feature columns and problem, an image's
    channels and size, a series' covariates. Same columns and another fingerprint: the same
    problem on changed data."""
    meta = data.meta
    described = {"target": spec.data.target, "text": spec.data.text, "time": spec.data.time,
                 "horizon": spec.data.horizon, "columns": meta.get("columns"),
                 "problem": meta.get("problem"), "covariates": meta.get("covariates"),
                 "image": [meta.get(k) for k in ("channels", "height", "width")]
                 if "channels" in meta else None}
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Problem:
    """This search's problem, as an earlier search's records are compared with it."""

    spec: SearchSpec
    fingerprint: str
    columns: str

    def network(self) -> str:
        return network_key(network_of(self.spec))

    def compare(self, parent: Run) -> tuple[bool | None, str]:
        """(True: same data, False: changed data, None: another problem; what differs)."""
        tags, params = parent.data.tags, parent.data.params
        spec = self.spec
        if tags.get(T.TASK) != spec.task:
            return None, f"a search of task {tags.get(T.TASK)!r}, not {spec.task!r}"
        metric, mode = params.get("spec.metric"), params.get("spec.mode", "max")
        if (metric, mode) != (spec.metric, spec.mode):
            return None, f"it optimises {metric} ({mode}), not {spec.metric} ({spec.mode})"
        network = network_key(params.get("spec.model") or get_task(spec.task).family)
        if network != self.network():
            return None, f"it trains the network {network!r}, not {self.network()!r}"
        if tags.get(T.DATA_FINGERPRINT) == self.fingerprint:
            return True, ""
        columns = tags.get(T.DATA_COLUMNS)
        if columns is not None and columns != self.columns:
            return None, "it ran on other data with other columns"
        return False, "other data" if columns is not None else "other data, columns unknown"


def network_key(name: str) -> str:
    """A network as two searches of one problem name it: a family's name, or a user's
    network by its file's name and callable (``nets.py:build`` wherever the file lives)."""
    path, colon, attribute = name.rpartition(":")
    if colon and path.endswith(".py"):
        return f"{PurePath(path).name}:{attribute}"
    return name


def find_priors(spec: SearchSpec, space: Space, data: TaskData, experiment_id: str,
                client: MlflowClient | None = None) -> Priors:
    """What a new search learns from (``spec.warm_start``); a named search that is not one
    of the same problem is refused with one line (``SpecError``)."""
    columns = data_columns(spec, data)
    if spec.warm_start == "off":
        return Priors(columns=columns)
    client = client or MlflowClient()
    problem = Problem(spec, data.fingerprint, columns)
    if spec.warm_start == "auto":
        found = [(run, same) for run in _searches(client, experiment_id, spec.task)
                 if (same := problem.compare(run)[0]) is not None]
    else:
        found = []
        for entry in spec.warm_start:
            for run in _named(client, experiment_id, entry):
                same, differs = problem.compare(run)
                if same is None:
                    raise SpecError(f"warm_start: {entry!r} (run {run.info.run_id}) is not a "
                                    f"search of the same problem: {differs}")
                if all(run.info.run_id != r.info.run_id for r, _ in found):
                    found.append((run, same))
    priors = _read(client, spec, space, [(run, same, None) for run, same in found[:MAX_SOURCES]])
    priors.columns = columns
    return priors


def recorded_priors(parent: Run, spec: SearchSpec, space: Space,
                    client: MlflowClient | None = None) -> Priors:
    """What a resumed search learnt from when it started (its ``mltune.warm_start`` tag):
    the same sources, the same trials of each (its best, as many as it read then, among
    those ended by then), whatever the store holds since."""
    sources = parse_tag(parent.data.tags.get(T.WARM_START))
    if sources is None:
        return Priors()
    client = client or MlflowClient()
    runs = []
    for source in sources:
        try:
            runs.append((client.get_run(source.run_id), source.same_data, source))
        except MlflowException:  # deleted since: what is left is still learnt
            continue
    return _read(client, spec, space, runs)


def _searches(client: MlflowClient, experiment_id: str, task: str) -> list[Run]:
    """The experiment's searches of ``task``, newest first."""
    return client.search_runs(
        [experiment_id], f"tags.`{T.ROLE}` = 'search' and tags.`{T.TASK}` = '{task}'",
        max_results=SEARCHES_LOOKED_AT, order_by=["attributes.start_time DESC"])


def _named(client: MlflowClient, experiment_id: str, entry: str) -> list[Run]:
    """The searches ``entry`` names: a parent run id, else every search of that name in the
    experiment (newest first); none is one line."""
    if RUN_ID.match(entry):
        try:
            run = client.get_run(entry)
        except MlflowException:
            raise SpecError(f"warm_start: no run {entry!r} in this tracking store") from None
        if run.data.tags.get(T.ROLE) != "search":
            raise SpecError(f"warm_start: run {entry} is not an mltune search (no tag "
                            f"{T.ROLE}=search); give a search's parent run id or name")
        return [run]
    runs = [run for run in client.search_runs(
        [experiment_id], f"tags.`{T.ROLE}` = 'search'", max_results=SEARCHES_LOOKED_AT,
        order_by=["attributes.start_time DESC"]) if run.info.run_name == entry]
    if not runs:
        raise SpecError(f"warm_start: no search named {entry!r} in this experiment, and it is "
                        "not a run id; give parent run ids or search names")
    return runs


def _read(client: MlflowClient, spec: SearchSpec, space: Space,
          found: list[tuple[Run, bool, Source | None]]) -> Priors:
    """Each source's ended trials (as a resumed search recorded them, else up to
    ``MAX_TRIALS`` in all) into ``priors``: what the sampler and scheduler learn (same
    data), the best configurations (either way)."""
    priors = Priors(looked=True)
    left = MAX_TRIALS
    for run, same_data, recorded in found:
        if left <= 0:
            break
        try:
            limit, last = (recorded.trials, recorded.last) if recorded else (left, None)
            read = _source(client, spec, space, run, same_data, (limit, last),
                           len(priors.sources))
        except (MlflowException, MltuneError, ValueError):
            continue  # an earlier search this mltune cannot read: not used
        priors.sources.append(read.source)
        priors.finished += read.finished
        priors.curves += [TrialCurve(-1 - len(priors.curves) - i, c.params, c.values)
                          for i, c in enumerate(read.curves)]
        priors.candidates += read.candidates
        left -= read.source.trials
    priors.candidates.sort(key=lambda c: c.loss)  # stable: newest source first on a tie
    return priors


@dataclass
class _Read:
    """One earlier search as read: its counts, and what it gives (all or nothing of it)."""

    source: Source
    finished: list[Finished]
    curves: list[TrialCurve]
    candidates: list[Candidate]


def _source(client: MlflowClient, spec: SearchSpec, space: Space, run: Run, same_data: bool,
            bound: tuple[int, int | None], index: int) -> _Read:
    """Source ``index``'s best ended trials (``bound``: how many, and none numbered above
    the second when given), each in ``space`` or counted as dropped: for the sampler and
    the scheduler on the same data, as best configurations either way."""
    old = _space_of(run)
    trials, last = _trials(client, run, spec, *bound)
    curves = same_data and spec.pruning.rule in RUNG_RULES
    read = _Read(Source(run.info.run_id, run.info.run_name or "", same_data, len(trials),
                        last=last), [], [], [])
    dropped = 0
    for trial in trials:
        point = parse_point(old, trial.data.params)
        fitted = None if point is None else fit_point(space, point)
        if fitted is None:
            dropped += 1
            continue
        loss = spec.direction.as_loss(float(trial.data.tags[T.OBJECTIVE]))
        if same_data:
            read.finished.append(Finished(fitted.point, loss))
            if curves:  # numbered when the source is kept
                values = curve_of(client, trial, spec.metric)[:spec.epochs]
                read.curves.append(TrialCurve(0, fitted.point, values))
        if status_of(trial) == TrialStatus.FINISHED:
            read.candidates.append(Candidate(fitted.point, loss, index))
    read.source = replace(read.source, used=len(read.finished), dropped=dropped)
    return read


def _space_of(run: Run) -> Space:
    """The space an earlier search drew from, as its parent's ``spec.space.*`` params hold
    it (its task's defaults included)."""
    raw: Mapping[str, Any] = {k.removeprefix("spec.space."): _json(v)
                              for k, v in run.data.params.items()
                              if k.startswith("spec.space.")}
    return build_space(raw)


def _json(text: str) -> Any:
    """A param as ``tracking.runs.param_value`` wrote it: JSON, or a string as it is."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _trials(client: MlflowClient, parent: Run, spec: SearchSpec, limit: int,
            last: int | None) -> tuple[list[Run], int | None]:
    """A search's ended trials with a score (finished and pruned; none numbered above
    ``last``), its best ``limit`` by ``spec``'s metric (ties: the earlier), by trial
    number; and the highest number among the ended (what a resume reads up to)."""
    children = client.search_runs(
        [parent.info.experiment_id],
        f"tags.`{T.SEARCH_ID}` = '{parent.data.tags.get(T.SEARCH_ID, '')}' and "
        f"tags.`{T.ROLE}` = 'trial'", max_results=50000)
    ended = [run for run in children
             if status_of(run) in (TrialStatus.FINISHED, TrialStatus.PRUNED)
             and _scored(run.data.tags.get(T.OBJECTIVE))
             and (last is None or _number(run) <= last)]
    if not ended:
        return [], last
    best = sorted(ended, key=lambda r: (spec.direction.as_loss(float(
        r.data.tags[T.OBJECTIVE])), _number(r)))[:max(0, limit)]
    return sorted(best, key=_number), max(_number(r) for r in ended)


def _number(trial: Run) -> int:
    return int(trial.data.tags.get(T.TRIAL, 0))


def _scored(objective: str | None) -> bool:
    try:
        return objective is not None and float(objective) == float(objective)  # not NaN
    except ValueError:
        return False


def search_experiment(client: MlflowClient | None = None) -> str:
    """The experiment a new search's parent run opens in (as ``tracking.runs.start_search``
    decides): ``mlflow run``'s run's, else the active one."""
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if launcher:
        return (client or MlflowClient()).get_run(launcher).info.experiment_id
    return mlflow.tracking.fluent._get_experiment_id()
