"""Stop rules judge the search's standing; Progress keeps the running best they judge."""

from __future__ import annotations

from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.search.history.stopping import (
    NoImprovement,
    Progress,
    Standing,
    TargetReached,
    TimeBudget,
    stop_rules,
)
from mltune.spec.build import load_spec


def standing(best, since_best=0, elapsed_s=0.0, direction=Direction.MAX):
    return Standing("val_accuracy", direction, best, since_best, elapsed_s)


def test_target_reached_counts_equal_and_better_in_the_metric_direction():
    rule = TargetReached(0.9)
    assert rule.reason(standing(None)) is None
    assert rule.reason(standing(0.89)) is None
    assert rule.reason(standing(0.9)) == "target reached: val_accuracy=0.9 (target 0.9)"
    assert TargetReached(0.2).reason(standing(0.1, direction=Direction.MIN)) is not None
    assert TargetReached(0.2).reason(standing(0.3, direction=Direction.MIN)) is None


def test_no_improvement_and_time_budget():
    assert NoImprovement(3).reason(standing(0.5, since_best=2)) is None
    assert NoImprovement(3).reason(standing(0.5, since_best=3)) == "no improvement in 3 trials"
    assert TimeBudget(10).reason(standing(0.5, elapsed_s=9.9)) is None
    assert TimeBudget(10).reason(standing(0.5, elapsed_s=10)) == "time budget of 10 s spent"


def test_rules_come_from_the_spec_in_order():
    spec = load_spec(None, {"stop": {"target": 0.95, "no_improvement": 4, "time_budget_s": 60}})
    assert stop_rules(spec) == [TargetReached(0.95), NoImprovement(4), TimeBudget(60.0)]
    assert stop_rules(load_spec(None, {})) == []


def outcome(number, status, value=None):
    metrics = {} if value is None else {"val_accuracy": value}
    return TrialOutcome(number, f"run{number}", {}, status, metrics)


def test_progress_logs_the_running_best_counts_streaks_and_stops():
    logged, shown = [], []
    spec = load_spec(None, {"stop": {"no_improvement": 2}})
    progress = Progress(spec, lambda m, v, n: logged.append((m, v, n)),
                        lambda o, best: shown.append(best),
                        history=[outcome(1, TrialStatus.FINISHED, 0.5)])
    progress(outcome(2, TrialStatus.FINISHED, 0.7))
    progress(outcome(3, TrialStatus.FAILED))  # no metric: not an improvement
    assert progress.stop_reason is None
    progress(outcome(4, TrialStatus.PRUNED, 0.99))  # a pruned value is not a result
    assert logged == [("val_accuracy", 0.7, 2), ("val_accuracy", 0.7, 3),
                      ("val_accuracy", 0.7, 4)]
    assert shown == [0.7, 0.7, 0.7]
    assert progress.best == 0.7
    assert progress.stop_reason == "no improvement in 2 trials"
