"""The pruning rules on made-up curves: who stops, when, in either direction."""

from __future__ import annotations

from mltune.core.terms import Direction
from mltune.search.pruning import AshaPruner, MedianPruner, Pruner, make_pruner
from mltune.spec.model import PruningSpec


def test_no_rule_never_stops():
    pruner = make_pruner(PruningSpec(), Direction.MAX)
    assert type(pruner) is Pruner
    assert not any(pruner.report(1, epoch, 0.0) for epoch in range(1, 10))


def test_median_waits_for_warmup_then_stops_trials_below_the_median():
    pruner = MedianPruner(PruningSpec("median", warmup_trials=2, warmup_epochs=1), Direction.MAX)
    for trial, values in ((1, [0.5, 0.6, 0.7]), (2, [0.5, 0.8, 0.9])):
        for epoch, value in enumerate(values, start=1):
            assert not pruner.report(trial, epoch, value)  # warm-up: never judged
        pruner.finish(trial)
    assert not pruner.report(3, 1, 0.0)  # epoch 1 is within warmup_epochs
    assert not pruner.report(3, 2, 0.75)  # the median of 0.6 and 0.8 is 0.7: above it
    assert pruner.report(4, 2, 0.65)  # below it: stopped


def test_median_in_the_min_direction():
    pruner = MedianPruner(PruningSpec("median", warmup_trials=1, warmup_epochs=0), Direction.MIN)
    pruner.report(1, 1, 0.3)
    pruner.finish(1)
    assert pruner.report(2, 1, 0.4)  # a higher loss than every earlier trial
    assert not pruner.report(3, 1, 0.2)


def test_asha_judges_only_at_rungs_and_keeps_the_top_fraction():
    pruner = AshaPruner(PruningSpec("asha", min_epochs=1, eta=2), Direction.MAX)
    assert not pruner.report(1, 1, 0.9)  # one value at the rung: too few to judge
    assert pruner.report(2, 1, 0.1)  # two values: keep the top half, 0.1 is out
    assert not pruner.report(3, 3, 0.0)  # epoch 3 is no rung (1, 2, 4, ...)
    assert not pruner.report(1, 2, 0.95)
    assert not pruner.report(3, 2, 0.97)  # the better of two at rung 2


def test_asha_judges_the_members_of_a_pack_against_each_other():
    spec = PruningSpec("asha", min_epochs=1, eta=2)
    alone = AshaPruner(spec, Direction.MAX)
    assert not alone.report(1, 1, 0.1)  # the first to report has no one to lose to
    packed = AshaPruner(spec, Direction.MAX)
    # members 1 and 2 reach rung 1 together: the weak one reports first and still loses
    assert packed.report(1, 1, 0.1, peers={2: 0.9})
    assert not packed.report(2, 1, 0.9, peers={1: 0.1})
    assert packed.report(3, 1, 0.2)  # and a later trial meets both values at the rung
