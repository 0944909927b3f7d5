"""A resumed search's history as TPE sees it: rebuilt from outcomes, interrupted points first."""

from __future__ import annotations

from hyperopt import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK, hp

from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.search.hyperopt import (
    algorithm,
    done,
    point_of,
    rebuilt_trials,
    result_of,
    startup_trials,
)
from mltune.search.resume import ResumeState

SPACE = {"lr": hp.loguniform("lr", -9, -1),
         "optimizer": hp.choice("optimizer", [{"name": "adam"},
                                              {"name": "sgd", "momentum": hp.uniform("m", 0, 1)}])}


def outcome(number, status, value=None):
    metrics = {} if value is None else {"val_accuracy": value}
    return TrialOutcome(number, f"run{number}", {}, status, metrics)


def test_what_tpe_learns_is_the_measured_metric_as_a_loss():
    assert result_of(outcome(1, TrialStatus.FINISHED, 0.8), "val_accuracy",
                     Direction.MAX) == {"status": STATUS_OK, "loss": -0.8, "trial": 1,
                                        "run_id": "run1"}
    assert result_of(outcome(2, TrialStatus.PRUNED, 0.3), "val_accuracy",
                     Direction.MIN)["loss"] == 0.3
    # a trial whose model could not be logged still measured its metric
    assert result_of(outcome(3, TrialStatus.FAILED, 0.5), "val_accuracy",
                     Direction.MAX)["status"] == STATUS_OK
    assert result_of(outcome(4, TrialStatus.FAILED), "val_accuracy",
                     Direction.MAX) == {"status": STATUS_FAIL, "trial": 4}


def test_rebuilt_trials_hold_the_history_done_and_the_interrupted_points_queued():
    history = ResumeState(
        outcomes=[outcome(1, TrialStatus.FINISHED, 0.8), outcome(2, TrialStatus.FAILED)],
        vals=[{"lr": 0.01, "optimizer": 0}, {"lr": 0.001, "optimizer": 1, "m": 0.5}],
        requeue=[{"lr": 0.1, "optimizer": 0}], next_number=4)
    trials = rebuilt_trials(SPACE, history,
                            lambda o: result_of(o, "val_accuracy", Direction.MAX))
    docs = trials._dynamic_trials
    assert len(docs) == 3 and done(trials) == 2
    assert [d["state"] for d in docs[:2]] == [JOB_STATE_DONE, JOB_STATE_DONE]
    assert docs[0]["result"]["loss"] == -0.8 and docs[1]["result"]["status"] == STATUS_FAIL
    assert docs[2]["state"] != JOB_STATE_DONE  # queued: runs first
    # the inactive conditional label is present and empty, as TPE expects
    assert docs[0]["misc"]["vals"]["m"] == [] and docs[1]["misc"]["vals"]["m"] == [0.5]
    assert point_of(docs[1]) == {"lr": 0.001, "optimizer": 1, "m": 0.5}
    assert rebuilt_trials(SPACE, ResumeState(), lambda o: {}).trials == []


def test_tpe_start_up_is_a_quarter_of_the_budget_within_2_to_20():
    assert [startup_trials(n) for n in (1, 8, 40, 200)] == [2, 2, 10, 20]
    assert algorithm("tpe", 40).keywords == {"n_startup_jobs": 10}
