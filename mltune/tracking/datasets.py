"""The search's splits as MLflow datasets: what the UI's Dataset column and a LoggedModel's
metrics name.

Each split (train, validation, test) is one MLflow dataset entity: a name from the data's source,
the digest of the data (``TaskData.fingerprint``), the source as the spec names it (``${VAR}``
kept as written), the tensors' schema and the row count. Only that description is logged, never
the data; the entities are built once per search and reused by every trial (the parent run gets
the three splits, each trial the training and validation splits).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import torch
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.types.schema import Schema, TensorSpec

from mltune.data.splits import TaskData
from mltune.tracking.tags import DATASET_CONTEXT

TRAINING, VALIDATION, TEST = "training", "validation", "test"  # MLflow's context values
SUFFIX = {TRAINING: "train", VALIDATION: "validation", TEST: "test"}
BUILTIN = re.compile(r"^[A-Za-z][\w.-]*:[\w.-]+$")  # sklearn:digits (not C:/data, not a URL)


def base_name(source: str) -> str:
    """What a split's name starts with: ``sklearn:digits`` -> ``digits``; ``${DATA}/sales.csv``
    -> ``sales``; a folder ``photos/`` -> ``photos``."""
    if BUILTIN.match(source):
        return source.split(":", 1)[1]
    name = PurePosixPath(source.replace("\\", "/").rstrip("/")).name or "data"
    for _ in range(2):  # sales.csv.gz -> sales
        stem, dot, ext = name.rpartition(".")
        if dot and stem and ext.isalnum() and len(ext) <= 7:
            name = stem
    return name


def _spec(values: Any) -> TensorSpec:
    """A tensor's (or a streamed split's) dtype and shape, rows left free (-1)."""
    if isinstance(values, torch.Tensor):
        shape, dtype = tuple(values.shape[1:]), values.dtype
    else:  # a Streamed split: one item says what the others are
        item = values.dataset[0]
        shape, dtype = tuple(item.shape), item.dtype
    try:
        numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:  # bfloat16 and other types numpy lacks
        numpy_dtype = np.dtype(np.float32)
    return TensorSpec(numpy_dtype, (-1, *shape))


def _dataset(name: str, source: str, digest: str, x: Any, y: Any) -> Dataset:
    features, targets = _spec(x), _spec(y)
    schema = {"mlflow_tensorspec": {"features": Schema([features]).to_json(),
                                    "targets": Schema([targets]).to_json()}}
    profile = {"num_rows": len(x), "features_shape": list(features.shape[1:]),
               "targets_shape": list(targets.shape[1:])}
    kind = "code" if BUILTIN.match(source) else "local"  # built-in: made by code, not a file
    return Dataset(name=name, digest=digest, source_type=kind,
                   source=json.dumps({"uri": source}), schema=json.dumps(schema),
                   profile=json.dumps(profile))


@dataclass(frozen=True)
class SplitDatasets:
    """The three splits of a search's data as dataset inputs, by MLflow context."""

    inputs: dict[str, DatasetInput]  # context -> input

    @property
    def for_search(self) -> list[DatasetInput]:
        """The parent run's inputs: every split, the holdout included."""
        return list(self.inputs.values())

    @property
    def for_trial(self) -> list[DatasetInput]:
        """A trial's inputs: what it trained on and what it was scored on."""
        return [self.inputs[c] for c in (TRAINING, VALIDATION) if c in self.inputs]

    @property
    def for_refit(self) -> list[DatasetInput]:
        """A refit's inputs: it trained on the training and the validation splits both."""
        return [DatasetInput(self.inputs[c].dataset, [InputTag(DATASET_CONTEXT, TRAINING)])
                for c in (TRAINING, VALIDATION) if c in self.inputs]

    def linked(self, metric: str) -> tuple[str, str] | None:
        """(name, digest) of the split a trial metric was measured on (``val_*``: validation,
        ``train_*``: training), or None."""
        context = (VALIDATION if metric.startswith("val_") else
                   TRAINING if metric.startswith("train_") else None)
        found = self.inputs.get(context) if context else None
        return (found.dataset.name, found.dataset.digest) if found else None

    @classmethod
    def from_inputs(cls, inputs: list[DatasetInput]) -> SplitDatasets:
        """The splits back from a run's inputs (a trial in a worker reads its parent's)."""
        by_context = {}
        for item in inputs:
            context = {t.key: t.value for t in item.tags}.get(DATASET_CONTEXT)
            if context in SUFFIX:
                by_context[context] = item
        return cls(by_context)


def split_datasets(source: str, data: TaskData) -> SplitDatasets:
    """The search's splits as dataset inputs. ``source``: the data's source as the spec
    writes it (``DataSpec.shown``). Built from the tensors' shapes: nothing is copied."""
    base = base_name(source)
    splits = {TRAINING: (data.x_train, data.y_train), VALIDATION: (data.x_val, data.y_val),
              TEST: (data.x_test, data.y_test)}
    inputs = {}
    for context, (x, y) in splits.items():
        if len(x) == 0:
            continue
        dataset = _dataset(f"{base}-{SUFFIX[context]}", source, data.fingerprint or "unknown",
                           x, y)
        inputs[context] = DatasetInput(dataset, [InputTag(DATASET_CONTEXT, context)])
    return SplitDatasets(inputs)
