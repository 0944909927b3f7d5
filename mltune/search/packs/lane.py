"""Where one driver trains and with what: the search's spec and task, the data on the lane's
device (moved there once), the folds' rows there too, the label its trials are tagged with.

A local lane is made in the search's process (one per device); a Ray worker makes its own from
what the search ships it. Either way the driver reads nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from mltune.data.folds import Rows, pooled
from mltune.data.splits import TaskData
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.training.device import device_labels


@dataclass
class Lane:
    """One driver's device and data. ``folds`` (``cv: k``): each trial is k members, one per
    fold, trained on the pooled training and validation rows. ``epochs_of``: trials whose
    epochs are their own (a refit trains for its trial's), by trial number."""

    spec: SearchSpec
    task: Task
    data: TaskData  # on ``device``
    device: torch.device
    label: str  # what its trials' ``mltune.device`` says (``cuda:1``, ``cpu#2``)
    folds: list[Rows] | None = None  # on ``device``
    epochs_of: Mapping[int, int] = field(default_factory=dict)

    @property
    def members_per_trial(self) -> int:
        """Pack members a trial takes: one, or one per fold."""
        return len(self.folds) if self.folds else 1

    @cached_property
    def train_data(self) -> TaskData:
        """What the trainer trains on: the pooled splits under cv (the folds index them)."""
        return pooled(self.data) if self.folds else self.data

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        return self.task.score(outputs, targets, self.data.meta)


@dataclass
class SearchSetup:
    """What a backend makes its lanes from: the search's spec, task and data (on the first
    device), the devices of its local lanes, the folds, the parent run."""

    spec: SearchSpec
    task: Task
    data: TaskData
    devices: list[torch.device]
    folds: list[Rows] | None
    search: Any  # the parent run (``tracking.runs.SearchRun``)

    def lanes(self) -> list[Lane]:
        """One lane per local device (labelled: ``cuda:1``, ``cpu#2``), the data and folds
        moved to each once."""
        lanes = []
        for device, label in zip(self.devices, device_labels(self.devices), strict=True):
            data = self.data if device == self.data.x_train.device else self.data.to(device)
            folds = [f.to(device) for f in self.folds] if self.folds else None
            lanes.append(Lane(self.spec, self.task, data, device, label, folds))
        return lanes
