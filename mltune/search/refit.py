"""Refit (``refit: true``): the best configuration trained once more, on the training and the
validation rows together, for the epochs its trial chose; its model is the one registered.

The refit is a child run of the search, but not a trial: run name ``refit``, tag
``mltune.role=refit``, ``mltune.refit_of`` = the best trial's run id, no ``mltune.trial``
(resume and the report read role ``trial`` only). Its params are the best trial's. The
validation split is still measured after each epoch, but those rows are among the ones it
trained on, so its ``val_*`` metrics are not a validation score: the run says so
(``mltune.val_is_train=true``). ``mltune.train_rows`` says how many rows it trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from mlflow.tracking import MlflowClient

from mltune.core import interrupts
from mltune.core.errors import SearchError, SpecError
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import TrialStatus
from mltune.data.folds import in_memory, pooled
from mltune.data.splits import TaskData
from mltune.search.trial import release_memory, stops_search
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.remote import best_effort
from mltune.tracking.runs import SearchRun, TrialRun, describe_error
from mltune.training.device import seed_everything
from mltune.training.engine import Member, make_pack, train

log = logging.getLogger(__name__)
RUN_NAME = "refit"


@dataclass(frozen=True)
class Refit:
    """A finished refit: its run and model, the trial it refits, what it trained."""

    run_id: str
    model_uri: str
    trial: int  # the best trial's number
    trial_run_id: str
    epochs: int
    train_rows: int
    network: torch.nn.Module | None = field(default=None, compare=False)  # trained, on the CPU


def check_refit(spec: SearchSpec, data: TaskData) -> None:
    """``refit: true`` needs the splits in memory (they are concatenated): streamed data
    (larger than memory, read from disk) is refused, before any run opens."""
    if spec.refit and not in_memory(data):
        raise SpecError("true is not allowed for this data: it is streamed from disk (larger "
                        "than memory) and a refit trains on train + validation joined in "
                        "memory; set refit: false", field="refit")


def refit_epochs(client: MlflowClient, best: TrialOutcome, spec: SearchSpec) -> int:
    """The epochs the best trial chose: the epoch whose weights it logged (its best under
    early stopping: ``mltune.best_epoch``), else the epochs it trained."""
    tags = client.get_run(best.run_id).data.tags
    for key in (T.BEST_EPOCH, T.EPOCHS_RUN):
        if tags.get(key, "").isdigit() and int(tags[key]) > 0:
            return int(tags[key])
    return best.epochs or spec.epochs


def refit_best(spec: SearchSpec, task: Task, data: TaskData, search: SearchRun,
               device: torch.device, precision: str, best: TrialOutcome) -> Refit:
    """Train ``best``'s params on train + validation as the search's ``refit`` run and log
    its model like a trial's. Raises what stopped it (the run is FAILED, or KILLED on an
    interrupt)."""
    if best.status != TrialStatus.FINISHED:
        raise SearchError(f"trial {best.number} is {best.status.value}; only a finished trial "
                          "is refit")
    epochs = refit_epochs(search.client, best, spec)
    data = pooled(data)  # the engine still measures validation
    rows = len(data.x_train)
    params = dict(best.params)
    run = TrialRun.open(search, best.number, params, device, run_name=RUN_NAME,
                        precision=precision, refit_of=best.run_id,
                        extra_tags={T.VAL_IS_TRAIN: "true", T.TRAIN_ROWS: str(rows)})
    try:
        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            run.log_epoch(epoch, metrics)
            interrupts.check()

        seed_everything(spec.seed + best.number)  # the trial's initial weights
        network = task.build_model(params, data.meta)
        member = Member(params, task.make_loss(params, data), on_epoch)
        pack = make_pack([network], compile_model=spec.compile)
        train(pack, [member], data, score=lambda o, t: task.score(o, t, data.meta),
              epochs=epochs, seed=spec.seed, time_limit_s=spec.trial_timeout_s,
              precision=spec.precision)
        run.stop_monitor()
        if member.error is not None:
            raise member.error
        assert member.result is not None
        network = pack.load_into(0, network)
        trained = len(member.result.history)
        run.log_outcome(None, epochs_run=trained, best_epoch=trained)  # no early stopping
        run.log_artifacts(task.trial_artifacts(network, data))
        model_uri = run.log_model(task, network, params, data)
        run.end(TrialStatus.FINISHED)
    except BaseException as exc:
        if stops_search(exc):
            best_effort(run.end, TrialStatus.KILLED, {T.INTERRUPTED: "true"})
        else:
            best_effort(run.fail, describe_error(exc))
        raise
    finally:
        release_memory(device)
    return Refit(run.run_id, model_uri, best.number, best.run_id, trained, rows, network.cpu())


def try_refit(spec: SearchSpec, task: Task, data: TaskData, search: SearchRun,
              device: torch.device, precision: str, best: TrialOutcome,
              ) -> tuple[Refit | None, str | None]:
    """``refit_best``, never losing the search: (the refit, None), or (None, why it failed)
    with a warning and the parent tagged ``mltune.refit_error`` (the best trial's model is
    then registered as without refit). An interrupt or a lost tracking server is raised."""
    try:
        return refit_best(spec, task, data, search, device, precision, best), None
    except BaseException as exc:
        if stops_search(exc):
            raise
        error = describe_error(exc)
        log.warning("refit of trial %d failed, its trial's model is registered instead: %s",
                    best.number, error)
        best_effort(search.set_tag, T.REFIT_ERROR, error)
        return None, error
