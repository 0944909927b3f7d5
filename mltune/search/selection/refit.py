"""Refit (``refit: true``): the best configuration trained once more, on the training and the
validation rows together, for the epochs its trial chose; its model is the one registered.

A refit is a trial of the same driver as the search's (``search.packs``), given its point, its
number and its epochs (``FixedPoints``): alone, on train + validation, with no scheduler and no
time budget. Its record is a child run of the search, but not a trial's: run name ``refit``, tag
``mltune.role=refit``, ``mltune.refit_of`` = the best trial's run id, no ``mltune.trial``
(resume and the report read role ``trial`` only). Its params are the best trial's. The
validation split is still measured after each epoch, but those rows are among the ones it
trained on, so its ``val_*`` metrics are not a validation score: the run says so
(``mltune.val_is_train=true``). ``mltune.train_rows`` says how many rows it trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import torch
from mlflow.tracking import MlflowClient

from mltune.core.errors import SearchError
from mltune.core.interrupts import Stop
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import TrialStatus
from mltune.data.folds import pooled
from mltune.data.splits import TaskData
from mltune.search.history.result import RefitResult
from mltune.search.packs.coordinator import FixedPoints
from mltune.search.packs.driver import Driver
from mltune.search.packs.lane import Lane
from mltune.search.packs.trial import stops_search
from mltune.spec.model import PruningSpec, SearchSpec, StopSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.remote import best_effort
from mltune.tracking.runs import SearchRun, describe_error
from mltune.tracking.tracker import MlflowTracker

log = logging.getLogger(__name__)
RUN_NAME = "refit"


def refit_epochs(client: MlflowClient, best: TrialOutcome, spec: SearchSpec) -> int:
    """The epochs a trial chose: the epoch whose weights it logged (its best under early
    stopping: ``mltune.best_epoch``), else the epochs it trained."""
    tags = client.get_run(best.run_id).data.tags
    for key in (T.BEST_EPOCH, T.EPOCHS_RUN):
        if tags.get(key, "").isdigit() and int(tags[key]) > 0:
            return int(tags[key])
    return best.epochs or spec.epochs


def refit_trials(spec: SearchSpec, task: Task, data: TaskData, search: SearchRun,
                 device: torch.device, trials: Sequence[TrialOutcome], stop: Stop
                 ) -> list[RefitResult]:
    """Each of ``trials``' params trained again on train + validation (one after another, each
    for the epochs its trial chose) and logged like a trial's; raises what stopped one (its
    run FAILED, or KILLED on an interrupt)."""
    for trial in trials:
        if trial.status != TrialStatus.FINISHED:
            raise SearchError(f"trial {trial.number} is {trial.status.value}; only a finished "
                              "trial is refit")
    epochs = {t.number: refit_epochs(search.client, t, spec) for t in trials}
    joined = pooled(data)  # the trainer still measures validation
    alone = replace(spec, pruning=PruningSpec("none"), patience=None, pack=1,
                    stop=StopSpec())
    lane = Lane(alone, task, joined, device, str(device), epochs_of=epochs)
    tracker = MlflowTracker(search, task, joined, device, run_name=RUN_NAME, scored=False,
                            refit_of={t.number: t.run_id for t in trials},
                            tags={T.VAL_IS_TRAIN: "true", T.TRAIN_ROWS: str(len(joined.y_train))})
    points = FixedPoints([(t.number, dict(t.params)) for t in trials])
    Driver(lane, points, tracker, stop).run()
    refits = []
    for trial in trials:
        outcome = points.outcomes[trial.number]
        if outcome.status != TrialStatus.FINISHED or outcome.model_uri is None:
            raise SearchError(f"the refit of trial {trial.number} failed: {outcome.error}")
        refits.append(RefitResult(outcome.run_id, outcome.model_uri, outcome.epochs))
    return refits


def try_refit(spec: SearchSpec, task: Task, data: TaskData, search: SearchRun,
              device: torch.device, best: TrialOutcome, stop: Stop) -> RefitResult:
    """``refit_trials`` of the best trial, never losing the search: the refit, or why it
    failed (with a warning and the parent tagged ``mltune.refit_error``: the best trial's
    model is then registered as without refit). An interrupt or a lost tracking server is
    raised."""
    try:
        return refit_trials(spec, task, data, search, device, [best], stop)[0]
    except BaseException as exc:
        if stops_search(exc):
            raise
        error = describe_error(exc) if not isinstance(exc, SearchError) else str(exc)
        log.warning("refit of trial %d failed, its trial's model is registered instead: %s",
                    best.number, error)
        best_effort(search.set_tag, T.REFIT_ERROR, error)
        return RefitResult(error=error)
