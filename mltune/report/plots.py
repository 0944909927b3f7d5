"""The report's figures, drawn with matplotlib's object API (Agg canvas, no pyplot state).

Every function takes plain pandas data and returns a ``Figure``; saving is the caller's job.
In the parallel coordinates yellow is better (the colour map is reversed for ``min``); in the
slices, colour is the trial number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mltune.report.build import OBJECTIVE, PARAM


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


def _best_so_far(values: pd.Series, mode: str) -> pd.Series:
    return values.cummax() if mode == "max" else values.cummin()


def optimisation_history(frame: pd.DataFrame, metric: str, mode: str) -> Figure:
    """Each trial's final metric by trial number, the best so far as a step line."""
    fig = figure(8, 4)
    ax = fig.add_subplot()
    ordered = frame.sort_values("trial")
    values = ordered[OBJECTIVE]
    final = values.notna() & (ordered["status"] == "FINISHED")
    scored = ordered[final]
    ax.scatter(scored["trial"], values[final], s=28, color="#4c72b0", zorder=3,
               label=f"trial's {metric}")
    if len(scored):
        best = _best_so_far(values[final], mode)
        ax.step(scored["trial"], best, where="post", color="#dd8452", linewidth=2,
                label="best so far")
        top = scored.loc[(best == best.iloc[-1]).idxmax()]
        right = top["trial"] > (ordered["trial"].min() + ordered["trial"].max()) / 2
        ax.annotate(f"best: trial {int(top['trial'])}\n{best.iloc[-1]:.4g}",
                    (top["trial"], best.iloc[-1]), textcoords="offset points",
                    xytext=(-8 if right else 8, -24 if mode == "max" else 10),
                    ha="right" if right else "left",
                    fontsize=9)
    partial = values.notna() & ~final  # pruned or still running: the value so far
    if partial.any():
        ax.scatter(ordered["trial"][partial], values[partial], s=34, facecolors="none",
                   edgecolors="#8c8c8c", zorder=3, label="pruned / running: value so far")
    failed = values.isna()
    if failed.any():  # no value: drawn on the lowest value shown, or on 0 when there is none
        low = float(values.min()) if values.notna().any() else 0.0
        ax.scatter(ordered["trial"][failed], np.full(int(failed.sum()), low), marker="x",
                   color="#c44e52", s=36, zorder=3, label="failed (no value)")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"Optimisation history ({mode} {metric})")
    ax.grid(alpha=0.3)
    _whole_ticks(ax, ordered["trial"])
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


def _axis_positions(column: pd.Series, categorical: bool, log: bool
                    ) -> tuple[np.ndarray, list[float], list[str]]:
    """Values scaled to [0, 1] for a parallel-coordinates axis, with tick positions/labels."""
    if categorical:
        levels = sorted(column.dropna().astype(str).unique())
        spots = {level: i / max(len(levels) - 1, 1) for i, level in enumerate(levels)}
        if len(levels) == 1:
            spots = {levels[0]: 0.5}
        scaled = column.map(lambda v: spots.get(str(v), np.nan) if pd.notna(v) else np.nan)
        return scaled.to_numpy(dtype=float), list(spots.values()), list(spots)
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    present = values[~np.isnan(values)]
    if present.size == 0:  # a conditional param no trial shown here used
        return values, [], []
    shown = np.log10(values) if log and (present > 0).all() else values
    low, high = np.nanmin(shown), np.nanmax(shown)
    span = high - low
    scaled = (shown - low) / span if span > 0 else np.where(np.isnan(shown), np.nan, 0.5)
    ends = [np.nanmin(values), np.nanmax(values)]
    ticks = [0.0, 1.0] if span > 0 else [0.5]
    return scaled, ticks, [f"{v:.3g}" for v in (ends if span > 0 else ends[:1])]


