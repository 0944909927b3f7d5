"""Recording implementations of mltune's own protocols, for tests of a trial's life that need
no store: a tracker that keeps what each record was told, a sampler that proposes given points
in order, a scheduler that answers a script. Not mocks of MLflow or torch: the driver, the
trials, the coordinator and the pack trainer under test are the real ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mltune.core.terms import TrialStatus
from mltune.search.schedulers.base import CONTINUE, Decision, TrialCurve
from mltune.tracking.tracker import Ending, Logged


@dataclass
class Record:
    """What one trial's record was told, in order."""

    number: int
    params: dict[str, Any]
    pack: int | None
    run_id: str
    epochs: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    exploits: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    ending: Ending | None = None
    weights: list[dict] = field(default_factory=list)  # a finished trial's networks' weights
    ends: int = 0  # how many times it was ended (once, always)

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        assert self.ending is None, f"trial {self.number}: an epoch after its end"
        self.epochs.append((epoch, dict(metrics)))

    def exploit(self, epoch: int, source: int, before: Mapping[str, Any],
                values: Mapping[str, Any]) -> None:
        self.exploits.append((epoch, source, dict(values)))

    def end(self, ending: Ending, networks: Sequence[nn.Module] = (),
            params: Mapping[str, Any] | None = None, then: Logged | None = None) -> None:
        self.ends += 1
        self.ending = ending
        self.weights = [{k: v.clone() for k, v in n.state_dict().items()} for n in networks]
        if then is not None and ending.status is TrialStatus.FINISHED:
            then(f"recorded:{self.run_id}", None, TrialStatus.FINISHED)


class RecordingTracker:
    """Records by trial number."""

    def __init__(self) -> None:
        self.records: dict[int, Record] = {}

    def open(self, number: int, params: Mapping[str, Any], pack: int | None = None) -> Record:
        assert number not in self.records, f"trial {number} opened twice"
        record = Record(number, dict(params), pack, f"run-{number}")
        self.records[number] = record
        return record

    def check(self) -> None:
        """Nothing runs in the background here."""

    def drain(self) -> None:
        """Nothing runs in the background here."""

    def status(self, number: int) -> TrialStatus:
        ending = self.records[number].ending
        assert ending is not None, f"trial {number} never ended"
        return ending.status


class ListSampler:
    """Proposes the given points in order (a fixed shape narrows them to the points that
    have it); learns what it is told."""

    def __init__(self, points: Sequence[dict[str, Any]]) -> None:
        self.points = [dict(p) for p in points]
        self.told: list[tuple[dict[str, Any], float | None]] = []

    def ask(self, n: int = 1, fixed: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        fits = [p for p in self.points
                if all(p.get(k) == v for k, v in (fixed or {}).items())][:n]
        for point in fits:
            self.points.remove(point)
        return fits

    def tell(self, point: dict[str, Any], loss: float | None) -> None:
        self.told.append((dict(point), loss))

    def pending(self, point: dict[str, Any]) -> None:
        """Given points are never asked twice."""

    def rebuild(self, finished: Sequence[Any]) -> None:
        """Nothing to rebuild from."""


class ScriptedScheduler:
    """Answers ``script[(trial, epoch)]`` (CONTINUE otherwise); keeps what it heard."""

    def __init__(self, script: Mapping[tuple[int, int], Decision] | None = None,
                 decide: Callable[[int, int, float, Mapping[int, float]], Decision] | None = None
                 ) -> None:
        self.script, self.rule = dict(script or {}), decide
        self.heard: list[tuple[int, int, float, dict[int, float]]] = []
        self.started: list[int] = []
        self.ended: list[int] = []

    def start(self, trial: int, params: Mapping[str, Any]) -> None:
        self.started.append(trial)

    def decide(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> Decision:
        self.heard.append((trial, epoch, value, dict(peers or {})))
        if self.rule is not None:
            return self.rule(trial, epoch, value, peers or {})
        return self.script.get((trial, epoch), CONTINUE)

    def end(self, trial: int) -> None:
        self.ended.append(trial)

    def rebuild(self, trials: Sequence[TrialCurve]) -> None:
        """Nothing to rebuild from."""
