"""Cross-validation inside the search (``cv: k``): a trial is k members of one pack, one per
fold, each training on its own rows and scored on its own held-out fold; the trial is judged on
the fold mean.

The folds' metrics of an epoch become one set (``fold_<i>/<name>`` for each fold, the mean under
the usual names, ``<name>_std`` beside each validation metric): that is what the trial's run logs
and what the scheduler and early stopping judge, so a pruned or early-stopped trial stops every
fold at once, and a fold that diverges fails the whole trial. The trial's model is its k fold
networks averaged (one pyfunc); its out-of-fold predictions (each row predicted by the fold
model that did not train on it) are what an ensemble is selected on.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mltune.core.errors import SpecError
from mltune.data.folds import (
    IN_TIME,
    PLAIN,
    STRATIFIED,
    Fold,
    in_memory,
    make_folds,
    smallest_class,
)
from mltune.data.splits import TaskData
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.training.engine import Exploit
from mltune.training.fit import EarlyStopping, FitResult, predict_batches


def search_folds(spec: SearchSpec, task: Task, data: TaskData) -> list[Fold] | None:
    """The search's folds on the data's device (None without ``cv``); what cannot be
    cross-validated is refused with one line before any run opens."""
    k = spec.cv
    if not k:
        return None
    if not in_memory(data):
        raise SpecError(f"{k} is not allowed for this data: it is streamed from disk (larger "
                        "than memory) and the folds join train + validation in memory; "
                        "remove cv", field="cv")
    if spec.pruning.rule == "pbt":
        raise SpecError(f"{k} is not allowed with pruning rule pbt (a member copies another's "
                        "weights, and a fold's weights belong to its fold); use asha, "
                        "hyperband, median or none", field="cv")
    targets = torch.cat([data.y_train, data.y_val])
    if task.name == "timeseries":
        kind, gap = IN_TIME, int(data.meta.get("horizon", 1)) - 1
        if len(targets) < 2 * (k + 1) + gap * k:
            raise SpecError(f"{k} is not allowed: the training and validation windows "
                            f"({len(targets)}) are too few for {k} time-ordered folds",
                            field="cv")
    elif task.outputs_are_logits(data.meta):
        kind, gap = STRATIFIED, 0
        rarest = smallest_class(targets)
        if k > rarest:
            raise SpecError(f"{k} is not allowed: the rarest class has {rarest} rows in "
                            f"train + validation, and each of the k folds needs one; allowed: "
                            f"2 to {rarest}", field="cv")
    else:
        kind, gap = PLAIN, 0
        if k > len(targets):
            raise SpecError(f"{k} is not allowed: there are {len(targets)} rows in train + "
                            f"validation; allowed: 2 to {len(targets)}", field="cv")
    device = targets.device
    return [fold.to(device) for fold in make_folds(targets, k, spec.seed, kind, gap)]


def merged(folds: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """One epoch of the k folds as one set of metrics: each fold's under ``fold_<i>/``, the
    mean under the metric's own name, the standard deviation of each validation metric
    (``<name>_std``, population)."""
    metrics: dict[str, float] = {}
    for name in folds[0]:
        values = [fold[name] for fold in folds]
        metrics[name] = statistics.fmean(values)
        if name.startswith("val_"):
            metrics[f"{name}_std"] = statistics.pstdev(values)
    for i, fold in enumerate(folds):
        metrics.update({f"fold_{i}/{name}": value for name, value in fold.items()})
    return metrics


class FoldedTrial:
    """The k fold members of one trial, judged as one: the engine measures each fold, the
    pack's ``on_epoch_all`` hands them here (``measured``), and the first fold member's
    ``on_epoch`` passes the merged metrics to the trial's own callback (its run, the
    scheduler); the other folds follow its answer."""

    def __init__(self, k: int, on_epoch: Callable[[int, dict[str, float]], Exploit | None]
                 ) -> None:
        self.k, self.on_epoch = k, on_epoch
        self.history: list[dict[str, float]] = []  # merged metrics, by epoch
        self.error: BaseException | None = None  # what stops every fold
        self._judged = 0  # the last epoch passed to ``on_epoch``

    def measured(self, folds: Mapping[int, Mapping[str, float]],
                 failed: BaseException | None) -> dict[str, float] | None:
        """This epoch's metrics of the folds that were measured (fold -> metrics) and, when a
        fold's loss diverged, its error (every fold then stops, the trial fails). The merged
        metrics, or None when the trial fails."""
        if failed is not None or len(folds) < self.k:
            self.error = failed or RuntimeError("a fold of this trial stopped alone")
            return None
        self.history.append(merged([folds[i] for i in range(self.k)]))
        return self.history[-1]

    def callback(self, fold: int) -> Callable[[int, dict[str, float]], None]:
        """Fold ``fold``'s ``on_epoch``: the trial's epoch judged once, its answer for all."""

        def done(epoch: int, metrics: dict[str, float]) -> None:
            if self.error is None and self._judged < epoch:
                self._judged = epoch
                try:
                    self.on_epoch(epoch, self.history[epoch - 1])
                except Exception as exc:  # pruned (or its logging failed): every fold stops
                    self.error = exc
            if self.error is not None:
                raise self.error

        return done

    def stopper(self, patience: EarlyStopping | None) -> EarlyStopping | None:
        """A fold's early stopping judged on the fold mean: every fold stops at the same
        epoch, each keeping its own weights of the trial's best epoch."""
        if patience is None:
            return None
        return _OnTheMean(patience.metric, patience.direction, patience.patience, trial=self)

    def result(self, fold_result: FitResult) -> FitResult:
        """The trial's result: the merged history, the folds' common best epoch and end."""
        return FitResult(list(self.history), fold_result.best_epoch, fold_result.stopped_early,
                         fold_result.stopped)


@dataclass
class _OnTheMean(EarlyStopping):
    trial: FoldedTrial | None = None

    def step(self, epoch: int, metrics: dict[str, float],
             snapshot: Callable[[], dict[str, torch.Tensor]]) -> bool:
        assert self.trial is not None
        return super().step(epoch, self.trial.history[epoch - 1], snapshot)


@torch.no_grad()
def out_of_fold(networks: Sequence[nn.Module], folds: Sequence[Fold], data: TaskData
                ) -> torch.Tensor:
    """Each pooled row's outputs from the fold network that did not train on it (CPU); rows
    no fold scores (a time-ordered search's first stretch) stay NaN."""
    parts = [(fold.val, predict_batches(network, data.x_train[fold.val]).cpu())
             for network, fold in zip(networks, folds, strict=True)]
    outputs = torch.full((len(data.x_train), *parts[0][1].shape[1:]), float("nan"))
    for rows, predicted in parts:
        outputs[rows.cpu()] = predicted
    return outputs
