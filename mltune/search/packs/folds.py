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
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mltune.core.errors import SpecError
from mltune.data.folds import (
    IN_TIME,
    PLAIN,
    STRATIFIED,
    Rows,
    in_memory,
    make_folds,
    smallest_class,
)
from mltune.data.splits import TaskData
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.training.fit import predict_batches


def check_refit(spec: SearchSpec, data: TaskData) -> None:
    """``refit: true`` needs the splits in memory (they are concatenated): streamed data
    (larger than memory, read from disk) is refused, before any run opens."""
    if spec.refit and not in_memory(data):
        raise SpecError("true is not allowed for this data: it is streamed from disk (larger "
                        "than memory) and a refit trains on train + validation joined in "
                        "memory; set refit: false", field="refit")


def search_folds(spec: SearchSpec, task: Task, data: TaskData) -> list[Rows] | None:
    """The search's folds on the data's device (None without ``cv``); what cannot be
    cross-validated (or refit: ``check_refit``) is refused with one line before any run
    opens."""
    check_refit(spec, data)
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
    return [fold.to(device) for fold in make_folds(targets, k, spec.split_seed, kind, gap)]


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


@torch.no_grad()
def out_of_fold(networks: Sequence[nn.Module], folds: Sequence[Rows], data: TaskData
                ) -> torch.Tensor:
    """Each pooled row's outputs from the fold network that did not train on it (CPU); rows
    no fold scores (a time-ordered search's first stretch) stay NaN."""
    parts = [(fold.scored, predict_batches(network, data.x_train[fold.scored]).cpu())
             for network, fold in zip(networks, folds, strict=True)]
    outputs = torch.full((len(data.x_train), *parts[0][1].shape[1:]), float("nan"))
    for rows, predicted in parts:
        outputs[rows.cpu()] = predicted
    return outputs
