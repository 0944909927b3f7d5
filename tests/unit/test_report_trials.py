"""The trials table and its ranking, from hand-made rows (no MLflow)."""

from __future__ import annotations

import pandas as pd
import pytest

from mltune.report.trials import SearchTrials, finished, ranked, trials_frame, typed


def row(trial: int, value: float | None, status: str = "FINISHED", **params) -> dict:
    """A trial's row as the report reads it from MLflow."""
    metrics = {} if value is None else {"metrics.val_accuracy": value,
                                        "metrics.val_loss": 1 - value}
    return {"trial": trial, "run_id": f"run{trial}", "status": status, "objective": value,
            "duration_s": 1.5, "epochs": 2, "best_epoch": None, **metrics,
            **{f"params.{k}": v for k, v in params.items()}, "error": None}


def table(rows: list[dict], metric: str = "val_accuracy") -> pd.DataFrame:
    return trials_frame(rows, metric)[0]


def test_table_columns_head_then_the_search_metric_first_then_params_in_trial_order():
    frame, params, categorical = trials_frame(
        [row(2, 0.8, lr=0.01, optimizer="sgd"), row(1, 0.7, lr=0.001, optimizer="adam")],
        "val_loss")
    assert list(frame.columns) == ["trial", "run_id", "status", "objective", "duration_s",
                                   "epochs", "best_epoch", "metrics.val_loss",
                                   "metrics.val_accuracy", "params.lr", "params.optimizer",
                                   "error"]
    assert list(frame["trial"]) == [1, 2]
    assert params == ["lr", "optimizer"] and categorical == {"optimizer"}
    assert frame["params.lr"].dtype == float and str(frame["epochs"].dtype) == "Int64"


def test_a_param_that_is_not_always_a_number_is_categorical_text():
    frame, _, categorical = trials_frame(
        [row(1, 0.7, size=3, flag=True), row(2, 0.8, size="auto", flag=False), row(3, 0.9)],
        "val_accuracy")
    assert categorical == {"size", "flag"}
    assert list(frame["params.size"][:2]) == ["3", "auto"]
    assert list(frame["params.flag"][:2]) == ["True", "False"]
    assert frame.loc[2, ["params.size", "params.flag"]].isna().all()  # missing stays missing


def test_a_search_without_trials_has_the_head_columns():
    frame, params, categorical = trials_frame([], "val_accuracy")
    assert frame.empty and list(frame.columns)[:7] == ["trial", "run_id", "status", "objective",
                                                        "duration_s", "epochs", "best_epoch"]
    assert params == [] and categorical == set()
    assert ranked(frame, "val_accuracy", "max").empty


@pytest.mark.parametrize(("mode", "order"), [("max", [3, 1, 4, 2]), ("min", [2, 1, 4, 3])])
def test_ranked_best_first_by_mode_and_the_earlier_trial_wins_a_tie(mode, order):
    frame = table([row(1, 0.8), row(2, 0.5), row(3, 0.9), row(4, 0.8)])
    assert list(ranked(frame, "val_accuracy", mode)["trial"]) == order


def test_only_finished_trials_with_a_value_are_ranked():
    frame = table([row(1, 0.5), row(2, 0.99, "RUNNING"), row(3, 0.98, "PRUNED"),
                   row(4, None, "FAILED"), row(5, None), row(6, 0.6), row(7, 0.97, "KILLED")])
    assert list(ranked(frame, "val_accuracy", "max")["trial"]) == [6, 1]


def test_finished_is_the_ranked_trials_in_trial_order():
    frame, params, categorical = trials_frame(
        [row(1, 0.5), row(2, 0.9, "RUNNING"), row(3, 0.7), row(4, 0.6)], "val_accuracy")
    trials = SearchTrials("p", "name", "FINISHED", "val_accuracy", "max", frame, params,
                          categorical, set())
    assert list(finished(trials)["trial"]) == [1, 3, 4]


@pytest.mark.parametrize(("text", "value"), [("3", 3), ("0.01", 0.01), ("true", True),
                                             ("relu", "relu"), ("[1, 2]", "[1, 2]"),
                                             ("null", None)])
def test_a_param_comes_back_typed_from_mlflow_text(text, value):
    assert typed(text) == value
