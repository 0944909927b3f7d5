"""Warm starts: what a search learns from earlier searches of the same problem before its
first trial (``warm_start:``), the resume machinery pointed at other searches.

The earlier searches are found and read by ``history.sources``; what they give is a
``Priors``:

- **same data** (the same fingerprint of all the data): their finished and pruned trials,
  mapped into this search's space (``spec.transfer.fit_point``), are told to the sampler
  before its first ask (``warm_sampler``), so its random start-up is already spent and its
  first point is a model's; their curves start the rungs of ``asha``, ``hyperband`` and
  ``median`` (``warm_scheduler``, numbered below zero so they never meet this search's
  trials), so a hopeless point stops at the first rung, as RUSH's hurdles do;
- **changed data** (same columns, another fingerprint): no score reaches the sampler or the
  scheduler (it was earned on other rows), only the configurations, which the rung rules
  never stop;
- either way their best configuration is trained first, after the task's defaults
  (``choose_starts``, ``MAX_STARTS``), so the new search's first pack is already good.

What a search learnt from is a tag on its parent run (``mltune.warm_start``: its sources,
each with its counts; ``record_priors``, with the data's columns a later search compares),
which a resumed search reads to rebuild the same priors (``warm``: the sampler and the
scheduler told, before their own history).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mlflow.entities import RunTag

from mltune.core.errors import SpecError
from mltune.search.samplers.base import Finished, Params, Sampler
from mltune.search.schedulers.base import CONTINUE, STOP, Decision, Scheduler, TrialCurve
from mltune.spec.model import SearchSpec
from mltune.spec.start import completed
from mltune.tracking import tags as T
from mltune.tracking.runs import SearchRun

log = logging.getLogger(__name__)

# earlier trials read, all sources together (the newest searches first); of a search with more,
# its best (a sampler's model of the good region is its best few: hyperopt's TPE takes
# ceil(0.25 * sqrt(n)) of n; its first 200 by number missed a long search's best until
# 2026-12-07)
MAX_TRIALS = 200
MAX_SOURCES = 20  # earlier searches (each a short entry of the tag: MLflow's 5000 characters)
# earlier best configurations trained first: one (three until 2026-12-07). Each is trained to
# its last epoch (a hurdle, never stopped); three were no better in a 20 s search
# (benchmarks/warm_start.py, docs/benchmarks.md) and a warm sampler proposes near them anyway
MAX_STARTS = 1
NAME_LENGTH = 40  # of a source's name in the tag (its run id says which it is)
RUNG_RULES = ("asha", "hyperband", "median")  # rules whose state is earlier trials' values
# Whether the rules above start from the earlier trials' curves (benchmarks/warm_start.py
# measures the search with and without)
SEED_RUNGS = True
# Whether the earlier best configurations trained first are never stopped by those rules when
# no curves start the rungs (changed data); benchmarks/warm_start.py measures with and without
TRUST_STARTS = True


@dataclass(frozen=True)
class Source:
    """One earlier search a warm start learnt from, with its counts."""

    run_id: str
    name: str
    same_data: bool  # False: another fingerprint (configurations only)
    trials: int  # its ended trials read (finished and pruned)
    used: int = 0  # told to the sampler (same data, inside this space)
    dropped: int = 0  # not a point of this space (a value outside its bounds or choices)
    starts: int = 0  # its best configurations trained first
    last: int | None = None  # its highest trial number then ended: a resume reads no later one

    def entry(self) -> dict[str, Any]:
        """The source as the tag holds it (its name cut to ``NAME_LENGTH``: the tag holds
        ``MAX_SOURCES`` of them within MLflow's 5000 characters)."""
        entry = asdict(self)
        entry["name"] = self.name[:NAME_LENGTH]
        entry["data"] = "same" if entry.pop("same_data") else "changed"
        return entry

    @staticmethod
    def of(entry: Mapping[str, Any]) -> Source:
        return Source(str(entry["run_id"]), str(entry.get("name", "")),
                      entry.get("data", "same") == "same", int(entry.get("trials", 0)),
                      int(entry.get("used", 0)), int(entry.get("dropped", 0)),
                      int(entry.get("starts", 0)),
                      None if entry.get("last") is None else int(entry["last"]))


@dataclass(frozen=True)
class Candidate:
    """An earlier finished trial that may be trained first: its point in this space (keys
    it lacks completed later from the task's defaults), its loss, its source."""

    point: Params
    loss: float
    source: int  # index into ``Priors.sources``


@dataclass
class Priors:
    """What a search learns before its first trial. ``looked``: ``warm_start`` was not
    ``off`` (the parent run then says what was found, even nothing)."""

    looked: bool = False
    sources: list[Source] = field(default_factory=list)
    finished: list[Finished] = field(default_factory=list)  # for the sampler (same data)
    curves: list[TrialCurve] = field(default_factory=list)  # for the scheduler (same data)
    candidates: list[Candidate] = field(default_factory=list)  # best first
    starts: list[Params] = field(default_factory=list)  # chosen: trained first
    first: list[Params] = field(default_factory=list)  # the ``start:`` points, before them
    cold: str | None = None  # why nothing was learnt though sources were found
    columns: str = ""  # this search's data columns (``sources.data_columns``), recorded for later

    @property
    def same_data(self) -> bool:
        return any(s.same_data for s in self.sources)

    def tag(self) -> str:
        """``mltune.warm_start``: the sources as JSON (``[]``: looked, found none)."""
        return json.dumps([s.entry() for s in self.sources], separators=(",", ":"))

    def line(self, shown: Callable[[Source], str] = lambda s: s.name or "?") -> str:
        """What the search learnt from, in one line (the summary; the description, each
        search ``shown`` as a link)."""
        if not self.sources:
            return "none: no earlier search of the same problem in this experiment"
        told = sum(s.used for s in self.sources)
        dropped = sum(s.dropped for s in self.sources)
        names = ", ".join(f"{shown(s)} ({s.run_id[:8]}, {s.trials} trials"
                          f"{'' if s.same_data else ', other data'})" for s in self.sources)
        plural = "es" if len(self.sources) > 1 else ""
        parts = [f"from {len(self.sources)} earlier search{plural}: {names}"]
        if self.same_data:
            parts.append(f"{told} trials told to the sampler before its first point")
        else:
            parts.append("other data: no earlier score reused")
        if dropped:
            parts.append(f"{dropped} left out (outside this space)")
        if self.starts:
            parts.append(f"their best {len(self.starts)} configuration"
                         f"{'s' if len(self.starts) > 1 else ''} trained first")
        if self.cold:
            parts.append(self.cold)
        return "; ".join(parts)


def parse_tag(text: str | None) -> list[Source] | None:
    """The sources a parent run's ``mltune.warm_start`` tag lists (None: no tag)."""
    if not text:
        return None
    try:
        return [Source.of(e) for e in json.loads(text)]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise SpecError("the search's warm-start record (its tag mltune.warm_start) cannot "
                        f"be read: {text[:80]!r}", field="resume") from None


def start_count(spec: SearchSpec) -> int:
    """How many earlier best configurations are trained first: ``MAX_STARTS`` (one); were it
    raised, a fifth of the planned trials, at least one."""
    return min(MAX_STARTS, max(1, spec.planned_trials // 5))


def choose_starts(priors: Priors, first: Sequence[Params], task: Any,
                  space: Mapping[str, Any], count: int) -> list[Params]:
    """The earlier best configurations to train after ``first`` (the ``start:`` points):
    completed from the task's defaults where the earlier space lacked a key, repeats left
    out; each source credited with its own. Kept on ``priors.starts``."""
    chosen: list[Params] = []
    credit = [0] * len(priors.sources)
    for candidate in priors.candidates:
        if len(chosen) >= count:
            break
        try:
            (point,) = completed([candidate.point], task, space, field="warm_start")
        except SpecError:  # a value the space draws by rounding, not by its bounds
            continue
        if point in chosen or point in first:
            continue
        chosen.append(point)
        credit[candidate.source] += 1
    priors.sources = [replace(s, starts=n) for s, n in zip(priors.sources, credit,
                                                            strict=True)]
    priors.starts, priors.first = chosen, [dict(p) for p in first]
    return chosen


def warm(sampler: Sampler, scheduler: Scheduler, priors: Priors, spec: SearchSpec
         ) -> Scheduler:
    """A warm start's part of a new sampler and scheduler, before their own history: the
    earlier trials told to the sampler (``warm_sampler``), their curves started in the
    scheduler's rungs (``warm_scheduler``, which may wrap it: the scheduler to use)."""
    warm_sampler(sampler, priors, spec.algo)
    return warm_scheduler(scheduler, priors, spec.pruning.rule)


def warm_sampler(sampler: Sampler, priors: Priors, algo: str) -> None:
    """The earlier trials told to ``sampler`` before anything else; one line, and a cold
    search, when the sampler cannot learn them."""
    if not priors.finished:
        return
    warm = getattr(sampler, "warm", None)
    if warm is None:
        priors.cold = f"algo {algo} cannot learn from earlier searches: it starts cold"
        log.warning("warm_start: %s", priors.cold)
        return
    taken = warm(priors.finished)
    if taken < len(priors.finished):
        log.info("warm_start: algo %s took %d of %d earlier trials", algo, taken,
                 len(priors.finished))


def warm_scheduler(scheduler: Scheduler, priors: Priors, rule: str) -> Scheduler:
    """The earlier trials' curves as the rungs' first values (``RUNG_RULES``), numbered
    below zero, so they are judged against and never judged; the points trained first are
    then the hurdles (``Hurdled``). Without curves (changed data) the earlier best
    configurations are still never stopped (``TRUST_STARTS``): judged by this search's own
    first rungs they were stopped early in 12 of 24 changed-data warm searches on
    breast_cancer and digits (10 at epoch 1), the one thing such a warm start carries lost.
    Any other rule, or nothing earlier: ``scheduler`` as it is."""
    if rule not in RUNG_RULES:
        return scheduler
    if priors.curves and SEED_RUNGS:
        scheduler.rebuild(priors.curves)
        return Hurdled(scheduler, priors.first + priors.starts)
    if priors.starts and TRUST_STARTS:
        return Hurdled(scheduler, priors.starts)
    return scheduler


class Hurdled:
    """A rung rule whose first points (the ``start:`` points and the earlier best
    configurations; without earlier curves, the latter only) are judged but never stopped:
    their values set the hurdles later points must clear (RUSH's, Zappella et al. 2021),
    and however high the earlier rungs, the search finishes the points it trusts most."""

    def __init__(self, rule: Scheduler, first: Sequence[Params]) -> None:
        self.rule, self.first = rule, [dict(p) for p in first]
        self.trusted: set[int] = set()

    def start(self, trial: int, params: Mapping[str, Any]) -> None:
        if dict(params) in self.first:
            self.trusted.add(trial)
        self.rule.start(trial, params)

    def decide(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> Decision:
        decision = self.rule.decide(trial, epoch, value, peers)
        return CONTINUE if decision == STOP and trial in self.trusted else decision

    def end(self, trial: int) -> None:
        self.trusted.discard(trial)
        self.rule.end(trial)

    def rebuild(self, trials: Sequence[TrialCurve]) -> None:
        self.rule.rebuild(trials)


def record_priors(search: SearchRun, priors: Priors) -> None:
    """On a new search's parent run: its data's columns (what a later search compares),
    what it learnt from (``mltune.warm_start``, when it looked) and the earlier best
    configurations it trains first (``mltune.warm_start.points``: the report marks them),
    as many as MLflow's tag length holds."""
    tags = [RunTag(T.DATA_COLUMNS, priors.columns)]
    if priors.looked:
        tags.append(RunTag(T.WARM_START, priors.tag()))
    starts = list(priors.starts)
    while starts and len(json.dumps(starts, default=str)) > T.MAX_TAG_LENGTH:
        starts.pop()
    if starts:
        tags.append(RunTag(T.WARM_STARTS, json.dumps(starts, default=str)))
    search.client.log_batch(search.run_id, tags=tags)
