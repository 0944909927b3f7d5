"""The report's figures: for each, its data first (a plain dataclass), then the drawing.

``*_info`` functions turn the trials table into what a figure shows — points, positions,
ticks, the best trial — and can be tested without pixels; ``draw_*`` functions draw that with
matplotlib's object API (Agg canvas, no pyplot state) and return a ``Figure``; saving is the
caller's job. Another renderer (an interactive page, a terminal) would reuse the data as is.
In the parallel coordinates yellow is better (the colour map is reversed for ``min``); in the
slices, colour is the trial number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from mltune.report.trials import LOSSES, METRIC, OBJECTIVE, PARAM, Curves


@dataclass(frozen=True)
class Points:
    x: list[float]
    y: list[float]


@dataclass(frozen=True)
class HistoryInfo:
    """The optimisation history: each trial's value by trial number, and the best so far."""

    metric: str
    mode: str
    trials: list[int]  # every trial's number: the x axis
    finished: Points  # finished trials and their final value
    best_so_far: list[float]  # at each finished trial
    best: tuple[int, float] | None  # the first trial that reached the best value, and the value
    partial: Points  # pruned or running trials: the value so far
    failed: Points  # trials without a value, drawn at the lowest value shown (0 when none)


@dataclass(frozen=True)
class ImportanceInfo:
    metric: str
    trials: int  # the finished trials the estimate was made from
    names: list[str]  # the most important first
    values: list[float]


@dataclass(frozen=True)
class Axis:
    """One axis of the parallel coordinates: each line's position on it, and its ticks."""

    name: str
    values: list[float]  # in [0, 1]; nan: the trial did not use the param
    ticks: list[float]
    labels: list[str]


@dataclass(frozen=True)
class ParallelInfo:
    metric: str
    mode: str
    axes: list[Axis]  # one per param, then the metric
    values: list[float]  # each line's (trial's) metric: its colour


@dataclass(frozen=True)
class Slice:
    """One panel of the slices: the metric against one param's value, trials that used it."""

    param: str
    categorical: bool
    log: bool  # drawn from a log distribution: a log axis where every value is > 0
    x: list[float]  # the value; for a categorical param, its level's position
    y: list[float]
    trials: list[int]  # colour
    levels: list[str]  # a categorical param's levels, in axis order
    best: int | None  # index of the best point (ringed)


@dataclass(frozen=True)
class SlicesInfo:
    metric: str
    mode: str
    total: int  # trials in the table, scored or not
    trial_range: tuple[float, float]  # of the colour scale
    slices: list[Slice]


@dataclass(frozen=True)
class CurvesInfo:
    metric: str
    losses: list[str]  # the losses the trials log, drawn right
    curves: Curves  # trial -> metric -> [(epoch, value)], in rank order


def figure(width: float, height: float, **margins: float) -> Figure:
    """A figure on an Agg canvas with fixed margins (inches from the edges).

    Fixed margins rather than constrained layout: the layout engine draws every figure twice,
    which was half of the report's time.
    """
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    inches = {"left": 0.8, "right": 0.2, "top": 0.45, "bottom": 0.6, **margins}
    fig.subplots_adjust(left=inches["left"] / width, right=1 - inches["right"] / width,
                        top=1 - inches["top"] / height, bottom=inches["bottom"] / height)
    return fig


def _cmap(mode: str) -> str:
    return "viridis" if mode == "max" else "viridis_r"


def _floats(values: Any) -> list[float]:
    return np.asarray(values, dtype=float).tolist()


