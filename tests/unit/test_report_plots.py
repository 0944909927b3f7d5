"""What each report figure shows, computed from hand-made tables: no MLflow, no pixels."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.figure import Figure

from mltune.report import plots, timeline
from mltune.report.trials import trials_frame


def row(trial: int, value: float | None, status: str = "FINISHED", **params) -> dict:
    metrics = {} if value is None else {"metrics.acc": value}
    return {"trial": trial, "run_id": f"run{trial}", "status": status, "objective": value,
            "duration_s": 1.0, "epochs": 1, "best_epoch": None, **metrics,
            **{f"params.{k}": v for k, v in params.items()}, "error": None}


def table(*rows: dict) -> pd.DataFrame:
    return trials_frame(list(rows), "acc")[0]


SEARCH = table(
    row(1, 0.6, lr=1e-3, optimizer="adam"),
    row(2, None, "FAILED", lr=1e-2, optimizer="sgd", **{"optimizer.momentum": 0.9}),
    row(3, 0.8, lr=1e-1, optimizer="sgd", **{"optimizer.momentum": 0.5}),
    row(4, 0.9, "PRUNED", lr=1e-4, optimizer="adam"),
    row(5, 0.8, lr=1e-2, optimizer="adamw"),
    row(6, 0.7, "RUNNING", lr=1e-3, optimizer="adam"),
)
PARAMS = ["lr", "optimizer", "optimizer.momentum"]


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["objective"].notna() & (frame["status"] == "FINISHED")]


def test_history_splits_finished_partial_and_failed_trials():
    info = plots.history_info(SEARCH, "acc", "max")
    assert info.trials == [1, 2, 3, 4, 5, 6]
    assert info.finished == plots.Points([1, 3, 5], [0.6, 0.8, 0.8])
    assert info.best_so_far == [0.6, 0.8, 0.8]
    assert info.best == (3, 0.8)  # trial 5 ties it later: the first to reach it is named
    assert info.partial == plots.Points([4, 6], [0.9, 0.7])  # not final: not the best
    assert info.failed == plots.Points([2], [0.6])  # drawn on the lowest value shown


def test_history_for_min_takes_the_running_minimum():
    info = plots.history_info(SEARCH, "loss", "min")
    assert info.best_so_far == [0.6, 0.6, 0.6]
    assert info.best == (1, 0.6)


def test_history_without_values_draws_failures_at_zero_and_names_no_best():
    info = plots.history_info(table(row(1, None, "FAILED"), row(2, None, "RUNNING")), "acc",
                              "max")
    assert info.finished == plots.Points([], []) and info.best is None
    assert info.failed == plots.Points([1, 2], [0.0, 0.0])
    empty = plots.history_info(table(), "acc", "max")
    assert empty.trials == [] and empty.best is None and empty.failed.x == []


def test_parallel_axes_scale_each_param_to_the_unit_interval():
    frame = finished(SEARCH)  # trials 1, 3, 5
    info = plots.parallel_info(frame, PARAMS, {"optimizer"}, {"lr"}, "acc", "max")
    assert [a.name for a in info.axes] == [*PARAMS, "acc"]
    assert info.values == [0.6, 0.8, 0.8]
    lr, optimizer, momentum, acc = info.axes
    assert lr.values == pytest.approx([0.0, 1.0, 0.5])  # log scale: 1e-3, 1e-1, 1e-2
    assert (lr.ticks, lr.labels) == ([0.0, 1.0], ["0.001", "0.1"])
    assert optimizer.values == [0.0, 1.0, 0.5]  # levels in sorted order: adam, adamw, sgd
    assert (optimizer.ticks, optimizer.labels) == ([0.0, 0.5, 1.0], ["adam", "adamw", "sgd"])
    # used by one trial only: the middle; a gap where a trial did not use it
    assert math.isnan(momentum.values[0]) and momentum.values[1] == 0.5
    assert (momentum.ticks, momentum.labels) == ([0.5], ["0.5"])
    assert acc.values == pytest.approx([0.0, 1.0, 1.0])


def test_parallel_linear_axis_and_a_single_level():
    frame = table(row(1, 0.5, lr=1.0, act="relu"), row(2, 0.7, lr=3.0, act="relu"),
                  row(3, 0.6, lr=2.0, act="relu"))
    info = plots.parallel_info(frame, ["act", "lr"], {"act"}, set(), "acc", "min")
    act, lr, _ = info.axes
    assert act.values == [0.5, 0.5, 0.5] and act.labels == ["relu"]
    assert lr.values == pytest.approx([0.0, 1.0, 0.5])  # not log: linear


def test_parallel_without_trials_keeps_its_axes():
    info = plots.parallel_info(table(), [], set(), set(), "acc", "max")
    assert [a.name for a in info.axes] == ["acc"] and info.values == []


def test_slices_one_panel_per_param_with_the_trials_that_used_it():
    frame = finished(SEARCH)
    info = plots.slices_info(frame, PARAMS, {"optimizer"}, {"lr"}, "acc", "max")
    assert (info.total, info.trial_range) == (3, (1.0, 5.0))
    lr, optimizer, momentum = info.slices
    assert (lr.x, lr.y, lr.trials, lr.log, lr.levels) == ([1e-3, 1e-1, 1e-2], [0.6, 0.8, 0.8],
                                                         [1, 3, 5], True, [])
    assert lr.best == 1  # the first of the two best points
    assert optimizer.levels == ["adam", "adamw", "sgd"] and optimizer.x == [0.0, 2.0, 1.0]
    assert (momentum.x, momentum.trials, momentum.best) == ([0.5], [3], 0)


def test_slices_best_point_for_min_and_a_param_no_trial_used():
    frame = table(row(1, 0.5, lr=1.0), row(2, 0.2, lr=2.0), row(3, 0.9, lr=3.0, extra=1.0))
    frame = frame[frame["trial"] < 3]
    info = plots.slices_info(frame, ["extra", "lr"], set(), set(), "acc", "min")
    extra, lr = info.slices
    assert extra.x == [] and extra.best is None
    assert lr.best == 1 and lr.y[lr.best] == 0.2


def test_importance_most_important_first():
    values = pd.Series({"lr": 0.2, "optimizer": 0.7, "dropout": 0.1})
    info = plots.importance_info(values, "acc", 12)
    assert info.names == ["optimizer", "lr", "dropout"]
    assert info.values == [0.7, 0.2, 0.1] and info.trials == 12


def test_curves_draw_the_losses_some_trial_logged():
    frame = table(row(1, 0.5)).assign(**{"metrics.val_loss": 0.3})
    curves = {1: {"acc": [(0, 0.4), (1, 0.5)], "val_loss": [(0, 0.5), (1, 0.3)]}}
    info = plots.curves_info(curves, "acc", frame)
    assert info.losses == ["val_loss"] and info.curves is curves


@pytest.mark.parametrize("frame", [SEARCH, table()], ids=["search", "empty"])
def test_every_figure_draws_from_its_data(frame):
    scored = finished(frame)
    figures = [
        plots.draw_history(plots.history_info(frame, "acc", "max")),
        plots.draw_parallel(plots.parallel_info(scored, PARAMS if len(frame) else [],
                                                {"optimizer"}, {"lr"}, "acc", "max")),
        plots.draw_slices(plots.slices_info(scored, PARAMS if len(frame) else [],
                                            {"optimizer"}, {"lr"}, "acc", "max")),
        plots.draw_importance(plots.importance_info(pd.Series({"lr": 1.0}), "acc", 3)),
        plots.draw_curves(plots.CurvesInfo("acc", ["val_loss"], {1: {"acc": [(0, 0.5)]}})),
    ]
    assert all(isinstance(f, Figure) and f.axes for f in figures)


def test_the_timeline_has_a_row_per_device_and_a_bar_per_trial_from_the_first_start():
    frame = pd.DataFrame({"trial": [1, 2, 3], "status": ["FINISHED", "KILLED", "FINISHED"],
                          "device": ["cuda:0", "cuda:1", "cuda:0"],
                          "start_ms": [1000, 1500, 3000], "end_ms": [2900, 4000, None]})
    info = timeline.timeline_info(frame)
    assert info is not None and info.devices == ["cuda:0", "cuda:1"]
    assert info.bars == [(0, 0.0, 1.9, "FINISHED"), (1, 0.5, 3.0, "KILLED"),
                         (0, 2.0, 3.0, "FINISHED")]  # still running: to the last end
    assert timeline.draw_timeline(info).axes[0].get_title() == \
        "Trials per device over time (cuda:0: 2, cuda:1: 1)"
    assert timeline.timeline_info(frame.assign(device="cpu")) is None  # one device
    assert timeline.timeline_info(frame.drop(columns="device")) is None  # an older search
