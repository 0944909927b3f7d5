"""The forecast-against-actual figure of a forecaster over the validation segment.

Forecasts are drawn from origins one horizon apart, so together they cover the segment the way
a user would have used the model; the naive last-value forecast of the same origins is dashed.
Drawn on a bare Agg canvas: no pyplot state, no display needed.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from mltune.data.splits import TaskData
from mltune.tasks.timeseries.units import times_around, unscale
from mltune.training.fit import predict_batches


def forecast_figure(network: nn.Module, data: TaskData) -> Figure:
    """Actual values (with the preceding window as context), forecasts and the naive one."""
    meta = data.meta
    horizon, context = meta["horizon"], meta["max_window"]
    x_val = data.x_val.cpu()
    with torch.no_grad():
        predicted = unscale(predict_batches(network.cpu(), x_val).numpy(), meta)
    actual = unscale(data.y_val.cpu().numpy(), meta)
    segment = np.concatenate([actual[:, 0], actual[-1, 1:]])  # every validation row once
    before = unscale(x_val[0, :, 0].numpy(), meta)
    times = times_around(meta, -context, context + len(segment))
    axis = np.arange(-context, len(segment)) if times is None else times

    figure = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(axis[:context], before, color="0.6", label="before validation")
    ax.plot(axis[context:], segment, color="black", label="actual")
    origins = list(range(0, len(actual), horizon))
    if origins[-1] != len(actual) - 1:
        origins.append(len(actual) - 1)  # the last window reaches the segment's end
    for n, origin in enumerate(origins):
        span = axis[context + origin:context + origin + horizon]
        steps = len(span)
        ax.plot(span, predicted[origin, :steps], color="tab:blue",
                label="forecast" if n == 0 else None)
        last = before[-1] if origin == 0 else segment[origin - 1]
        ax.plot(span, np.full(steps, last), color="tab:orange", linestyle="--",
                label="naive (last value)" if n == 0 else None)
    rmse = float(np.sqrt(np.mean((predicted - actual) ** 2)))
    naive = meta["val_naive_rmse"]
    ax.set_title(f"{meta['target']}: forecast vs actual over the validation segment "
                 f"(horizon {horizon}; rmse {rmse:.4g}, naive {naive:.4g}, "
                 f"skill {1 - rmse / max(naive, 1e-12):.3f})")
    ax.set_xlabel(meta["time"] or "step from the validation start")
    ax.set_ylabel(meta["target"])
    ax.legend(loc="best")
    return figure
