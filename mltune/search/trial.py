"""One trial's whole life, from a sampled point to a logged model, and the one place its status
is decided.

A trial is FINISHED when its network trained; its model is then logged (in the background by
the local backend, while the next trial trains), and only a failure to log it can still turn it
FAILED (or KILLED, when the tracking server went away: a resume runs it again). What the sampler
learns is the measured metric either way (``search.samplers.base.loss_of``), so the sampler's
view and a resumed search's view of a trial agree.
"""

from __future__ import annotations

import copy
import gc
import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mltune.core import interrupts
from mltune.core.errors import SearchError
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import TrialStatus
from mltune.data.folds import Fold, pooled
from mltune.data.splits import TaskData
from mltune.search.crossval import FoldedTrial, out_of_fold
from mltune.search.packs import structure
from mltune.search.schedulers.base import Action, Scheduler
from mltune.search.schedulers.none import NoScheduler
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.background import inline
from mltune.tracking.remote import best_effort, is_outage
from mltune.tracking.runs import SearchRun, TrialRun, describe_error
from mltune.training.device import RNG_LOCK, seed_everything, seeded
from mltune.training.engine import AnyPack, Exploit, Member, Occupancy, make_pack, train
from mltune.training.fit import EarlyStopping, FitResult
from mltune.training.packing import Pack

log = logging.getLogger(__name__)
Finish = Callable[[Callable[[], None]], Any]  # runs a trial's logging job (now or later)
FULL_COLLECTION_EVERY = 16
Refill = Callable[[int], Sequence[tuple[int, Mapping[str, Any]]]]  # free slots -> new trials


class TrialPruned(Exception):
    """Raised from the epoch callback when the scheduler stops a trial; carries its best value."""

    def __init__(self, epoch: int, best: float, rule: str) -> None:
        super().__init__(f"pruned by the {rule} rule at epoch {epoch}")
        self.epoch, self.best, self.rule = epoch, best, rule


@dataclass
class Trained:
    """A trained network whose run is still open, waiting for its model to be logged."""

    run: TrialRun
    network: nn.Module | list[nn.Module]  # a cross-validated trial's: one per fold
    params: Mapping[str, Any]
    result: FitResult


class _Trials:
    """The trials of one ``run_pack`` call as they are opened: outcome, run, network."""

    def __init__(self, pack: int | None, run_name: str | None) -> None:
        self.pack, self.run_name = pack, run_name
        self.outcomes: list[TrialOutcome] = []
        self.runs: list[TrialRun] = []
        self.networks: list[list[nn.Module]] = []  # per trial: one network, or one per fold

    def open(self, runner: TrialRunner, number: int, params: Mapping[str, Any]) -> int:
        """Open trial ``number``'s run and build its network; its index here."""
        outcome = TrialOutcome(number, "", dict(params), TrialStatus.RUNNING, pack=self.pack,
                               device=runner.label)
        self.outcomes.append(outcome)
        run = TrialRun.open(runner.search, number, outcome.params, runner.device,
                            run_name=self.run_name, precision=runner.precision,
                            pack=self.pack, extra_tags={T.DEVICE: runner.label})
        self.runs.append(run)
        outcome.run_id = run.run_id
        runner.scheduler.on_start(number, outcome.params)
        network = runner.build(number, params)  # every fold starts from the same weights
        self.networks.append([network, *(copy.deepcopy(network)
                                         for _ in range(runner.members_per_trial - 1))])
        return len(self.outcomes) - 1


