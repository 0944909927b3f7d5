"""Direction and TrialStatus: the comparisons every layer relies on; the best trial by them."""

from __future__ import annotations

import pytest

from mltune.core.errors import SearchError
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.search.history.result import select_best


@pytest.mark.parametrize(("direction", "a", "b", "better"), [
    (Direction.MAX, 0.9, 0.8, True), (Direction.MAX, 0.8, 0.9, False),
    (Direction.MIN, 0.1, 0.2, True), (Direction.MIN, 0.2, 0.1, False),
    (Direction.MAX, 0.5, 0.5, False), (Direction.MIN, 0.5, 0.5, False),
])
def test_better_is_strict_and_follows_the_direction(direction, a, b, better):
    assert direction.better(a, b) is better
    assert direction.at_least(a, b) is (better or a == b)


def test_as_loss_turns_every_metric_into_something_to_minimise():
    assert Direction.MAX.as_loss(0.9) == -0.9
    assert Direction.MIN.as_loss(0.2) == 0.2
    assert Direction.MAX.gain(0.9, 0.8) == pytest.approx(0.1)
    assert Direction.MIN.gain(0.1, 0.3) == pytest.approx(0.2)


def test_the_best_trial_is_the_earliest_of_equals_and_none_finished_is_one_line():
    def trial(number: int, value: float, status: TrialStatus = TrialStatus.FINISHED):
        return TrialOutcome(number, f"r{number}", {}, status, {"val_accuracy": value})

    trials = [trial(1, 0.5), trial(2, 0.7), trial(3, 0.7), trial(4, 0.1),
              trial(5, 0.9, TrialStatus.PRUNED)]  # a pruned trial's best value is no model
    assert select_best(trials, "val_accuracy", Direction.MAX).number == 2
    assert select_best(trials, "val_accuracy", Direction.MIN).number == 4
    with pytest.raises(SearchError, match="no trial finished with metric 'val_accuracy'"):
        select_best(trials[4:], "val_accuracy", Direction.MAX)
    values = [0.3, 0.9, 0.1]
    assert sorted(values, key=Direction.MAX.sort_key) == [0.9, 0.3, 0.1]
    assert sorted(values, key=Direction.MIN.sort_key) == [0.1, 0.3, 0.9]


def test_statuses_compare_as_mlflow_text_and_pruned_is_a_killed_run():
    assert TrialStatus("FINISHED") is TrialStatus.FINISHED
    assert TrialStatus.FAILED == "FAILED"
    assert TrialStatus.PRUNED.run_status == "KILLED"
    assert TrialStatus.FINISHED.run_status == "FINISHED"
    assert {s for s in TrialStatus if s.scored} == {TrialStatus.FINISHED, TrialStatus.PRUNED}
    with pytest.raises(ValueError):
        TrialStatus("DONE")
