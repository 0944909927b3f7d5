"""The terminal's view of a search: the top trials table and shortened values."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mltune.report.console import outcomes_frame, short, top_trials_text


@pytest.mark.parametrize(("value", "text"), [
    (0.000123456, "0.0001235"), (3, "3"), (None, "-"), (float("nan"), "-"), (True, "True"),
    ("x" * 24, "x" * 24), ("x" * 25, "x" * 23 + "…"),
])
def test_short(value, text):
    assert short(value) == text


def test_short_without_a_width_cuts_nothing():
    assert short("x" * 40, width=None) == "x" * 40
    assert short(0.1234567, width=None) == "0.1235"


def outcome(number: int, acc: float, status: str = "FINISHED", **params) -> SimpleNamespace:
    return SimpleNamespace(number=number, run_id=f"r{number}", status=status,
                           metrics={"acc": acc, "loss": 1 - acc}, params=params, seconds=1.234)


def test_top_trials_side_by_side_best_first_running_ones_left_out():
    frame = outcomes_frame([outcome(1, 0.5, lr=0.1), outcome(2, 0.9, "RUNNING", lr=0.2),
                            outcome(3, 0.7, lr=0.3), outcome(4, 0.7, lr=0.4)], "acc")
    lines = top_trials_text(frame, "acc", "max", k=2).splitlines()
    assert lines[0] == "Top 2 of 4 trials by acc (max):"
    assert lines[1].split() == ["#1", "trial", "3", "#2", "trial", "4"]  # a tie: earlier first
    assert [line.split() for line in lines[2:]] == [["acc", "0.7", "0.7"],
                                                    ["duration_s", "1.23", "1.23"],
                                                    ["loss", "0.3", "0.3"],
                                                    ["lr", "0.3", "0.4"]]


def test_top_trials_for_min():
    frame = outcomes_frame([outcome(1, 0.5), outcome(2, 0.2)], "acc")
    assert top_trials_text(frame, "acc", "min").splitlines()[1].split()[:3] == ["#1", "trial",
                                                                               "2"]


def test_no_ranked_trial_yet():
    frame = outcomes_frame([outcome(1, 0.5, "RUNNING")], "acc")
    assert top_trials_text(frame, "acc", "max") == "No trial has acc yet."
