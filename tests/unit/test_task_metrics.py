"""Each task declares its metrics and which way each is better; a spec's mode follows that
declaration (``mode:`` overrides), never a guess from the metric's name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import mltune
from mltune.core.terms import Direction
from mltune.models.network import network_of
from mltune.tasks import get_task
from mltune.tasks.base import logged_metrics

# per task (and tabular problem): a spec's data, and what score() is given
CLASSES = {"outputs": torch.randn(12, 3), "targets": torch.arange(12) % 3, "meta": {}}
SERIES_META = {"scale": [2.0], "mean": [1.0], "val_naive_rmse": 0.5, "mase_scale": 0.7,
               "problem": None}


def _cases(series_csv: str) -> dict[str, tuple[dict[str, object], dict]]:
    binary = {"outputs": torch.randn(12, 2), "targets": torch.arange(12) % 2,
              "meta": {"problem": "classification", "classes": [0, 1]}}
    return {
        "image": ({"task": "image"}, CLASSES),
        "text": ({"task": "text", "data.source": series_csv, "data.text": "text",
                  "data.target": "label"}, CLASSES),
        "tabular-binary": ({"task": "tabular", "data.source": "sklearn:breast_cancer"}, binary),
        "tabular-regression": ({"task": "tabular", "data.source": "sklearn:diabetes"},
                               {"outputs": torch.randn(12, 1), "targets": torch.randn(12, 1),
                                "meta": {"problem": "regression"}}),
        "timeseries": ({"task": "timeseries", "data.source": series_csv, "data.target": "sales",
                        "data.horizon": 4, "space.window": 8},
                       {"outputs": torch.randn(12, 4), "targets": torch.randn(12, 4),
                        "meta": SERIES_META}),
    }


@pytest.fixture()
def series_csv(tmp_path) -> str:
    """A file every task can read: a series to forecast and texts with labels."""
    n = 240
    frame = pd.DataFrame({"sales": np.sin(np.arange(n) / 5.0) + 0.01 * np.arange(n),
                          "text": [f"word{i % 7} other{i % 3}" for i in range(n)],
                          "label": ["a", "b"] * (n // 2)})
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("case", ["image", "text", "tabular-binary", "tabular-regression",
                                  "timeseries"])
def test_the_declared_metrics_are_what_a_trial_logs(series_csv, case):
    overrides, scored = _cases(series_csv)[case]
    spec = mltune.load_spec(None, overrides)
    task = get_task(spec.task).for_data(spec.data)
    keys = task.score(scored["outputs"], scored["targets"], scored["meta"]).keys()
    declared = task.metrics(spec.data)
    assert list(declared) == list(logged_metrics(dict.fromkeys(keys, Direction.MAX)))
    assert declared["train_loss"] is declared["val_loss"] is Direction.MIN
    assert spec.mode == declared[spec.metric].value  # the default mode is the declared one


@pytest.mark.parametrize(("case", "metric", "direction"), [
    ("tabular-regression", "val_rmse", Direction.MIN),
    ("tabular-regression", "val_r2", Direction.MAX),
    ("timeseries", "val_rmse", Direction.MIN), ("timeseries", "val_mase", Direction.MIN),
    ("timeseries", "val_smape", Direction.MIN), ("timeseries", "val_skill", Direction.MAX),
    ("tabular-binary", "val_roc_auc", Direction.MAX), ("image", "val_f1_macro", Direction.MAX),
])
def test_a_metric_defaults_to_its_declared_mode(series_csv, case, metric, direction):
    overrides, _ = _cases(series_csv)[case]
    spec = mltune.load_spec(None, {**overrides, "metric": metric})
    assert spec.direction is direction


def test_mode_in_the_spec_overrides_the_declared_direction(series_csv):
    overrides, _ = _cases(series_csv)["timeseries"]
    spec = mltune.load_spec(None, {**overrides, "metric": "val_rmse", "mode": "max"})
    assert (spec.metric, spec.direction) == ("val_rmse", Direction.MAX)


def test_a_users_network_inherits_its_tasks_metrics():
    task = get_task("tabular").for_data(mltune.load_spec(None, {"task": "tabular"}).data)
    spec = mltune.load_spec(None, {"task": "tabular"})
    mine = task.with_network(network_of("nets.py:build"))
    assert mine.network_in_use.user
    assert mine.metrics(spec.data) == task.metrics(spec.data)