def history_info(frame: pd.DataFrame, metric: str, mode: str) -> HistoryInfo:
    """Every trial of the table: finished, partial (pruned, running) or failed."""
    ordered = frame.sort_values("trial")
    values, trials = ordered[OBJECTIVE], ordered["trial"]
    final = values.notna() & (ordered["status"] == "FINISHED")
    partial = values.notna() & ~final
    failed = values.isna()
    best = values[final].cummax() if mode == "max" else values[final].cummin()
    top = None
    if len(best):
        first = trials[(best == best.iloc[-1]).idxmax()]
        top = (int(first), float(best.iloc[-1]))
    low = float(values.min()) if values.notna().any() else 0.0
    return HistoryInfo(metric, mode, [int(t) for t in trials],
                       Points(_floats(trials[final]), _floats(values[final])), _floats(best),
                       top, Points(_floats(trials[partial]), _floats(values[partial])),
                       Points(_floats(trials[failed]), [low] * int(failed.sum())))


def draw_history(info: HistoryInfo) -> Figure:
    fig = figure(8, 4)
    ax = fig.add_subplot()
    ax.scatter(info.finished.x, info.finished.y, s=28, color="#4c72b0", zorder=3,
               label=f"trial's {info.metric}")
    if info.best is not None:
        ax.step(info.finished.x, info.best_so_far, where="post", color="#dd8452", linewidth=2,
                label="best so far")
        trial, value = info.best
        right = trial > (min(info.trials) + max(info.trials)) / 2
        ax.annotate(f"best: trial {trial}\n{value:.4g}", (trial, value),
                    textcoords="offset points",
                    xytext=(-8 if right else 8, -24 if info.mode == "max" else 10),
                    ha="right" if right else "left", fontsize=9)
    if info.partial.x:
        ax.scatter(info.partial.x, info.partial.y, s=34, facecolors="none",
                   edgecolors="#8c8c8c", zorder=3, label="pruned / running: value so far")
    if info.failed.x:
        ax.scatter(info.failed.x, info.failed.y, marker="x", color="#c44e52", s=36, zorder=3,
                   label="failed (no value)")
    ax.set_xlabel("trial")
    ax.set_ylabel(info.metric)
    ax.set_title(f"Optimisation history ({info.mode} {info.metric})", y=1.0)
    ax.grid(alpha=0.3)
    _whole_ticks(ax, info.trials)
    ax.legend(loc="best", fontsize=9)
    return fig


