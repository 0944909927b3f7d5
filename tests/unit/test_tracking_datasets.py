"""A search's splits as MLflow dataset entities: names, digest, source, schema, rows."""

from __future__ import annotations

import json

import pytest
import torch

from mltune.data.splits import TaskData
from mltune.tracking.datasets import SplitDatasets, base_name, split_datasets


@pytest.mark.parametrize("source, name", [
    ("sklearn:digits", "digits"), ("examples/data/sales.csv", "sales"),
    ("${DATA_DIR}/reviews.csv.gz", "reviews"), ("photos/", "photos"), ("C:/data/x.parquet", "x"),
])
def test_split_names_come_from_the_source_as_written(source, name):
    assert base_name(source) == name


def data(rows: tuple[int, int, int]) -> TaskData:
    x = [torch.zeros(n, 1, 8, 8) for n in rows]
    y = [torch.zeros(n, dtype=torch.int64) for n in rows]
    return TaskData(x[0], y[0], x[1], y[1], x[2], y[2], fingerprint="f00d")


def test_each_split_is_one_dataset_digest_the_fingerprint_source_as_written():
    splits = split_datasets("${DATA}/digits.csv", data((70, 20, 10)))
    assert [(i.dataset.name, i.dataset.digest, [(t.key, t.value) for t in i.tags])
            for i in splits.for_search] == [
        ("digits-train", "f00d", [("mlflow.data.context", "training")]),
        ("digits-validation", "f00d", [("mlflow.data.context", "validation")]),
        ("digits-test", "f00d", [("mlflow.data.context", "test")])]
    train = splits.for_trial[0].dataset
    assert [i.dataset.name for i in splits.for_trial] == ["digits-train", "digits-validation"]
    assert (train.source_type, json.loads(train.source)) == ("local", {"uri": "${DATA}/digits.csv"})
    assert json.loads(train.profile) == {"num_rows": 70, "features_shape": [1, 8, 8],
                                         "targets_shape": []}
    spec = json.loads(train.schema)["mlflow_tensorspec"]
    assert json.loads(spec["features"])[0]["tensor-spec"] == {"dtype": "float32",
                                                              "shape": [-1, 1, 8, 8]}


def test_metrics_link_to_the_split_they_were_measured_on():
    splits = split_datasets("sklearn:digits", data((70, 20, 10)))
    assert splits.linked("val_accuracy") == ("digits-validation", "f00d")
    assert splits.linked("train_loss") == ("digits-train", "f00d")
    assert splits.linked("best_val_accuracy") is None
    assert SplitDatasets.from_inputs(splits.for_search).linked("val_loss") == (
        "digits-validation", "f00d")
    assert json.loads(splits.for_trial[0].dataset.source) == {"uri": "sklearn:digits"}
