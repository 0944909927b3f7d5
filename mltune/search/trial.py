"""One trial's whole life, from a sampled point to a logged model, and the one place its status
is decided.

A trial is FINISHED when its network trained; its model is then logged (in the background by
the local backend, while the next trial trains), and only a failure to log it can still turn it
FAILED (or KILLED, when the tracking server went away: a resume runs it again). What the sampler
learns is the measured metric either way (``search.samplers.base.loss_of``), so the sampler's
view and a resumed search's view of a trial agree.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from mltune.core import interrupts
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import TrialStatus
from mltune.data.splits import TaskData
from mltune.search.packs import structure
from mltune.search.pruning import TrialPruned
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.background import inline
from mltune.tracking.remote import best_effort, is_outage
from mltune.tracking.runs import SearchRun, TrialRun, describe_error
from mltune.training.device import seed_everything
from mltune.training.fit import EarlyStopping, FitResult, fit
from mltune.training.fit_pack import Member, fit_pack
from mltune.training.packing import Pack

log = logging.getLogger(__name__)
Finish = Callable[[Callable[[], None]], Any]  # runs a trial's logging job (now or later)


class Judge(Protocol):
    """A pruning rule as a trial sees it (the local ``Pruner``, or a Ray actor's proxy)."""

    def report(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> bool: ...

    def finish(self, trial: int) -> None: ...


class NoPruning:
    def report(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> bool:
        return False

    def finish(self, trial: int) -> None:
        pass


@dataclass
class Trained:
    """A trained network whose run is still open, waiting for its model to be logged."""

    run: TrialRun
    network: nn.Module
    params: Mapping[str, Any]
    result: FitResult


class TrialRunner:
    """Runs trials of one search (or the single run of ``mltune train``): open the run,
    train, log, close with a status.

    Self-contained (no search-wide state but the pruning rule), so a backend can run it in a
    worker process.
    """

    def __init__(self, spec: SearchSpec, task: Task, data: TaskData, search: SearchRun | None,
                 device: torch.device, precision: str, judge: Judge | None = None,
                 finish: Finish = inline, raise_failures: bool = False) -> None:
        self.spec, self.task, self.data, self.search = spec, task, data, search
        self.device, self.precision = device, precision
        self.judge = judge or NoPruning()
        self.finish = finish
        self.raise_failures = raise_failures  # one run alone (``mltune train``): its error

    def run(self, number: int, params: Mapping[str, Any]) -> TrialOutcome:
        """Trial ``number`` for a sampler's decoded ``params``; never raises for a failed trial
        (an interrupt and a lost tracking server do raise: they stop the search)."""
        try:
            return self.run_params(number, dict(params))
        finally:
            self.judge.finish(number)

    def run_params(self, number: int, params: dict[str, Any],
                   run_name: str | None = None) -> TrialOutcome:
        started = time.perf_counter()
        outcome = TrialOutcome(number, "", params, TrialStatus.RUNNING)
        run: TrialRun | None = None
        try:
            run = TrialRun.open(self.search, number, params, self.device, run_name=run_name,
                                precision=self.precision)
            outcome.run_id = run.run_id
            trained = self._train(number, params, run)
        except TrialPruned as pruned:
            outcome.status, outcome.error = TrialStatus.PRUNED, str(pruned)
            outcome.metrics = {self.spec.metric: pruned.best}
            assert run is not None
            run.end(TrialStatus.PRUNED, {T.OBJECTIVE: repr(float(pruned.best)),
                                         T.EPOCHS_RUN: str(pruned.epoch), T.ERROR: str(pruned)})
        except (KeyboardInterrupt, SystemExit):
            if run is not None:
                run.end(TrialStatus.KILLED, {T.INTERRUPTED: "true"})
            raise
        except Exception as exc:
            if is_outage(exc):  # the server is gone: a resume re-runs this trial
                if run is not None:
                    best_effort(run.end, TrialStatus.KILLED, {T.INTERRUPTED: "true"})
                raise
            outcome.status, outcome.error = TrialStatus.FAILED, describe_error(exc)
            if run is not None:
                run.fail(outcome.error)
            if self.raise_failures:
                raise
            log.warning("trial %d failed: %s", number, outcome.error)
        else:
            outcome.status, outcome.metrics = TrialStatus.FINISHED, trained.result.final
            self.finish(lambda: self._log(trained, outcome))
        finally:
            release_memory(self.device)
        outcome.seconds = time.perf_counter() - started
        return outcome

    def run_pack(self, pack: int, members: Sequence[tuple[int, Mapping[str, Any]]],
                 ) -> list[TrialOutcome]:
        """Trials ``(number, params)`` trained at once as one fused network (``Pack``);
        each is still a trial of its own: its run, params, metrics, model and status (tag
        ``mltune.pack``). Members whose networks differ in structure train in packs apart."""
        started = time.perf_counter()
        outcomes = [TrialOutcome(number, "", dict(params), TrialStatus.RUNNING, pack=pack)
                    for number, params in members]
        runs: list[TrialRun] = []
        try:
            for outcome in outcomes:
                runs.append(TrialRun.open(self.search, outcome.number, outcome.params,
                                          self.device, precision=self.precision, pack=pack))
                outcome.run_id = runs[-1].run_id
            groups: dict[Any, list[int]] = {}
            networks = [self.build(o.number, o.params) for o in outcomes]
            for j, network in enumerate(networks):
                groups.setdefault(structure(network), []).append(j)
            for group in groups.values():
                self._train_group([outcomes[j] for j in group], [runs[j] for j in group],
                                  [networks[j] for j in group])
        except (KeyboardInterrupt, SystemExit):
            for run in runs:
                run.end(TrialStatus.KILLED, {T.INTERRUPTED: "true"})
            raise
        except Exception as exc:
            if is_outage(exc):
                for run in runs:
                    best_effort(run.end, TrialStatus.KILLED, {T.INTERRUPTED: "true"})
                raise
            error = describe_error(exc)  # the pack as a whole failed (out of memory...)
            for outcome, run in zip(outcomes, runs, strict=False):
                if outcome.status == TrialStatus.RUNNING:
                    outcome.status, outcome.error = TrialStatus.FAILED, error
                    run.fail(error)
            for outcome in outcomes[len(runs):]:
                outcome.status, outcome.error = TrialStatus.FAILED, error
            log.warning("pack %d failed: %s", pack, error)
        finally:
            for outcome in outcomes:
                self.judge.finish(outcome.number)
            release_memory(self.device)
        seconds = time.perf_counter() - started
        for outcome in outcomes:
            outcome.seconds = seconds
        return outcomes

    def _train_group(self, outcomes: list[TrialOutcome], runs: list[TrialRun],
                     networks: list[nn.Module]) -> None:
        """Members of one structure: fused when there are several, alone when one."""
        if len(outcomes) == 1:
            outcome, run = outcomes[0], runs[0]
            try:
                trained = self._train(outcome.number, outcome.params, run)
            except Exception as exc:
                self._stopped(outcome, run, exc)
            else:
                outcome.status, outcome.metrics = TrialStatus.FINISHED, trained.result.final
                self.finish(lambda: self._log(trained, outcome))
            return
        spec = self.spec
        peers: dict[int, float] = {}  # this epoch's value of each member, by trial number

        def epoch_values(epoch: int, metrics: Mapping[int, dict[str, float]]) -> None:
            peers.clear()
            peers.update({outcomes[j].number: m[spec.metric] for j, m in metrics.items()})

        members = [Member(o.params, self.task.make_loss(o.params, self.data),
                          self.epoch_done(o.number, run, peers), self.stopper())
                   for o, run in zip(outcomes, runs, strict=True)]
        seed_everything(spec.seed + outcomes[0].number)  # the pack's dropout draws
        fused = Pack(networks)
        fit_pack(fused, members, self.data, score=self.score, epochs=spec.epochs,
                 seed=spec.seed, time_limit_s=spec.trial_timeout_s, precision=spec.precision,
                 on_epoch_all=epoch_values)
        finished: list[tuple[Trained, TrialOutcome]] = []
        for j, (outcome, run, member) in enumerate(zip(outcomes, runs, members, strict=True)):
            run.stop_monitor()
            assert member.result is not None
            if member.error is not None:
                self._stopped(outcome, run, member.error)
                continue
            outcome.status, outcome.metrics = TrialStatus.FINISHED, member.result.final
            network = fused.load_into(j, networks[j])
            finished.append((Trained(run, network, outcome.params, member.result), outcome))
        if finished:  # the members' models, logged together in the background
            self.finish(lambda: [self._log(t, o) for t, o in finished])

    def _stopped(self, outcome: TrialOutcome, run: TrialRun, error: BaseException) -> None:
        """A member that did not finish: pruned, or failed (diverged, timed out...)."""
        if isinstance(error, TrialPruned):
            outcome.status, outcome.error = TrialStatus.PRUNED, str(error)
            outcome.metrics = {self.spec.metric: error.best}
            run.end(TrialStatus.PRUNED, {T.OBJECTIVE: repr(float(error.best)),
                                         T.EPOCHS_RUN: str(error.epoch), T.ERROR: str(error)})
            return
        if isinstance(error, (KeyboardInterrupt, SystemExit)) or is_outage(error):
            raise error
        outcome.status, outcome.error = TrialStatus.FAILED, describe_error(error)
        run.fail(outcome.error)
        log.warning("trial %d failed: %s", outcome.number, outcome.error)

    def _train(self, number: int, params: Mapping[str, Any], run: TrialRun) -> Trained:
        spec = self.spec
        network = self.build(number, params)
        result = fit(network, self.data, params,
                     loss_fn=self.task.make_loss(params, self.data),
                     score=self.score, epochs=spec.epochs, seed=spec.seed,
                     on_epoch=self.epoch_done(number, run), early_stopping=self.stopper(),
                     time_limit_s=spec.trial_timeout_s, precision=spec.precision,
                     compile_model=spec.compile)
        run.stop_monitor()
        return Trained(run, network, params, result)

    def build(self, number: int, params: Mapping[str, Any]) -> nn.Module:
        """Trial ``number``'s network: its initial weights (and dropout draws) come from the
        search's seed plus its number; the batch order is the search's (``seed``), the same
        for every trial, packed or not."""
        seed_everything(self.spec.seed + number)
        return self.task.build_model(params, self.data.meta)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return self.task.score(outputs, targets, self.data.meta)

    def stopper(self) -> EarlyStopping | None:
        spec = self.spec
        return (EarlyStopping(spec.metric, spec.direction, spec.patience)
                if spec.patience else None)

    def epoch_done(self, number: int, run: TrialRun, peers: Mapping[int, float] | None = None
                   ) -> Callable[[int, dict[str, float]], None]:
        """After each epoch: its metrics sent, Ctrl-C honoured, the pruning rule asked (with
        the values of the pack's other members at this epoch, ``peers``, when packed)."""
        spec, best = self.spec, []

        def done(epoch: int, metrics: dict[str, float]) -> None:
            run.log_epoch(epoch, metrics)
            interrupts.check()
            value = metrics[spec.metric]
            if not best or spec.direction.better(value, best[0]):
                best[:] = [value]
            others = {n: v for n, v in (peers or {}).items() if n != number}
            # the rule hears every epoch; at the last one there is nothing left to save, and
            # a trial stopped there would lose the model it has finished training
            if self.judge.report(number, epoch, value, others) and epoch < spec.epochs:
                raise TrialPruned(epoch, best[0], spec.pruning.rule)

        return done

    def _log(self, trained: Trained, outcome: TrialOutcome) -> None:
        """The second half of a trial: the value it is scored by, its files, its model. A
        failure here fails the trial (an outage leaves it KILLED, to be re-run by a resume)."""
        run, result = trained.run, trained.result
        try:
            run.log_outcome(result.final.get(self.spec.metric), epochs_run=len(result.history),
                            best_epoch=result.best_epoch or len(result.history))
            run.log_artifacts(self.task.trial_artifacts(trained.network, self.data))
            outcome.model_uri = run.log_model(self.task, trained.network, trained.params,
                                              self.data)
            run.end(TrialStatus.FINISHED)
        except Exception as exc:
            outcome.error = describe_error(exc)
            if is_outage(exc):
                outcome.status = TrialStatus.KILLED
                best_effort(run.end, TrialStatus.KILLED, {T.INTERRUPTED: "true"})
            else:
                outcome.status = TrialStatus.FAILED
                run.fail(outcome.error)
            if self.raise_failures:
                raise
            log.warning("trial %d failed while its model was logged: %s", outcome.number,
                        outcome.error)


def release_memory(device: torch.device) -> None:
    """Give back what a trial left, so trial 300 runs like trial 3. Cheap: the search froze
    what its set-up made (``gc.freeze``), so the collection scans only what trials made."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
