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
import json
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
from mltune.data.splits import TaskData
from mltune.search.packs import structure
from mltune.search.schedulers.base import Action, Scheduler
from mltune.search.schedulers.none import NoScheduler
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.background import inline
from mltune.tracking.remote import best_effort, is_outage
from mltune.tracking.runs import SearchRun, TrialRun, describe_error
from mltune.training.device import seed_everything
from mltune.training.engine import Exploit, Member, make_pack, train
from mltune.training.fit import EarlyStopping, FitResult
from mltune.training.packing import Pack

log = logging.getLogger(__name__)
Finish = Callable[[Callable[[], None]], Any]  # runs a trial's logging job (now or later)


class TrialPruned(Exception):
    """Raised from the epoch callback when the scheduler stops a trial; carries its best value."""

    def __init__(self, epoch: int, best: float, rule: str) -> None:
        super().__init__(f"pruned by the {rule} rule at epoch {epoch}")
        self.epoch, self.best, self.rule = epoch, best, rule


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

    Self-contained (no search-wide state but the scheduler), so a backend can run it in a
    worker process.
    """

    def __init__(self, spec: SearchSpec, task: Task, data: TaskData, search: SearchRun | None,
                 device: torch.device, precision: str, scheduler: Scheduler | None = None,
                 finish: Finish = inline, raise_failures: bool = False) -> None:
        self.spec, self.task, self.data, self.search = spec, task, data, search
        self.device, self.precision = device, precision
        self.scheduler = scheduler or NoScheduler(spec.pruning, spec.direction)
        self.finish = finish
        self.raise_failures = raise_failures  # one run alone (``mltune train``): its error

    def run_params(self, number: int, params: Mapping[str, Any],
                   run_name: str | None = None) -> TrialOutcome:
        """Trial ``number`` with decoded ``params``: a pack of one. Never raises for a failed
        trial unless ``raise_failures`` (an interrupt and a lost tracking server do raise:
        they stop the search)."""
        return self.run_pack(None, [(number, params)], run_name=run_name)[0]

    def run_pack(self, pack: int | None, members: Sequence[tuple[int, Mapping[str, Any]]],
                 run_name: str | None = None) -> list[TrialOutcome]:
        """Trials ``(number, params)`` trained at once by the engine (``pack``: its number,
        tagged ``mltune.pack``; None for a lone trial); each is still a trial of its own: its
        run, params, metrics, model and status. Members whose networks differ in structure
        train in packs apart."""
        started = time.perf_counter()
        outcomes = [TrialOutcome(number, "", dict(params), TrialStatus.RUNNING, pack=pack)
                    for number, params in members]
        runs: list[TrialRun] = []
        try:
            for outcome in outcomes:
                runs.append(TrialRun.open(self.search, outcome.number, outcome.params,
                                          self.device, run_name=run_name,
                                          precision=self.precision, pack=pack))
                outcome.run_id = runs[-1].run_id
            groups: dict[Any, list[int]] = {}
            networks = [self.build(o.number, o.params) for o in outcomes]
            for j, network in enumerate(networks):
                groups.setdefault(structure(network), []).append(j)
            for group in groups.values():
                self._train_group([outcomes[j] for j in group], [runs[j] for j in group],
                                  [networks[j] for j in group])
        except BaseException as exc:  # the pack as a whole stopped (out of memory, Ctrl-C...)
            for j, outcome in enumerate(outcomes):
                if outcome.status == TrialStatus.RUNNING:
                    self._ended(outcome, runs[j] if j < len(runs) else None, exc)
            if stops_search(exc) or self.raise_failures:
                raise
        finally:
            for outcome in outcomes:
                self.scheduler.on_end(outcome.number)
            release_memory(self.device)
        seconds = time.perf_counter() - started
        for outcome in outcomes:
            outcome.seconds = seconds
        return outcomes

    def _train_group(self, outcomes: list[TrialOutcome], runs: list[TrialRun],
                     networks: list[nn.Module]) -> None:
        """Members of one structure, trained together by the engine (fused when they can
        be); a member that did not finish is ended by ``_ended``."""
        spec = self.spec
        peers: dict[int, float] = {}  # this epoch's value of each member, by trial number
        index = {o.number: j for j, o in enumerate(outcomes)}  # trial number -> member

        def epoch_values(epoch: int, metrics: Mapping[int, dict[str, float]]) -> None:
            peers.clear()
            peers.update({outcomes[j].number: m[spec.metric] for j, m in metrics.items()})

        members = [Member(o.params, self.task.make_loss(o.params, self.data),
                          self.epoch_done(o.number, run, peers, index), self.stopper())
                   for o, run in zip(outcomes, runs, strict=True)]
        pack = make_pack(networks, compile_model=spec.compile)
        if isinstance(pack, Pack):
            seed_everything(spec.seed + outcomes[0].number)  # the fused pack's dropout draws
        train(pack, members, self.data, score=self.score, epochs=spec.epochs, seed=spec.seed,
              time_limit_s=spec.trial_timeout_s, precision=spec.precision,
              on_epoch_all=epoch_values)
        finished: list[tuple[Trained, TrialOutcome]] = []
        for j, (outcome, run, member) in enumerate(zip(outcomes, runs, members, strict=True)):
            run.stop_monitor()
            assert member.result is not None
            if member.error is not None:
                if self._ended(outcome, run, member.error) or self.raise_failures:
                    raise member.error
                continue
            outcome.status, outcome.metrics = TrialStatus.FINISHED, member.result.final
            network = pack.load_into(j, networks[j])
            finished.append((Trained(run, network, outcome.params, member.result), outcome))
        if finished:  # the members' models, logged together in the background
            self.finish(lambda: [self._log(t, o) for t, o in finished])

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
        seed_everything(self.spec.seed + number)
        return self.task.build_model(params, self.data.meta)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return self.task.score(outputs, targets, self.data.meta)

    def stopper(self) -> EarlyStopping | None:
        spec = self.spec
        return (EarlyStopping(spec.metric, spec.direction, spec.patience)
                if spec.patience else None)

    def epoch_done(self, number: int, run: TrialRun, peers: Mapping[int, float] | None = None,
                   members: Mapping[int, int] | None = None
                   ) -> Callable[[int, dict[str, float]], Exploit | None]:
        """After each epoch: its metrics sent, Ctrl-C honoured, the scheduler asked (with
        the values of the pack's other members at this epoch, ``peers``, when packed) and its
        answer turned into what the engine does: go on, stop (``TrialPruned``), or go on from
        another member's row (``Exploit``; ``members``: trial number -> member index)."""
        spec, best, members = self.spec, [], members or {}

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
            run.client.set_tag(run.run_id, f"{T.EXPLOIT}.{epoch}", json.dumps(
                {"source": decision.source, "values": dict(decision.values)}, default=str))
            return Exploit(members[decision.source], decision.values)

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
            outcome.error = describe_error(exc)  # kept on an outage too (the trial is KILLED)
            self._ended(outcome, run, exc, when=" while its model was logged")
            if self.raise_failures:
                raise


def stops_search(error: BaseException) -> bool:
    """Whether a trial's error ends the whole search: an interrupt, or a lost tracking
    server (its trials are KILLED, to be run again by a resume)."""
    return isinstance(error, (KeyboardInterrupt, SystemExit)) or is_outage(error)


def release_memory(device: torch.device) -> None:
    """Give back what a trial left, so trial 300 runs like trial 3. Cheap: the search froze
    what its set-up made (``gc.freeze``), so the collection scans only what trials made."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
