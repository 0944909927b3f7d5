"""The one pack loop: the same driver in every local lane (one per device) and inside every Ray
worker; only where it runs and how its coordinator's answers travel differ.

A lane trains packs one after another. A pack's first point fixes its shape; the coordinator
fills it (``admit``) and the lane measures its size under ``pack: auto``. Then, epoch by epoch:
the pack trainer steps, each trial observes its members' metrics, the scheduler decides on the
pack's epoch (``Coordinator.epoch``), each trial is judged (go on, copy another's weights, or
end), the trials that ended are closed (records, models in the background) and reported, and
their free slots are refilled for the next epoch, so the pack stays full while its shape lasts.
Trials whose networks differ in structure from the pack's (a refill's, or the first points')
train after it, as a pack of their own.
"""

from __future__ import annotations

import copy
import gc
import itertools
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from mltune.core.errors import SearchError
from mltune.core.interrupts import Stop
from mltune.search.packs.coordinator import Admitted, Coordination, Numbered, PackStart
from mltune.search.packs.folds import out_of_fold
from mltune.search.packs.lane import Lane
from mltune.search.packs.shapes import structure
from mltune.search.packs.sizes import PackSizes
from mltune.search.packs.trial import Limits, Trial, stops_search
from mltune.search.schedulers.base import Action, Decision
from mltune.tracking.tracker import Tracker
from mltune.training.device import RNG_LOCK, seed_everything, seeded
from mltune.training.engine import Member, PackTrainer

log = logging.getLogger(__name__)
FULL_COLLECTION_EVERY = 16


