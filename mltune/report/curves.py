"""The report's learning curves: the top trials' metric and losses by epoch, its data first
(``curves_info``), then the drawing, as every figure of the report (``plots``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from mltune.report.plots import figure, whole_ticks
from mltune.report.trials import LOSSES, METRIC, Curves


@dataclass(frozen=True)
class CurvesInfo:
    metric: str
    losses: list[str]  # the losses the trials log, drawn right
    curves: Curves  # trial -> metric -> [(epoch, value)], in rank order


def curves_info(histories: Curves, metric: str, frame: pd.DataFrame) -> CurvesInfo:
    """The top trials' curves, with the losses that some trial of the table logged."""
    return CurvesInfo(metric, [loss for loss in LOSSES if METRIC + loss in frame], histories)


def draw_curves(info: CurvesInfo) -> Figure:
    """Per-epoch curves of the top trials: the metric left, the losses right."""
    metric, losses = info.metric, info.losses
    fig = figure(10, 4)
    fig.subplots_adjust(wspace=0.25)
    left, right = fig.subplots(1, 2)
    colours = [f"C{i}" for i in range(10)]
    for i, (trial, curves) in enumerate(info.curves.items()):
        colour = colours[i % len(colours)]
        steps, values = zip(*curves.get(metric, []), strict=True) if curves.get(metric) \
            else ((), ())
        left.plot(steps, values, marker="o", markersize=3, color=colour, label=f"trial {trial}")
        for loss, style in zip(losses, ("-", "--", ":"), strict=False):
            if curves.get(loss):
                steps, values = zip(*curves[loss], strict=True)
                right.plot(steps, values, style, marker=".", color=colour,
                           label=f"trial {trial} {loss}")
    left.set_title(f"{metric} per epoch, top {len(info.curves)} trials", y=1.0)
    right.set_title(" / ".join(f"{loss} ({style})" for loss, style in
                               zip(losses, ("solid", "dashed", "dotted"), strict=False)),
                    y=1.0)
    for ax, label in ((left, metric), (right, "loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        whole_ticks(ax, [step for curves in info.curves.values() for points in curves.values()
                          for step, _ in points])
    left.legend(fontsize=8, loc="best")
    return fig
