"""One trial's whole life, from a numbered point to its record's ending: the one place its
status is decided.

A trial has members in a pack (one, or one per fold under ``cv``: the fold bookkeeping lives
here, not in the trainer), a record (``tracking.tracker``) and an epoch history. Each epoch its
members' metrics become one set (``observe``: the folds' mean and spread, ``folds.merged``),
which is logged and judged (``judge``): the scheduler's decision (a value: STOP prunes it,
EXPLOIT makes it go on from another trial's weights), early stopping, its epochs, the search's
time budget, its own timeout. It ends once (``close``): FINISHED (its network(s) taken from the
pack and logged in the background), PRUNED (the best value it reached), FAILED (diverged, timed
out, or raised) or KILLED (interrupted, or cut off from the tracking server: a resume runs it
again). What the sampler learns is the measured metric either way, so its view and a resumed
search's agree.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mltune.core.errors import SearchError
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.search.packs.folds import merged
from mltune.search.schedulers.base import Action, Decision
from mltune.tracking.remote import is_outage
from mltune.tracking.runs import describe_error
from mltune.tracking.tracker import Ending, Logged, TrialRecord
from mltune.training.engine import Epoch
from mltune.training.fit import EarlyStopping, TrialTimeout

log = logging.getLogger(__name__)
Weights = list[dict[str, torch.Tensor]]  # a trial's members' weights, one state dict each


@dataclass(frozen=True)
class Limits:
    """What bounds every trial of a search: the metric judged and its direction, the epochs,
    early stopping's patience, the per-trial timeout, the pruning rule's name."""

    metric: str
    direction: Direction
    epochs: int
    patience: int | None = None
    timeout_s: float | None = None
    rule: str = "none"


def stops_search(error: BaseException) -> bool:
    """Whether a trial's error ends the whole search: an interrupt, or a lost tracking
    server (its trials are KILLED, to be run again by a resume)."""
    return isinstance(error, (KeyboardInterrupt, SystemExit)) or is_outage(error)


class Trial:
    """Trial ``number`` of ``params``: its ``members`` in the pack (member numbers), the
    ``networks`` their final weights go into, its ``record``. ``out_of_fold(networks)``, when
    given, makes its out-of-fold predictions once it finished (cross-validation with an
    ensemble to select)."""

    def __init__(self, number: int, params: Mapping[str, Any], record: TrialRecord,
                 members: Sequence[int], networks: Sequence[nn.Module], limits: Limits, *,
                 pack: int | None = None, label: str | None = None,
                 out_of_fold: Callable[[list[nn.Module]], torch.Tensor] | None = None) -> None:
        self.number, self.record, self.limits = number, record, limits
        self.members, self.networks = list(members), list(networks)
        self.current = dict(params)  # its values as they are now (PBT changes them)
        # its run id is known once its record exists (made in the background): set at close
        self.outcome = TrialOutcome(number, "", dict(params), TrialStatus.RUNNING, pack=pack,
                                    device=label)
        self.history: list[dict[str, float]] = []  # merged metrics, by epoch
        self.best: float | None = None
        self.stopper = (EarlyStopping(limits.metric, limits.direction, limits.patience)
                        if limits.patience else None)
        self.started = time.monotonic()
        self.ending: Ending | None = None  # decided, not yet closed
        self.exception: BaseException | None = None  # what failed it, when something did
        self.out_of_fold, self.oof = out_of_fold, None

    @property
    def epoch(self) -> int:
        return len(self.history)

    @property
    def running(self) -> bool:
        return self.ending is None

    def observe(self, results: Mapping[int, Epoch]) -> float | None:
        """Its members' epoch (by member number): merged, logged; the value it is judged
        by, or None when a member's loss diverged (the trial fails: every fold with it)."""
        own = [results[j] for j in self.members]
        failed = next((r for r in own if isinstance(r, BaseException)), None)
        if failed is not None:
            self._failed(failed)
            return None
        metrics = own[0] if len(own) == 1 else merged(own)  # type: ignore[arg-type]
        self.history.append(metrics)
        self.record.epoch(self.epoch, metrics)
        value = metrics[self.limits.metric]
        if self.best is None or self.limits.direction.better(value, self.best):
            self.best = value
        return value

    def judge(self, decision: Decision, time_up: bool, weights: Callable[[], Weights]
              ) -> Decision | None:
        """After its epoch was observed: the decision the driver applies (CONTINUE, or
        EXPLOIT: logged here), or None when the trial ended (its ending decided: ``close``
        it). ``weights()``: its members' weights now (early stopping keeps the best)."""
        limits, epoch = self.limits, self.epoch
        # a scheduler hears every epoch; at the last one there is nothing left to save, and a
        # trial stopped there would lose the model it has finished training
        if decision.action is Action.STOP and epoch < limits.epochs:
            self._end(TrialStatus.PRUNED, reason=f"pruned by the {limits.rule} rule at epoch "
                                                 f"{epoch}")
            return None
        if self.stopper is not None and self.stopper.step(epoch, self.history[-1], weights):
            self._finished()
            return None
        if epoch >= limits.epochs:
            self._finished()
            return None
        if time_up:
            self._finished(stopped="time_budget")
            return None
        if limits.timeout_s is not None and time.monotonic() - self.started > limits.timeout_s:
            self._failed(TrialTimeout(f"trial ran past trial_timeout_s={limits.timeout_s:g} "
                                      f"(stopped after epoch {epoch})"))
            return None
        if decision.action is Action.EXPLOIT:
            assert decision.source is not None
            self.record.exploit(epoch, decision.source, self.current, decision.values)
            self.current.update(decision.values)
        return decision

    def close(self, trainer: Any, then: Logged | None = None) -> None:
        """Its members leave the pack (a finished trial's final weights into its networks,
        the best epoch's under early stopping), then its record ends."""
        assert self.ending is not None, "a trial closes once its ending is decided"
        finished = self.ending.status is TrialStatus.FINISHED
        trainer.remove({j: network if finished else None
                        for j, network in zip(self.members, self.networks, strict=True)})
        if finished and self.stopper is not None and self.stopper.best_state is not None:
            for network, state in zip(self.networks, self.stopper.best_state, strict=True):
                network.load_state_dict(state)
        if finished and self.out_of_fold is not None:
            self.oof = self.out_of_fold(self.networks)
        self._record(then)

    def abort(self, error: BaseException) -> None:
        """The pack stopped as a whole (interrupted, out of memory, the tracking server
        lost...) while this trial trained: KILLED when that stops the search, else FAILED;
        its record ends now (its members went with the pack)."""
        if stops_search(error):
            self._end(TrialStatus.KILLED)
        else:
            self._failed(error)
        self._record(None)

    def _finished(self, stopped: str | None = None) -> None:
        best_epoch = self.stopper.best_epoch if self.stopper is not None else 0
        final = self.history[best_epoch - 1] if best_epoch else self.history[-1]
        self.outcome.metrics = dict(final)
        self._end(TrialStatus.FINISHED, best_epoch=best_epoch, stopped=stopped)

    def _failed(self, error: BaseException) -> None:
        self.exception = error
        self.outcome.error = describe_error(error)
        log.warning("trial %d failed: %s", self.number, self.outcome.error)
        self._end(TrialStatus.FAILED, reason=self.outcome.error)

    def _end(self, status: TrialStatus, *, reason: str | None = None, best_epoch: int = 0,
             stopped: str | None = None) -> None:
        """The one place a trial's status is set (once)."""
        if self.ending is not None:
            raise SearchError(f"trial {self.number} ended twice ({self.ending.status.value}, "
                              f"then {status.value})")
        metric = self.limits.metric
        if status is TrialStatus.PRUNED:
            self.outcome.metrics = {metric: self.best} if self.best is not None else {}
            self.outcome.error = reason
        value = self.outcome.metrics.get(metric)
        self.outcome.status, self.outcome.epochs = status, self.epoch
        self.outcome.seconds = time.monotonic() - self.started
        self.ending = Ending(status, value, self.epoch, best_epoch, reason, stopped,
                             tuple(m[metric] for m in self.history))

    def _record(self, then: Logged | None) -> None:
        assert self.ending is not None
        finished = self.ending.status is TrialStatus.FINISHED
        try:
            self.outcome.run_id = self.record.run_id
        except Exception:  # its record could not even be made (the server is gone)
            pass

        def logged(model_uri: str | None, error: str | None, status: TrialStatus) -> None:
            self.outcome.model_uri = model_uri
            if error is not None:  # its model could not be logged: it did not finish
                self.outcome.status, self.outcome.error = status, error
            if then is not None:
                then(model_uri, error, status)

        self.record.end(self.ending, self.networks if finished else (), self.outcome.params,
                        then=logged)