class Driver:
    """One lane's packs, one after another, until its coordinator has no more."""

    def __init__(self, lane: Lane, coordinator: Coordination, tracker: Tracker, stop: Stop
                 ) -> None:
        self.lane, self.coordinator, self.tracker, self.stop = lane, coordinator, tracker, stop
        spec = lane.spec
        self.limits = Limits(spec.metric, spec.direction, spec.epochs, spec.patience,
                             spec.trial_timeout_s, spec.pruning.rule)
        self.sizes = PackSizes(lane.task, lane.data, lane.device, spec.precision)
        self.waiting: list[Trial] = []  # opened, of another structure than their pack's

    def run(self) -> None:
        """Packs until the coordinator says the search is over (its models all logged)."""
        try:
            while True:
                self.stop.check()
                if self.waiting:
                    waiting, self.waiting = self.waiting, []
                    self.train(waiting, None)
                    continue
                start = self.coordinator.next_pack()
                if start is None:
                    return
                admitted = start.admitted or self.coordinator.admit(start, self.size(start))
                if admitted is not None:
                    self.train_admitted(admitted)
        finally:
            self.tracker.drain()

    def size(self, start: PackStart) -> int:
        """Trials in the pack: ``limit``, or (``pack: auto``) as many as pay on this device."""
        per_trial = self.lane.members_per_trial
        if not start.measure:
            return start.limit
        return max(1, self.sizes.size(start.points[0], start.limit * per_trial) // per_trial)

    def train_admitted(self, admitted: Admitted) -> None:
        trials = self.open(admitted.trials, admitted.pack)
        if not trials:
            return
        first = structure(trials[0].networks[0])
        same = [t for t in trials if structure(t.networks[0]) == first]
        self.waiting += [t for t in trials if t not in same]
        self.train(same, admitted.pack if admitted.refills else None)

    def open(self, numbered: Numbered, pack: int | None) -> list[Trial]:
        """Trials of these numbered points: records opened, networks built (member numbers
        given when they join a trainer). A point whose network cannot be built fails."""
        trials = []
        for number, params in numbered:
            record = self.tracker.open(number, params, pack)
            limits = self.limits
            if number in self.lane.epochs_of:
                limits = replace(limits, epochs=self.lane.epochs_of[number])
            trial = Trial(number, params, record, [], [], limits, pack=pack,
                          label=self.lane.label, out_of_fold=self._out_of_fold())
            try:
                trial.networks = self.build(number, params)
            except Exception as exc:
                trial.abort(exc)
                self.coordinator.ended(trial.outcome)
                continue
            trials.append(trial)
        return trials

    def build(self, number: int, params: dict[str, Any]) -> list[nn.Module]:
        """Trial ``number``'s network(s): its initial weights (and dropout draws) from the
        search's seed plus its number; every fold starts from the same weights."""
        lane = self.lane
        with seeded(lane.spec.seed + number, lane.device):  # one lane's build at a time
            network = lane.task.build_model(params, lane.data.meta)
        return [network, *(copy.deepcopy(network) for _ in range(lane.members_per_trial - 1))]

    def members(self, trial: Trial) -> list[Member]:
        lane = self.lane
        loss = lane.task.make_loss(trial.current, lane.data)
        rows = lane.folds or [None] * len(trial.networks)
        return [Member(trial.current, loss, r) for r in rows]

    def train(self, trials: list[Trial], refill: int | None) -> None:
        """One pack: its trials trained together, epoch by epoch, refilled from pack
        ``refill``'s point supply while it answers; every trial ends here."""
        lane, spec = self.lane, self.lane.spec
        members = [m for t in trials for m in self.members(t)]
        trainer = PackTrainer(lane.train_data, [n for t in trials for n in t.networks], members,
                              score=lane.score, seed=spec.seed, precision=spec.precision,
                              fuse=spec.pack != 1 and not spec.compile,
                              compile_model=spec.compile, capacity=len(members),
                              stop=self.stop)
        numbers = iter(range(len(members)))
        for trial in trials:
            trial.members = [next(numbers) for _ in trial.networks]
        if trainer.fused:  # the fused pack's dropout
            seed_everything(spec.seed + trials[0].number, lane.device)
        running = list(trials)
        shape = structure(trials[0].networks[0])
        try:
            while running:
                running, time_up = self.epoch(trainer, running)
                if refill is not None and running and not time_up:
                    running += self.refill(trainer, refill, shape)
        except BaseException as exc:  # the pack as a whole stopped (Ctrl-C, out of memory...)
            for trial in running:
                if trial.running:
                    trial.abort(exc)
                    if not stops_search(exc):
                        self.coordinator.ended(trial.outcome)
            if stops_search(exc):
                raise
        finally:
            release_memory(lane.device)
            if trainer.capacity > 1:  # lone trials have no slots to keep full
                self.coordinator.packed(trainer.occupancy.member_s, trainer.occupancy.slot_s)

    def epoch(self, trainer: PackTrainer, running: list[Trial]) -> tuple[list[Trial], bool]:
        """One epoch of the pack: observed, decided, judged; the trials that ended closed and
        reported. The trials still running, and whether the time budget is spent."""
        results = trainer.step_epoch()
        self.tracker.check()  # a lost tracking server stops the search here
        reports = []
        for trial in running:
            value = trial.observe(results)
            if value is not None:
                reports.append((trial.number, trial.epoch, value))
        answer = self.coordinator.epoch(reports)
        exploits = []
        for trial in running:
            if not trial.running:
                continue
            decision = trial.judge(answer.decision(trial.number), answer.time_up,
                                   lambda t=trial: [trainer.weights(j) for j in t.members])
            if decision is not None and decision.action is Action.EXPLOIT:
                exploits.append((trial, decision))
        for trial, decision in exploits:  # its source may have ended: its weights are still in
            self.exploit(trainer, trial, decision, running)
        for trial in running:
            if not trial.running:
                self.finish(trial, trainer)
        return [t for t in running if t.running], answer.time_up

    def exploit(self, trainer: PackTrainer, trial: Trial, decision: Decision,
                running: Sequence[Trial]) -> None:
        """``trial`` goes on from its source's weights and optimizer state, with new values
        (a network of them gives its dropout rates)."""
        source = next((t for t in running if t.number == decision.source), None)
        if source is None:
            raise SearchError(f"the {self.limits.rule} scheduler asked trial {trial.number} to "
                              f"exploit trial {decision.source}, which is not in its pack; "
                              f"allowed: {sorted(t.number for t in running)}")
        with RNG_LOCK:  # it draws weights: never between another lane's seed and its build
            rates_from = self.lane.task.build_model(trial.current, self.lane.data.meta)
        for target, origin in zip(trial.members, source.members, strict=True):
            trainer.copy(origin, target, decision.values, rates_from)

    def finish(self, trial: Trial, trainer: PackTrainer) -> None:
        """A trial that ended: closed (its model logged in the background), reported."""
        outcome = trial.outcome
        trial.close(trainer, then=lambda *_: self.coordinator.logged(outcome))
        self.coordinator.ended(outcome, trial.oof)

    def refill(self, trainer: PackTrainer, pack: int, shape: Any) -> list[Trial]:
        """New trials for the free slots; the joiners whose networks differ in structure wait
        for a pack of their own."""
        free = (trainer.capacity - len(trainer.live)) // self.lane.members_per_trial
        if free <= 0:
            return []
        joined = []
        for trial in self.open(self.coordinator.refill(pack, free), pack):
            if structure(trial.networks[0]) != shape:
                self.waiting.append(trial)
                continue
            trial.members = trainer.add(trial.networks, self.members(trial))
            joined.append(trial)
        return joined

    def _out_of_fold(self) -> Any:
        lane = self.lane
        if not lane.folds or (lane.spec.ensemble or 0) <= 1:
            return None
        return lambda networks: out_of_fold(networks, lane.folds, lane.train_data)


_releases = itertools.count(1)  # calls of release_memory


def release_memory(device: torch.device) -> None:
    """Give back what a pack left, so trial 300 runs like trial 3: the young generations
    after every pack (what a trial's network and tensors make), a full collection every
    ``FULL_COLLECTION_EVERY`` packs."""
    gc.collect(2 if next(_releases) % FULL_COLLECTION_EVERY == 0 else 1)
    if device.type == "cuda":
        torch.cuda.empty_cache()