class TrialRunner:
    """Runs trials of one search (or the single run of ``mltune train``): open the run,
    train, log, close with a status.

    Self-contained (no search-wide state but the scheduler), so a backend can run it in a
    worker process. ``folds`` (``cv: k``, ``search.crossval``): a trial is k members, one per
    fold, trained on the pooled training and validation rows; its out-of-fold predictions are
    kept (``oof``, by trial number) when an ensemble is to be selected on them.
    """

    def __init__(self, spec: SearchSpec, task: Task, data: TaskData, search: SearchRun | None,
                 device: torch.device, precision: str, scheduler: Scheduler | None = None,
                 finish: Finish = inline, raise_failures: bool = False,
                 folds: Sequence[Fold] | None = None, label: str | None = None) -> None:
        self.spec, self.task, self.data, self.search = spec, task, data, search
        self.folds = list(folds) if folds else None
        self.train_data = pooled(data) if self.folds else data  # what the engine trains on
        self.oof: dict[int, torch.Tensor] = {}
        self.device, self.precision = device, precision
        self.label = label or str(device)  # its trials' ``mltune.device`` (``cpu#2``...)
        self.scheduler = scheduler or NoScheduler(spec.pruning, spec.direction)
        self.finish = finish
        self.raise_failures = raise_failures  # one run alone (``mltune train``): its error
        self.occupancy = Occupancy()  # how full the packs' slots were, over the search

    @property
    def members_per_trial(self) -> int:
        """Pack members a trial takes: one, or one per fold."""
        return len(self.folds) if self.folds else 1

    def run_params(self, number: int, params: Mapping[str, Any],
                   run_name: str | None = None) -> TrialOutcome:
        """Trial ``number`` with decoded ``params``: a pack of one. Never raises for a failed
        trial unless ``raise_failures`` (an interrupt and a lost tracking server do raise:
        they stop the search)."""
        return self.run_pack(None, [(number, params)], run_name=run_name)[0]

    def run_pack(self, pack: int | None, members: Sequence[tuple[int, Mapping[str, Any]]],
                 run_name: str | None = None, refill: Refill | None = None,
                 on_end: Callable[[TrialOutcome], None] | None = None,
                 deadline: float | None = None) -> list[TrialOutcome]:
        """Trials ``(number, params)`` trained at once by the engine (``pack``: its number,
        tagged ``mltune.pack``; None for a lone trial); each is still a trial of its own: its
        run, params, metrics, model and status. Members whose networks differ in structure
        train in packs apart.

        ``refill(free)``: more ``(number, params)`` of the pack's shape to take the slots of
        members that ended, at an epoch boundary (the pack stays full while it answers);
        ``on_end(outcome)`` hears each trial as its training ends, joined ones too;
        ``deadline`` (``time.monotonic()``): every member stops FINISHED at the end of its
        epoch past it (``mltune.stopped=time_budget``). The outcomes of every trial it ran,
        in the order they started."""
        started = time.perf_counter()
        trials = _Trials(pack, run_name)
        try:
            for number, params in members:
                trials.open(self, number, params)
            groups: dict[Any, list[int]] = {}
            for j, networks in enumerate(trials.networks):
                groups.setdefault(structure(networks[0]), []).append(j)
            work = list(groups.values())
            while work:  # the first group takes refills; points of another structure wait
                group = work.pop(0)
                later = self._train_group(trials, group, refill, on_end, deadline)
                refill = None
                if later:
                    work.append(later)
        except BaseException as exc:  # the pack as a whole stopped (out of memory, Ctrl-C...)
            for j, outcome in enumerate(trials.outcomes):
                if outcome.status == TrialStatus.RUNNING:
                    run = trials.runs[j] if j < len(trials.runs) else None
                    self._ended(outcome, run, exc)
                    self.scheduler.on_end(outcome.number)
                    if not stops_search(exc) and on_end is not None:
                        on_end(outcome)
            if stops_search(exc) or self.raise_failures:
                raise
        finally:
            release_memory(self.device)
        seconds = time.perf_counter() - started
        for outcome in trials.outcomes:
            outcome.seconds = outcome.seconds or seconds
        return trials.outcomes

    def _train_group(self, trials: _Trials, group: list[int], refill: Refill | None,
                     on_end: Callable[[TrialOutcome], None] | None,
                     deadline: float | None) -> list[int]:
        """Members of one structure, trained together by the engine (fused when they can
        be), refilled while ``refill`` answers; each trial ends as its members leave (one, or
        its k folds together). The trials a refill opened whose networks differ in
        structure: trained after, as a group of their own."""
        spec, outcomes = self.spec, trials.outcomes
        peers: dict[int, float] = {}  # this epoch's value of each trial, by trial number
        index: dict[int, int] = {}  # trial number -> member (its first)
        trial_of: list[int] = []  # member -> trial (index into trials)
        fold_of: list[int] = []  # member -> its fold (0 without cv)
        folded: dict[int, FoldedTrial] = {}  # trial -> its folds judged as one (cv)
        leaving: dict[int, list[int]] = {}  # trial -> its members that left so far
        later: list[int] = []
        shape = structure(trials.networks[group[0]][0])
        per_trial = self.members_per_trial

        def member(t: int) -> list[Member]:
            o = outcomes[t]
            index[o.number] = len(trial_of)
            trial_of.extend([t] * per_trial)
            fold_of.extend(range(per_trial))
            loss = self.task.make_loss(o.params, self.data)
            on_epoch = self.epoch_done(o.number, trials.runs[t], peers, index, o.params)
            if self.folds is None:
                return [Member(o.params, loss, on_epoch, self.stopper(), rebuild=self.rebuild)]
            folded[t] = trial = FoldedTrial(per_trial, on_epoch)
            return [Member(o.params, loss, trial.callback(i), trial.stopper(self.stopper()),
                           fold=fold) for i, fold in enumerate(self.folds)]

        def epoch_values(epoch: int, metrics: Mapping[int, dict[str, float]]) -> None:
            peers.clear()
            by_trial: dict[int, dict[int, dict[str, float]]] = {}
            for j, m in metrics.items():
                by_trial.setdefault(trial_of[j], {})[fold_of[j]] = m
            for t, folds in by_trial.items():
                if t in folded:  # its members: per_trial in a row from its first
                    first = index[outcomes[t].number]
                    failed = next((members[j].error for j in range(first, first + per_trial)
                                   if members[j].error is not None), None)
                    mean = folded[t].measured(folds, failed)
                    if mean is not None:
                        peers[outcomes[t].number] = mean[spec.metric]
                else:
                    peers[outcomes[t].number] = folds[0][spec.metric]

        def join(free: int) -> list[tuple[nn.Module, Member]]:
            assert refill is not None
            joining: list[tuple[nn.Module, Member]] = []
            for number, params in refill(free // per_trial):
                t = trials.open(self, number, params)
                if structure(trials.networks[t][0]) == shape:
                    joining += zip(trials.networks[t], member(t), strict=True)
                else:
                    later.append(t)
            return joining

        started = time.perf_counter()
        members = [m for t in group for m in member(t)]
        # pack: 1 (or compile) fuses nothing: a cross-validated trial's folds train side by side
        pack = make_pack([n for t in group for n in trials.networks[t]],
                         compile_model=spec.compile, fuse=spec.pack != 1 and not spec.compile)
        if isinstance(pack, Pack):
            seed_everything(spec.seed + outcomes[group[0]].number,  # the fused pack's dropout
                            self.device)
        finished: list[tuple[Trained, TrialOutcome]] = []

        def leave(js: list[int]) -> None:
            ended = []
            for j in js:
                t = trial_of[j]
                leaving.setdefault(t, []).append(j)
                if len(leaving[t]) < per_trial:  # its other folds are still training
                    continue
                mine = sorted(leaving.pop(t), key=lambda m: fold_of[m])
                finished.extend(self._leave(pack, mine, members, folded.pop(t, None),
                                            outcomes[t], trials.runs[t], trials.networks[t]))
                outcomes[t].seconds = time.perf_counter() - started
                ended.append(t)
            if finished:  # the models of this epoch's leavers, logged in the background
                done = list(finished)
                self.finish(lambda: [self._log(t, o) for t, o in done])
                finished.clear()
            for t in ended:
                self.scheduler.on_end(outcomes[t].number)
                if on_end is not None:
                    on_end(outcomes[t])

        used = train(pack, members, self.train_data, score=self.score, epochs=spec.epochs,
                     seed=spec.seed, time_limit_s=spec.trial_timeout_s,
                     precision=spec.precision, on_epoch_all=epoch_values,
                     refill=join if refill is not None else None, on_leave=leave, deadline=deadline)
        if len(members) > 1:  # lone trials have no slots to keep full
            self.occupancy += used
        return later

    def _leave(self, pack: AnyPack, js: list[int], members: Sequence[Member],
               folded: FoldedTrial | None, outcome: TrialOutcome, run: TrialRun,
               networks: list[nn.Module]) -> list[tuple[Trained, TrialOutcome]]:
        """A trial's training ended (its member ``js[0]``, or its fold members ``js`` in fold
        order): its status, and its network(s) to log when it finished."""
        run.stop_monitor()
        first = members[js[0]]
        assert first.result is not None
        result = first.result if folded is None else folded.result(first.result)
        outcome.epochs = len(result.history)
        errors = [members[j].error for j in js if members[j].error is not None]
        if errors:
            error = folded.error if folded is not None and folded.error else errors[0]
            if self._ended(outcome, run, error) or self.raise_failures:
                raise error
            return []
        outcome.status, outcome.metrics = TrialStatus.FINISHED, result.final
        trained = [pack.load_into(j, network) for j, network in zip(js, networks, strict=True)]
        if folded is None:
            return [(Trained(run, trained[0], outcome.params, result), outcome)]
        if (self.spec.ensemble or 0) > 1 and self.folds is not None:
            self.oof[outcome.number] = out_of_fold(trained, self.folds, self.train_data)
        return [(Trained(run, trained, outcome.params, result), outcome)]

    def _ended(self, outcome: TrialOutcome, run: TrialRun | None, error: BaseException,
               when: str = "") -> bool:
        """The one place a trial that did not finish gets its status and its run's ending:
        stopped by the scheduler (PRUNED: KILLED, ``mltune.pruned``), interrupted or cut off
        from the tracking server (KILLED, ``mltune.interrupted``: a resume re-runs it), or
        failed (FAILED, ``mltune.error``; ``when`` says in which half, for the log). True
        when ``error`` must stop the search (``stops_search``)."""
        if isinstance(error, TrialPruned):
            outcome.status, outcome.error = TrialStatus.PRUNED, str(error)
            outcome.metrics = {self.spec.metric: error.best}
            if run is not None:
                run.end(TrialStatus.PRUNED, {T.OBJECTIVE: repr(float(error.best)),
                                             T.EPOCHS_RUN: str(error.epoch),
                                             T.ERROR: str(error)})
            return False
        if stops_search(error):
            outcome.status = TrialStatus.KILLED
            if run is not None:
                best_effort(run.end, TrialStatus.KILLED, {T.INTERRUPTED: "true"})
            return True
        outcome.status, outcome.error = TrialStatus.FAILED, describe_error(error)
        if run is not None:
            run.fail(outcome.error)
        log.warning("trial %d failed%s: %s", outcome.number, when, outcome.error)
        return False

    def build(self, number: int, params: Mapping[str, Any]) -> nn.Module:
        """Trial ``number``'s network: its initial weights (and dropout draws) come from the
        search's seed plus its number; the batch order is the search's (``seed``), the same
        for every trial, packed or not."""
        with seeded(self.spec.seed + number, self.device):  # one loop's build at a time
            return self.task.build_model(params, self.data.meta)

    def rebuild(self, params: Mapping[str, Any]) -> nn.Module:
        """A network of ``params`` whose weights are not used: an exploit's new dropout
        rates are read from it."""
        with RNG_LOCK:  # it draws weights: never between another loop's seed and its build
            return self.task.build_model(params, self.data.meta)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return self.task.score(outputs, targets, self.data.meta)

    def stopper(self) -> EarlyStopping | None:
        spec = self.spec
        return (EarlyStopping(spec.metric, spec.direction, spec.patience)
                if spec.patience else None)

    def epoch_done(self, number: int, run: TrialRun, peers: Mapping[int, float] | None = None,
                   members: Mapping[int, int] | None = None,
                   params: Mapping[str, Any] | None = None,
                   ) -> Callable[[int, dict[str, float]], Exploit | None]:
        """After each epoch: its metrics sent, Ctrl-C honoured, the scheduler asked (with
        the values of the pack's other members at this epoch, ``peers``, when packed) and its
        answer turned into what the engine does: go on, stop (``TrialPruned``), or go on from
        another member's row (``Exploit``; ``members``: trial number -> member index; ``params``:
        the trial's starting values, whose changes are logged)."""
        spec, best, members = self.spec, [], members or {}
        current = dict(params or {})  # its values as they are now (PBT changes them)

        def done(epoch: int, metrics: dict[str, float]) -> Exploit | None:
            run.log_epoch(epoch, metrics)
            interrupts.check()
            value = metrics[spec.metric]
            if not best or spec.direction.better(value, best[0]):
                best[:] = [value]
            others = {n: v for n, v in (peers or {}).items() if n != number}
            decision = self.scheduler.on_result(number, epoch, value, others)
            # the scheduler hears every epoch; at the last one there is nothing left to save,
            # and a trial stopped there would lose the model it has finished training
            if decision.action is Action.STOP and epoch < spec.epochs:
                raise TrialPruned(epoch, best[0], spec.pruning.rule)
            if decision.action is not Action.EXPLOIT:
                return None
            if decision.source not in members:
                raise SearchError(f"the {spec.pruning.rule} scheduler asked trial {number} to "
                                  f"exploit trial {decision.source}, which is not in its pack; "
                                  f"allowed: {sorted(members)}")
            run.log_exploit(epoch, decision.source, current, decision.values)
            current.update(decision.values)
            return Exploit(members[decision.source], decision.values)

        return done

    def _log(self, trained: Trained, outcome: TrialOutcome) -> None:
        """The second half of a trial: the value it is scored by, its files, its model. A
        failure here fails the trial (an outage leaves it KILLED, to be re-run by a resume)."""
        run, result = trained.run, trained.result
        try:
            run.log_outcome(result.final.get(self.spec.metric), epochs_run=len(result.history),
                            best_epoch=result.best_epoch or len(result.history))
            if isinstance(trained.network, nn.Module):  # a fold's rows differ: no val files
                run.log_artifacts(self.task.trial_artifacts(trained.network, self.data))
            outcome.model_uri = run.log_model(self.task, trained.network, trained.params,
                                              self.data)
            run.end(TrialStatus.FINISHED,
                    {T.STOPPED: result.stopped} if result.stopped else None)
        except Exception as exc:
            outcome.error = describe_error(exc)  # kept on an outage too (the trial is KILLED)
            self._ended(outcome, run, exc, when=" while its model was logged")
            if self.raise_failures:
                raise


def stops_search(error: BaseException) -> bool:
    """Whether a trial's error ends the whole search: an interrupt, or a lost tracking
    server (its trials are KILLED, to be run again by a resume)."""
    return isinstance(error, (KeyboardInterrupt, SystemExit)) or is_outage(error)


_releases = itertools.count(1)  # calls of release_memory


def release_memory(device: torch.device) -> None:
    """Give back what a trial left, so trial 300 runs like trial 3: the young generations
    after every pack (what a trial's network and tensors make), a full collection every
    ``FULL_COLLECTION_EVERY`` packs (a full one cost 74 ms, more than a small trial's
    training, even with what set-up made frozen by ``gc.freeze``)."""
    gc.collect(2 if next(_releases) % FULL_COLLECTION_EVERY == 0 else 1)
    if device.type == "cuda":
        torch.cuda.empty_cache()
