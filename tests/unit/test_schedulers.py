"""Every registered scheduler answers a Decision on ordinary and degenerate histories; then
each rule's own behaviour on made-up curves: who stops, when, in either direction."""

from __future__ import annotations

import math

import pytest

import mltune  # noqa: F401  (registers the built-in schedulers)
from mltune.core.terms import Direction
from mltune.search.schedulers import make_scheduler
from mltune.search.schedulers.base import CONTINUE, STOP, Action, Decision
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.model import PruningSpec

NAMES = SCHEDULERS.names()


def test_the_built_in_schedulers_are_registered():
    assert {"none", "median", "asha"} <= set(NAMES)


def build(name: str, direction: Direction = Direction.MAX):
    return make_scheduler(PruningSpec(name, warmup_trials=1, warmup_epochs=0, min_epochs=1,
                                      eta=2), direction)


HISTORIES = {
    "ordinary": [[0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.55, 0.6], [0.6, 0.7, 0.8, 0.9]],
    "one member": [[0.5, 0.6, 0.7, 0.8]],
    "nan values": [[math.nan, math.nan, math.nan, math.nan], [0.5, math.nan, 0.6, 0.7]],
    "all equal": [[0.5] * 4] * 3,
}


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("history", HISTORIES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_every_scheduler_answers_a_decision(name, history, direction):
    scheduler = build(name, direction)
    curves = HISTORIES[history]
    for trial, curve in enumerate(curves):  # trials one after the other
        for epoch, value in enumerate(curve, start=1):
            decision = scheduler.on_result(trial, epoch, value)
            assert isinstance(decision, Decision)
            assert decision.action in (Action.CONTINUE, Action.STOP)
            if decision.action is Action.STOP:
                break
        scheduler.on_end(trial)
    packed = {100 + j: curve for j, curve in enumerate(curves)}  # and as one pack, in step
    for epoch in range(1, 5):
        values = {n: curve[epoch - 1] for n, curve in packed.items()}
        for n, value in values.items():
            others = {m: v for m, v in values.items() if m != n}
            assert isinstance(scheduler.on_result(n, epoch, value, others), Decision)


@pytest.mark.parametrize("name", NAMES)
def test_ending_an_unknown_trial_is_harmless(name):
    scheduler = build(name)
    scheduler.on_end(12345)
    scheduler.on_end(12345)
    assert isinstance(scheduler.on_result(1, 1, 0.5), Decision)


def test_no_rule_never_stops():
    scheduler = make_scheduler(PruningSpec(), Direction.MAX)
    assert all(scheduler.on_result(1, epoch, 0.0) == CONTINUE for epoch in range(1, 10))


def test_median_waits_for_warmup_then_stops_trials_below_the_median():
    scheduler = make_scheduler(PruningSpec("median", warmup_trials=2, warmup_epochs=1),
                               Direction.MAX)
    for trial, values in ((1, [0.5, 0.6, 0.7]), (2, [0.5, 0.8, 0.9])):
        for epoch, value in enumerate(values, start=1):
            assert scheduler.on_result(trial, epoch, value) == CONTINUE  # warm-up
        scheduler.on_end(trial)
    assert scheduler.on_result(3, 1, 0.0) == CONTINUE  # epoch 1 is within warmup_epochs
    assert scheduler.on_result(3, 2, 0.75) == CONTINUE  # the median of 0.6, 0.8 is 0.7
    assert scheduler.on_result(4, 2, 0.65) == STOP  # below it: stopped


def test_median_in_the_min_direction():
    scheduler = make_scheduler(PruningSpec("median", warmup_trials=1, warmup_epochs=0),
                               Direction.MIN)
    scheduler.on_result(1, 1, 0.3)
    scheduler.on_end(1)
    assert scheduler.on_result(2, 1, 0.4) == STOP  # a higher loss than every earlier trial
    assert scheduler.on_result(3, 1, 0.2) == CONTINUE


def test_asha_judges_only_at_rungs_and_keeps_the_top_fraction():
    scheduler = build("asha")
    assert scheduler.on_result(1, 1, 0.9) == CONTINUE  # one value at the rung: too few
    assert scheduler.on_result(2, 1, 0.1) == STOP  # two values: keep the top half
    assert scheduler.on_result(3, 3, 0.0) == CONTINUE  # epoch 3 is no rung (1, 2, 4, ...)
    assert scheduler.on_result(1, 2, 0.95) == CONTINUE
    assert scheduler.on_result(3, 2, 0.97) == CONTINUE  # the better of two at rung 2


def test_asha_judges_the_members_of_a_pack_against_each_other():
    alone = build("asha")
    assert alone.on_result(1, 1, 0.1) == CONTINUE  # the first to report has no one to lose to
    packed = build("asha")
    # members 1 and 2 reach rung 1 together: the weak one reports first and still loses
    assert packed.on_result(1, 1, 0.1, peers={2: 0.9}) == STOP
    assert packed.on_result(2, 1, 0.9, peers={1: 0.1}) == CONTINUE
    assert packed.on_result(3, 1, 0.2) == STOP  # a later trial meets both values at the rung


def test_asha_ignores_a_diverged_value_when_ranking():
    scheduler = build("asha")
    scheduler.on_result(1, 1, math.nan)
    assert scheduler.on_result(2, 1, 0.5) == CONTINUE  # NaN is no value to lose to