def parallel_coordinates(frame: pd.DataFrame, params: Sequence[str], categorical: set[str],
                         log_scale: set[str], metric: str, mode: str) -> Figure:
    """One line per finished trial across every hyperparameter and the metric."""
    scored = frame[frame[OBJECTIVE].notna()]
    axes_names = [*params, metric]
    fig = figure(max(6.0, 1.1 * len(axes_names) + 1.5), 4.8, left=0.3, right=1.3, bottom=0.7)
    ax = fig.add_subplot()
    if scored.empty:
        ax.text(0.5, 0.5, "no finished trial yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    columns, ticks = [], []
    for name in params:
        scaled, spots, labels = _axis_positions(scored[PARAM + name], name in categorical,
                                                name in log_scale)
        columns.append(scaled)
        ticks.append((spots, labels))
    scaled, spots, labels = _axis_positions(scored[OBJECTIVE], False, False)
    columns.append(scaled)
    ticks.append((spots, labels))
    matrix = np.column_stack(columns)
    values = scored[OBJECTIVE].to_numpy(dtype=float)
    norm_low, norm_high = np.nanmin(values), np.nanmax(values)
    colours = _colours(values, norm_low, norm_high, mode)
    order = np.argsort(values if mode == "max" else -values)  # best drawn last, on top
    xs = np.arange(len(axes_names))
    for i in order:
        ax.plot(xs, matrix[i], color=colours[i], alpha=0.8, linewidth=1.4, marker="o",
                markersize=3)
    for x, (spots, labels) in zip(xs, ticks, strict=True):
        ax.axvline(x, color="#999999", linewidth=0.8, zorder=0)
        for spot, label in zip(spots, labels, strict=True):
            ax.text(x + 0.04, spot, label, fontsize=7, va="center", ha="left", clip_on=False)
    ax.set_xticks(xs, [n.replace(".", ".\n") for n in axes_names], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(axes_names) - 0.4)
    ax.set_ylim(-0.06, 1.06)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"Parallel coordinates of {len(scored)} finished trials (yellow = best "
                 f"{metric}); a gap in a line: a param that trial did not use", fontsize=10)
    fig.colorbar(_mappable(norm_low, norm_high, mode), ax=ax, label=metric, pad=0.01,
                 fraction=0.03)
    return fig


def _mappable(low: float, high: float, mode: str) -> ScalarMappable:
    return ScalarMappable(Normalize(low, high if high > low else low + 1e-12), _cmap(mode))


def _colours(values: np.ndarray, low: float, high: float, mode: str) -> np.ndarray:
    return _mappable(low, high, mode).to_rgba(values)