def _whole_ticks(ax: Any, values: Any) -> None:
    """Trials and epochs are whole numbers: tick them so, also for one or two of them."""
    values = [v for v in values if pd.notna(v)]
    if values and max(values) - min(values) < 10:
        ax.set_xticks(range(int(min(values)), int(max(values)) + 1))
        ax.set_xlim(min(values) - 0.5, max(values) + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _axis(name: str, column: pd.Series, categorical: bool, log: bool) -> Axis:
    """Values scaled to [0, 1] for a parallel-coordinates axis, with tick positions/labels."""
    if categorical:
        levels = sorted(column.dropna().astype(str).unique())
        spots = {level: i / max(len(levels) - 1, 1) for i, level in enumerate(levels)}
        if len(levels) == 1:
            spots = {levels[0]: 0.5}
        scaled = column.map(lambda v: spots.get(str(v), np.nan) if pd.notna(v) else np.nan)
        return Axis(name, _floats(scaled), list(spots.values()), list(spots))
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    present = values[~np.isnan(values)]
    if present.size == 0:  # a conditional param no trial shown here used
        return Axis(name, values.tolist(), [], [])
    shown = np.log10(values) if log and (present > 0).all() else values
    low, high = np.nanmin(shown), np.nanmax(shown)
    span = high - low
    scaled = (shown - low) / span if span > 0 else np.where(np.isnan(shown), np.nan, 0.5)
    ends = [np.nanmin(values), np.nanmax(values)]
    ticks = [0.0, 1.0] if span > 0 else [0.5]
    return Axis(name, _floats(scaled), ticks,
                [f"{v:.3g}" for v in (ends if span > 0 else ends[:1])])


def parallel_info(frame: pd.DataFrame, params: Sequence[str], categorical: set[str],
                  log_scale: set[str], metric: str, mode: str) -> ParallelInfo:
    """One line per trial with a value, across every hyperparameter and the metric."""
    scored = frame[frame[OBJECTIVE].notna()]
    axes = [_axis(name, scored[PARAM + name], name in categorical, name in log_scale)
            for name in params]
    axes.append(_axis(metric, scored[OBJECTIVE], False, False))
    return ParallelInfo(metric, mode, axes, _floats(scored[OBJECTIVE]))


def draw_parallel(info: ParallelInfo) -> Figure:
    names = [axis.name for axis in info.axes]
    fig = figure(max(6.0, 1.1 * len(names) + 1.5), 4.8, left=0.3, right=1.3, bottom=0.7)
    ax = fig.add_subplot()
    if not info.values:
        ax.text(0.5, 0.5, "no finished trial yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    matrix = np.column_stack([np.asarray(axis.values, dtype=float) for axis in info.axes])
    values = np.asarray(info.values, dtype=float)
    low, high = np.nanmin(values), np.nanmax(values)
    colours = _mappable(low, high, info.mode).to_rgba(values)
    order = np.argsort(values if info.mode == "max" else -values)  # best drawn last, on top
    xs = np.arange(len(names))
    for i in order:
        ax.plot(xs, matrix[i], color=colours[i], alpha=0.8, linewidth=1.4, marker="o",
                markersize=3)
    for x, axis in zip(xs, info.axes, strict=True):
        ax.axvline(x, color="#999999", linewidth=0.8, zorder=0)
        for spot, label in zip(axis.ticks, axis.labels, strict=True):
            ax.text(x + 0.04, spot, label, fontsize=7, va="center", ha="left", clip_on=False)
    ax.set_xticks(xs, [n.replace(".", ".\n") for n in names], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(names) - 0.4)
    ax.set_ylim(-0.06, 1.06)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"Parallel coordinates of {len(values)} finished trials (yellow = best "
                 f"{info.metric}); a gap in a line: a param that trial did not use", fontsize=10,
                 y=1.0)
    fig.colorbar(_mappable(low, high, info.mode), ax=ax, label=info.metric, pad=0.01,
                 fraction=0.03)
    return fig


def _mappable(low: float, high: float, mode: str) -> ScalarMappable:
    return ScalarMappable(Normalize(low, high if high > low else low + 1e-12), _cmap(mode))


def importance_info(values: pd.Series, metric: str, trials: int) -> ImportanceInfo:
    """An estimate's importances, the most important first."""
    shown = values.sort_values()[::-1]
    return ImportanceInfo(metric, trials, [str(n) for n in shown.index], _floats(shown))


def draw_importance(info: ImportanceInfo) -> Figure:
    """Horizontal bars, the most important hyperparameter on top."""
    label_width = min(0.35 + 0.09 * max(map(len, info.names)), 3.0)  # inches
    fig = figure(7, 0.35 * len(info.names) + 1.4, left=label_width)
    ax = fig.add_subplot()
    names, values = info.names[::-1], info.values[::-1]  # bars are drawn from the bottom
    ax.barh(names, values, color="#4c72b0")
    for y, value in enumerate(values):
        ax.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    ax.set_xlabel("importance (share of the forest's impurity decrease)")
    ax.set_xlim(0, max(max(values) * 1.18, 0.05))
    ax.set_title(f"Hyperparameter importance for {info.metric} ({info.trials} finished "
                 "trials)", fontsize=10, y=1.0)
    ax.grid(axis="x", alpha=0.3)
    return fig


def slices_info(frame: pd.DataFrame, params: Sequence[str], categorical: set[str],
                log_scale: set[str], metric: str, mode: str) -> SlicesInfo:
    """For each param, the trials that used it and have a value."""
    trials = frame["trial"].to_numpy(dtype=float)
    bounds = (float(np.nanmin(trials)), float(np.nanmax(trials))) if len(trials) else (0.0, 1.0)
    values = frame[OBJECTIVE]
    slices = []
    for param in params:
        column = frame[PARAM + param]
        keep = (column.notna() & values.notna()).to_numpy()
        used, y = column[keep], _floats(values[keep])
        levels: list[str] = []
        if param in categorical and keep.any():
            levels = sorted(used.astype(str).unique())
            x = _floats(used.astype(str).map({level: i for i, level in enumerate(levels)}))
        else:
            x = _floats(pd.to_numeric(used, errors="coerce"))
        best = int(np.argmax(y) if mode == "max" else np.argmin(y)) if y else None
        slices.append(Slice(param, param in categorical, param in log_scale, x, y,
                            [int(t) for t in frame["trial"][keep]], levels, best))
    return SlicesInfo(metric, mode, len(frame), bounds, slices)


def draw_slices(info: SlicesInfo, columns: int = 4) -> Figure:
    """One panel per hyperparameter: the metric against its value, colour = trial number.

    One figure rather than one per param: a figure's fixed cost (layout, PNG encoding)
    dominates a small panel's, and the panels read best side by side.
    """
    count = max(len(info.slices), 1)
    cols = min(columns, count)
    rows = -(-count // cols)
    fig = figure(3.6 * cols + 1.2, 2.7 * rows + 0.6, left=0.7, right=1.2, top=0.8, bottom=0.8)
    fig.subplots_adjust(wspace=0.35, hspace=0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    points = None
    for ax, panel in zip(axes, info.slices, strict=False):
        points = _draw_slice(ax, panel, info) or points
        ax.set_title(f"{panel.param}: {len(panel.x)} of {info.total} trials", fontsize=9, y=1.0)
    for ax in axes[len(info.slices):]:
        ax.set_axis_off()
    if not info.slices:
        axes[0].text(0.5, 0.5, "the search has no hyperparameters", ha="center")
    if points is not None:
        bar = fig.colorbar(points, ax=list(axes), label="trial", fraction=0.02, pad=0.02)
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    fig.suptitle(f"{info.metric} against each hyperparameter (ring: best trial)", fontsize=11)
    return fig


def _draw_slice(ax: Any, panel: Slice, info: SlicesInfo) -> Any:
    x = np.asarray(panel.x, dtype=float)
    if panel.levels:
        x = x + np.random.default_rng(0).uniform(-0.12, 0.12, len(x))  # jitter
        turn = len(panel.levels) > 3 or max(map(len, panel.levels)) > 8
        ax.set_xticks(range(len(panel.levels)), panel.levels, rotation=30 if turn else 0,
                      ha="right" if turn else "center", fontsize=8)
        ax.set_xlim(-0.6, len(panel.levels) - 0.4)
    elif panel.log and len(x) and (x > 0).all():
        # Plain labels at 1 (and 3) per decade, no minor ticks: a log axis's default
        # mathtext labels and minor ticks cost more to draw than the rest of the panel.
        ax.set_xscale("log")
        wide = np.log10(x.max() / x.min()) >= 2
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0,) if wide else (1.0, 3.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.set_xlabel(("" if panel.categorical or not panel.log else "log scale"), fontsize=8)
    ax.set_ylabel(info.metric, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if panel.best is None:
        ax.text(0.5, 0.5, "no finished trial used it", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
        return None
    low, high = info.trial_range
    points = ax.scatter(x, panel.y, c=np.asarray(panel.trials, dtype=float), cmap="plasma",
                        vmin=low, vmax=high if high > low else low + 1, s=26,
                        edgecolors="#333333", linewidths=0.4, zorder=3)
    ax.scatter([x[panel.best]], [panel.y[panel.best]], s=150, facecolors="none",
               edgecolors="#d62728", linewidths=1.8, zorder=4)
    return points


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
        _whole_ticks(ax, [step for curves in info.curves.values() for points in curves.values()
                          for step, _ in points])
    left.legend(fontsize=8, loc="best")
    return fig
