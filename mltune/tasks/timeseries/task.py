"""Forecasting one series with a recurrent network: ``window`` past steps -> ``horizon`` steps.

The series is read and checked once (``series.py`` states the rules), split in time order
(train, then validation, then test: the last two are the last segments of the series), and
scaled with statistics of the train segment only. A window's inputs may reach back into the
segment before its targets (that past is known when forecasting); its targets never cross a
segment boundary.

Windows of every size a trial may sample are cut once, ``data.max_window`` steps long (by
default the largest ``window`` of the space); each network reads its own last ``window`` steps.
So the training loop stays generic, and every trial, whatever its window, is scored on the same
validation targets as every other trial and as the naive forecast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.preprocessing import StandardScaler
from torch import nn

from mltune.core.errors import DataError, SpecError
from mltune.core.terms import Direction
from mltune.data.io import read_table
from mltune.data.splits import TaskData, fingerprint_arrays
from mltune.models.description import TimeseriesData
from mltune.models.families import SIZE
from mltune.spec.model import DataSpec
from mltune.spec.options import column_list, frequency, optional_integer, prefixed, string
from mltune.spec.rules import OneOf, Rule, is_number, span_of
from mltune.spec.space import is_distribution
from mltune.spec.tasks import TASKS
from mltune.tasks.base import Params, Task, logged_metrics
from mltune.tasks.inputs import not_empty
from mltune.tasks.timeseries.series import FILLS, Columns, future, prepare
from mltune.tasks.timeseries.units import times_around, unscale, unscale_rows
from mltune.training.losses import LOSSES, make_loss

FORECAST_LOSSES = ["mse", "mae", "huber"]
DEFAULT_WINDOWS = [12, 24, 48]
DEFAULT_PARAMS = {"window": 24, "cell": "lstm", "num_layers": 1, "hidden_size": 64,
                  "dropout": 0.0, "activation": "relu", "weight_init": "default",
                  "loss": "mse", "learning_rate": 3e-3, "weight_decay": 1e-6,
                  "optimizer": "adam", "batch_size": 32}
# what ``score`` returns, and which way each is better (the skill over the naive forecast
# is a score; every other one an error)
SCORES = {"rmse": Direction.MIN, "mae": Direction.MIN, "smape": Direction.MIN,
          "mase": Direction.MIN, "naive_rmse": Direction.MIN, "skill": Direction.MAX}
FORECAST = "forecast"
STEP = "step"


def space_upper_bound(value: Any, path: str) -> int:
    """The largest window a YAML-form ``window`` can give, rounded as the network rounds it."""
    if is_distribution(value):
        (name, args), = value.items()
        if name in ("choice", "pchoice"):
            options = args if name == "choice" else [pair[1] for pair in args]
            return max(space_upper_bound(option, path) for option in options)
        high = span_of(name, args).high
        if high is not None:
            return int(round(high))
    elif is_number(value):
        return int(round(value))
    raise SpecError(f"{path}: {value!r} is not allowed; expected a whole number or a bounded "
                    "distribution (choice, quniform, randint, uniform)")


def segment_sizes(n: int, data: DataSpec) -> tuple[int, int, int]:
    """Rows of the train, validation and test segments, in time order."""
    n_val, n_test = round(data.val_size * n), round(data.test_size * n)
    return n - n_val - n_test, n_val, n_test


def rows_needed(data: DataSpec, window: int, horizon: int) -> int:
    """The shortest series whose segments fit: validation and test at least one horizon each,
    train at least one window followed by one horizon."""
    n = window + 3 * horizon
    while True:
        n_train, n_val, n_test = segment_sizes(n, data)
        if n_val >= horizon and n_test >= horizon and n_train >= window + horizon:
            return n
        n += 1


def _time_text(value: Any) -> Any:
    """A time as JSON holds it: ISO text for timestamps (a date alone at midnight), an int for
    steps."""
    if not isinstance(value, pd.Timestamp):
        return int(value)
    if value.tz is None and value == value.normalize():
        return value.date().isoformat()
    return value.isoformat()


class TimeseriesTask(Task):
    name = "timeseries"
    default_metric = "val_rmse"
    data_options = ("covariates", "max_window", "fill", "freq", "encoding")
    random_split = False  # cut by time
    family = "forecaster"

    # -- the spec -------------------------------------------------------------------------
    def resolve_data(self, data: DataSpec, space: Mapping[str, Any]) -> DataSpec:
        """Require target and horizon, check the options, and size the windows from the
        space's largest ``window``."""
        if not data.target:
            raise SpecError("data.target: required for task 'timeseries'; name the column to "
                            "forecast")
        if data.horizon is None:
            raise SpecError("data.horizon: required for task 'timeseries'; the number of steps "
                            "to forecast, e.g. 12")
        if data.time in (data.target, STEP, FORECAST):
            raise SpecError(f"data.time: {data.time!r} is not allowed: it is the target or the "
                            f"name of an output column ({STEP}, {FORECAST}); rename it")
        options, fields = dict(data.options), prefixed(data.options, "data")
        options["covariates"] = _covariates(column_list(fields, "data.covariates"), data)
        options["fill"] = string(fields, "data.fill", "none", FILLS)
        options["freq"] = frequency(fields, "data.freq")
        if options["freq"] is not None and not data.time:
            raise SpecError("data.freq: given without data.time; the step of a series needs "
                            "its time column")
        options["max_window"] = _max_window(optional_integer(fields, "data.max_window", 1), space)
        return replace(data, options=options)

    def metrics(self, data: DataSpec) -> dict[str, Direction]:
        return logged_metrics(SCORES)

    def builtin_space(self) -> dict[str, Any]:
        return {
            "window": {"choice": DEFAULT_WINDOWS},
            "cell": {"choice": ["lstm", "gru", "rnn"]},
            "num_layers": {"quniform": [1, 2, 1]},
            "hidden_size": {"choice": [32, 64, 128]},
            "dropout": {"uniform": [0.0, 0.3]},
            "activation": {"choice": ["relu", "gelu", "tanh"]},
            "weight_init": {"choice": ["default", "xavier_uniform", "orthogonal"]},
            "loss": {"choice": FORECAST_LOSSES},
            "learning_rate": {"loguniform": [3.0e-4, 1.0e-2]},
            "weight_decay": {"loguniform": [1.0e-7, 1.0e-3]},
            "optimizer": {"choice": [{"name": "adam"}, {"name": "adamw"},
                                     {"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
            "batch_size": {"choice": [32, 64, 128]},
        }

    def builtin_params(self) -> dict[str, Any]:
        return dict(DEFAULT_PARAMS)

    # -- the data -------------------------------------------------------------------------
    def load(self, data: DataSpec, seed: int) -> TaskData:
        """Read and check the series, split it in time, scale it by the train segment, and
        cut every window once (``seed`` is unused: nothing here is random)."""
        if "max_window" not in data.options:  # built without load_spec: resolve here
            data = self.resolve_data(data, self.default_space())
        options = data.options
        horizon, window = int(data.horizon), int(options["max_window"])
        columns = Columns(data.target, tuple(options["covariates"]), data.time)
        text = string(prefixed(options, "data"), "data.encoding", "utf-8")
        frame = read_table(data.source, encoding=text)
        if frame.empty:
            raise DataError(f"data.source: {data.source!r} holds no rows")
        series = prepare(frame, columns, fill=options["fill"], freq=options["freq"],
                         training=True)
        values = series.values
        n = len(values)
        needed = rows_needed(data, window, horizon)
        if n < needed:
            raise DataError(
                f"data.source: the series has {n} rows; with horizon {horizon}, windows up to "
                f"{window} steps, val_size {data.val_size:g} and test_size {data.test_size:g} "
                f"it needs at least {needed} (validation and test one horizon each, training "
                "one window plus one horizon)")
        n_train, n_val, n_test = segment_sizes(n, data)
        scaler = StandardScaler().fit(values[:n_train])
        scaled = torch.from_numpy(scaler.transform(values).astype(np.float32))
        # windows[k] covers rows k .. k+window+horizon-1; its targets start at row k + window
        windows = scaled.unfold(0, window + horizon, 1)
        x_all = windows[:, :, :window].transpose(1, 2)  # (N, window, features), a view
        y_all = windows[:, 0, window:]  # (N, horizon)

        def cut(first_target: int, end: int) -> slice:
            return slice(first_target - window, end - horizon - window + 1)

        train = cut(window, n_train)
        val = cut(n_train, n_train + n_val)
        test = cut(n_train + n_val, n)
        target = values[:, 0]
        meta = {
            "target": data.target, "covariates": list(columns.covariates), "time": data.time,
            "freq": series.freq, "fill": options["fill"], "horizon": horizon,
            "max_window": window, "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
            "val_start": None if series.times is None else _time_text(series.times[n_train]),
            "val_rows": n_val,
            "val_naive_rmse": naive_rmse(target, n_train, n_train + n_val, horizon),
            "test_naive_rmse": naive_rmse(target, n_train + n_val, n, horizon),
            "mase_scale": float(np.mean(np.abs(np.diff(target[:n_train])))) or 1.0,
            "source": data.source,
        }
        stamps = [] if series.times is None else [np.asarray(
            series.times.asi8 if isinstance(series.times, pd.DatetimeIndex) else series.times)]
        return TaskData(x_all[train], y_all[train], x_all[val], y_all[val], x_all[test],
                        y_all[test], meta=meta, fingerprint=fingerprint_arrays(values, *stamps))

    # -- the network and its training -----------------------------------------------------
    def loss_rule(self) -> Rule:
        return OneOf.catalog(LOSSES, only=FORECAST_LOSSES, suits="task 'timeseries'")

    def task_rules(self) -> dict[str, Rule]:
        return {"window": SIZE}  # the steps a network reads: what the data is cut for

    def describe_data(self, meta: Mapping[str, Any],
                      params: Params | None = None) -> TimeseriesData:
        window = self.with_defaults(params or {})["window"]
        return TimeseriesData(window=int(round(window)), max_window=int(meta["max_window"]),
                              features=1 + len(meta["covariates"]),
                              horizon=int(meta["horizon"]))

    def build_model(self, params: Params, meta: Mapping[str, Any]) -> nn.Module:
        """The network; one that does not say how many steps it reads (a user's) is given
        its ``window`` as ``network.window``, the rows its served model asks for."""
        model = super().build_model(params, meta)
        if not isinstance(getattr(model, "window", None), int):
            model.window = self.describe_data(meta, params).window
        return model

    def make_loss(self, params: Params, data: TaskData) -> Callable[..., torch.Tensor]:
        name = str(self.with_defaults(params)["loss"])
        if name not in FORECAST_LOSSES:
            raise SpecError(f"loss: {name!r} does not suit task 'timeseries'; available: "
                            f"{', '.join(FORECAST_LOSSES)}")
        return make_loss(name)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor,
              meta: Mapping[str, Any]) -> dict[str, float]:
        """Errors in the target's own units on the validation windows, and the skill over
        the naive last-value forecast of the same windows."""
        predicted = unscale(outputs.float().cpu().numpy(), meta)
        actual = unscale(targets.float().cpu().numpy(), meta)
        error = predicted - actual
        rmse = float(np.sqrt(np.mean(error ** 2)))
        mae = float(np.mean(np.abs(error)))
        denominator = np.abs(predicted) + np.abs(actual)
        ratio = np.divide(2 * np.abs(error), denominator, out=np.zeros_like(denominator),
                          where=denominator > 0)
        naive = meta["val_naive_rmse"]
        return {"rmse": rmse, "mae": mae, "smape": float(100 * np.mean(ratio)),
                "mase": mae / meta["mase_scale"], "naive_rmse": naive,
                "skill": 1.0 - rmse / max(naive, 1e-12)}

    # -- the served model -----------------------------------------------------------------
    def input_example(self, data: TaskData) -> Any:
        """The last validation window's inputs, as the user's rows."""
        meta = data.meta
        values = unscale_rows(data.x_val[-1].cpu().numpy(), meta)
        frame = pd.DataFrame(values, columns=[meta["target"], *meta["covariates"]])
        times = times_around(meta, meta["val_rows"] - meta["horizon"] - len(frame), len(frame))
        if times is not None:
            frame.insert(0, meta["time"], [_time_text(t) for t in times])
        return frame

    def signature(self, data: TaskData) -> ModelSignature:
        # No input schema: timestamps arrive as text over HTTP and as datetimes from Python,
        # and extra columns are fine; ``predict`` checks the rows by the training rules.
        meta = data.meta
        columns = [ColSpec("long", STEP)]
        if meta["time"] is not None:
            columns.append(ColSpec("long" if isinstance(meta["freq"], int) else "datetime",
                                   meta["time"]))
        columns.append(ColSpec("double", FORECAST))
        return ModelSignature(inputs=None, outputs=Schema(columns))

    def predict(self, model: nn.Module, meta: Mapping[str, Any], model_input: Any) -> pd.DataFrame:
        """The latest rows of the series -> the next ``horizon`` values, in original units."""
        if isinstance(model_input, Mapping):
            model_input = pd.DataFrame(model_input)
        if not isinstance(model_input, pd.DataFrame):
            raise DataError(f"input: expected a DataFrame of the latest rows with columns "
                            f"{', '.join(_input_columns(meta))}; got {type(model_input).__name__}")
        not_empty(len(model_input))
        window = model.window
        columns = Columns(meta["target"], tuple(meta["covariates"]), meta["time"])
        series = prepare(model_input, columns, fill=meta["fill"], freq=meta["freq"],
                         training=False)  # every row sent is checked, as in training
        if len(series.values) < window:
            raise DataError(f"input: {len(series.values)} row(s) given; this model reads the "
                            f"latest {window} rows of {', '.join(_input_columns(meta))}")
        recent = (series.values[-window:] - meta["mean"]) / meta["scale"]
        with torch.no_grad():
            model.eval()
            outputs = model(torch.tensor(recent, dtype=torch.float32)[None])
        forecast = unscale(outputs.numpy(), meta)[0]
        frame = pd.DataFrame({STEP: np.arange(1, len(forecast) + 1, dtype=np.int64)})
        if series.times is not None:
            frame[meta["time"]] = future(series.times[-1], series.freq, len(forecast))
        frame[FORECAST] = forecast.astype(np.float64)
        return frame

    def best_trial_figures(self, network: nn.Module, params: Params,
                           data: TaskData) -> dict[str, Any]:
        from mltune.tasks.timeseries.plot import forecast_figure

        return {"forecast.png": forecast_figure(network, data)}


def _covariates(covariates: list[str], data: DataSpec) -> list[str]:
    """``data.covariates``: distinct columns other than the target and time."""
    clash = [c for c in covariates if c in (data.target, data.time) or covariates.count(c) > 1]
    if clash:
        raise SpecError(f"data.covariates: {clash[0]!r} is listed twice or is the target or "
                        "time column; expected other numeric columns")
    return covariates


def _max_window(given: int | None, space: Mapping[str, Any]) -> int:
    """``data.max_window``: the steps cut for every trial, by default the largest window."""
    largest = space_upper_bound(space.get("window", DEFAULT_PARAMS["window"]), "space.window")
    if given is None:
        return largest
    if largest > given:
        raise SpecError(f"space.window: goes up to {largest}, beyond data.max_window={given}; "
                        "lower the window or raise data.max_window")
    return given


def _input_columns(meta: Mapping[str, Any]) -> list[str]:
    return [c for c in [meta["time"], meta["target"], *meta["covariates"]] if c]


def naive_rmse(target: np.ndarray, first: int, end: int, horizon: int) -> float:
    """RMSE of repeating the last known value over each window whose targets lie in
    ``[first, end)``: the baseline every trial must beat (``val_skill > 0``)."""
    starts = np.arange(first, end - horizon + 1)
    actual = target[starts[:, None] + np.arange(horizon)]
    return float(np.sqrt(np.mean((actual - target[starts - 1][:, None]) ** 2)))


TASKS.add("timeseries", TimeseriesTask())
