"""k-fold cross-validation (``cv: k``): the training and validation splits together, cut into k
folds; the holdout split is in none of them.

Rows are numbered in the pooled order, training rows first, then validation rows (``pooled``).
Classification folds are stratified, regression folds plain, both shuffled by the search's seed
(scikit-learn's ``StratifiedKFold`` / ``KFold``): the same seed, the same folds. Time-series
folds keep time order: k expanding windows (``TimeSeriesSplit``), each scored on the stretch
that follows its training windows, ``gap`` windows apart so that no training window's targets
reach into the scored ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

from mltune.data.splits import TaskData

STRATIFIED, PLAIN, IN_TIME = "stratified", "plain", "in_time"


@dataclass(frozen=True)
class Rows:
    """What one pack member trains on and is scored on: indices into the pooled rows (a
    fold's, under cross-validation; a member without ``Rows`` trains on the training split
    and is scored on the validation split)."""

    train: torch.Tensor  # int64 indices into the pooled rows
    scored: torch.Tensor

    def to(self, device: torch.device) -> Rows:
        return Rows(self.train.to(device), self.scored.to(device))


def in_memory(data: TaskData) -> bool:
    """Whether the training and validation splits are tensors (not streamed from disk): what
    joining them (``pooled``) needs."""
    return all(isinstance(x, torch.Tensor) for x in (data.x_train, data.x_val))


def pooled(data: TaskData) -> TaskData:
    """Training rows = the training and validation splits together (what the folds index, and
    what a refit trains on); validation and holdout as they are."""
    return replace(data, x_train=torch.cat([data.x_train, data.x_val]),
                   y_train=torch.cat([data.y_train, data.y_val]))


def make_folds(targets: torch.Tensor, k: int, seed: int, kind: str, gap: int = 0
               ) -> list[Rows]:
    """``k`` folds over the pooled rows whose ``targets`` are given (``kind``: STRATIFIED,
    PLAIN or IN_TIME; ``gap``: rows left out between an IN_TIME fold's training and scored
    rows)."""
    n = len(targets)
    labels = targets.cpu().numpy()
    if kind == STRATIFIED:
        cuts = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), labels)
    elif kind == PLAIN:
        cuts = KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))
    elif kind == IN_TIME:
        cuts = TimeSeriesSplit(k, gap=gap).split(np.zeros(n))
    else:
        raise ValueError(f"fold kind {kind!r}; allowed: {STRATIFIED}, {PLAIN}, {IN_TIME}")
    return [Rows(torch.from_numpy(np.sort(train)).long(), torch.from_numpy(np.sort(val)).long())
            for train, val in cuts]


def smallest_class(targets: torch.Tensor) -> int:
    """Rows of the rarest class among ``targets`` (class indices)."""
    counts = torch.bincount(targets.cpu().long())
    return int(counts[counts > 0].min())