def importance_bars(values: pd.Series, metric: str, trials: int) -> Figure:
    """Horizontal bars, the most important hyperparameter on top."""
    label_width = min(0.35 + 0.09 * max(map(len, map(str, values.index))), 3.0)  # inches
    fig = figure(7, 0.35 * len(values) + 1.4, left=label_width)
    ax = fig.add_subplot()
    shown = values.sort_values()
    ax.barh(shown.index, shown.to_numpy(), color="#4c72b0")
    for y, value in enumerate(shown.to_numpy()):
        ax.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    ax.set_xlabel("importance (share of the forest's impurity decrease)")
    ax.set_xlim(0, max(shown.max() * 1.18, 0.05))
    ax.set_title(f"Hyperparameter importance for {metric} ({trials} finished trials)",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def slice_plots(frame: pd.DataFrame, params: Sequence[str], categorical: set[str],
                log_scale: set[str], metric: str, mode: str, columns: int = 4) -> Figure:
    """One panel per hyperparameter: the metric against its value, colour = trial number.

    One figure rather than one per param: a figure's fixed cost (layout, PNG encoding)
    dominates a small panel's, and the panels read best side by side.
    """
    count = max(len(params), 1)
    cols = min(columns, count)
    rows = -(-count // cols)
    fig = figure(3.6 * cols + 1.2, 2.7 * rows + 0.6, left=0.7, right=1.2, top=0.8, bottom=0.8)
    fig.subplots_adjust(wspace=0.35, hspace=0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    trials = frame["trial"].to_numpy(dtype=float)
    norm = (np.nanmin(trials), np.nanmax(trials)) if len(trials) else (0.0, 1.0)
    values = frame[OBJECTIVE]
    points = None
    for ax, param in zip(axes, params, strict=False):
        points = _slice(ax, frame[PARAM + param], values, frame["trial"], norm,
                        param in categorical, param in log_scale, metric, mode) or points
        ax.set_title(f"{param}: {int((frame[PARAM + param].notna() & values.notna()).sum())}"
                     f" of {len(frame)} trials", fontsize=9)
    for ax in axes[len(params):]:
        ax.set_axis_off()
    if not params:
        axes[0].text(0.5, 0.5, "the search has no hyperparameters", ha="center")
    if points is not None:
        bar = fig.colorbar(points, ax=list(axes), label="trial", fraction=0.02, pad=0.02)
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    fig.suptitle(f"{metric} against each hyperparameter (ring: best trial)", fontsize=11)
    return fig


def _slice(ax: Any, column: pd.Series, values: pd.Series, trial: pd.Series,
           norm: tuple[float, float], categorical: bool, log: bool, metric: str, mode: str
           ) -> Any:
    keep = (column.notna() & values.notna()).to_numpy()
    used, y = column[keep], values[keep].to_numpy(dtype=float)
    if categorical and keep.any():
        levels = sorted(used.astype(str).unique())
        position = used.astype(str).map({level: i for i, level in enumerate(levels)})
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(used))
        x = position.to_numpy(dtype=float) + jitter
        turn = len(levels) > 3 or max(map(len, levels)) > 8
        ax.set_xticks(range(len(levels)), levels, rotation=30 if turn else 0,
                      ha="right" if turn else "center", fontsize=8)
        ax.set_xlim(-0.6, len(levels) - 0.4)
    else:
        x = pd.to_numeric(used, errors="coerce").to_numpy(dtype=float)
        if log and keep.any() and (x > 0).all():
            ax.set_xscale("log")
    ax.set_xlabel(("" if categorical or not log else "log scale"), fontsize=8)
    ax.set_ylabel(metric, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if not keep.any():
        ax.text(0.5, 0.5, "no finished trial used it", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
        return None
    points = ax.scatter(x, y, c=trial[keep].to_numpy(dtype=float), cmap="plasma", vmin=norm[0],
                        vmax=norm[1] if norm[1] > norm[0] else norm[0] + 1, s=26,
                        edgecolors="#333333", linewidths=0.4, zorder=3)
    best = int(np.argmax(y) if mode == "max" else np.argmin(y))
    ax.scatter([x[best]], [y[best]], s=150, facecolors="none", edgecolors="#d62728",
               linewidths=1.8, zorder=4)
    return points


def learning_curves(histories: Mapping[int, Mapping[str, list[tuple[int, float]]]],
                    metric: str, losses: Sequence[str]) -> Figure:
    """Per-epoch curves of the top trials: the metric left, the losses right."""
    fig = figure(10, 4)
    fig.subplots_adjust(wspace=0.25)
    left, right = fig.subplots(1, 2)
    colours = [f"C{i}" for i in range(10)]
    for i, (trial, curves) in enumerate(histories.items()):
        colour = colours[i % len(colours)]
        steps, values = zip(*curves.get(metric, []), strict=True) if curves.get(metric) \
            else ((), ())
        left.plot(steps, values, marker="o", markersize=3, color=colour, label=f"trial {trial}")
        for loss, style in zip(losses, ("-", "--", ":"), strict=False):
            if curves.get(loss):
                steps, values = zip(*curves[loss], strict=True)
                right.plot(steps, values, style, marker=".", color=colour,
                           label=f"trial {trial} {loss}")
    left.set_title(f"{metric} per epoch, top {len(histories)} trials")
    right.set_title(" / ".join(f"{loss} ({style})" for loss, style in
                               zip(losses, ("solid", "dashed", "dotted"), strict=False)))
    for ax, label in ((left, metric), (right, "loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        _whole_ticks(ax, [step for curves in histories.values() for points in curves.values()
                          for step, _ in points])
    left.legend(fontsize=8, loc="best")
    return fig
