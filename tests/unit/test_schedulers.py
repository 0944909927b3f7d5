"""The scheduler contract, over every registered scheduler (in the manner of Optuna's sampler
tests): a Decision on ordinary and degenerate histories, the same decisions for the same history,
and a scheduler rebuilt from the recorded trials deciding as the uninterrupted one did; each rule
owns its options. Then each rule's own behaviour on made-up curves: who stops, when, in either
direction; who exploits whom, and with what values."""

from __future__ import annotations

import math
import random

import pytest

import mltune  # noqa: F401  (registers the built-in schedulers)
from mltune.core.errors import SpecError
from mltune.core.terms import Direction
from mltune.search.schedulers import make_scheduler
from mltune.search.schedulers.base import CONTINUE, STOP, Action, Context, Decision, TrialCurve
from mltune.search.schedulers.hyperband import BLOCK, HyperbandOptions, bracket_sizes
from mltune.search.schedulers.pbt import explore, perturb
from mltune.spec.build import load_spec
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.distributions import Float, Int
from mltune.spec.model import PruningSpec
from mltune.spec.space import build_space

NAMES = SCHEDULERS.names()


def test_the_built_in_schedulers_are_registered():
    assert {"none", "median", "asha", "hyperband", "pbt"} <= set(NAMES)


SPACE = build_space({
    "learning_rate": {"loguniform": [1.0e-4, 1.0e-1]},
    "dropout": {"uniform": [0.0, 0.5]},
    "optimizer": {"choice": [{"name": "adam"},
                             {"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
    "hidden_size": {"choice": [32, 64, 128]},  # a shape: never perturbed
    "num_layers": {"quniform": [1, 3, 1]},  # a shape too
    "weight_decay": 1.0e-4,  # a literal: never perturbed
})


def params(learning_rate: float = 1.0e-3, **more) -> dict:
    return {"learning_rate": learning_rate, "dropout": 0.2, "optimizer": "sgd",
            "optimizer.momentum": 0.9, "hidden_size": 64, "num_layers": 2,
            "weight_decay": 1.0e-4, **more}


OPTIONS = {"none": {}, "median": {"warmup_trials": 1, "warmup_epochs": 0},
           "asha": {"min_epochs": 1, "eta": 2}, "hyperband": {"min_epochs": 1, "eta": 2},
           "pbt": {"every": 2}}


def scheduler_of(name: str, direction: Direction = Direction.MAX, seed: int = 0,
                 epochs: int = 10, **options):
    """Rule ``name`` with ``options`` (its own), as a search of ``epochs`` makes it."""
    return make_scheduler(PruningSpec(name, options), Context(direction, SPACE, seed, epochs))


def build(name: str, direction: Direction = Direction.MAX):
    return scheduler_of(name, direction, seed=7, **OPTIONS.get(name, {}))


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
        scheduler.start(trial, params())
        for epoch, value in enumerate(curve, start=1):
            decision = scheduler.decide(trial, epoch, value)
            assert isinstance(decision, Decision)
            assert decision.action in (Action.CONTINUE, Action.STOP)
            if decision.action is Action.STOP:
                break
        scheduler.end(trial)
    packed = {100 + j: curve for j, curve in enumerate(curves)}  # and as one pack, in step
    for n in packed:
        scheduler.start(n, params())
    for epoch in range(1, 5):
        values = {n: curve[epoch - 1] for n, curve in packed.items()}
        for n, value in values.items():
            others = {m: v for m, v in values.items() if m != n}
            decision = scheduler.decide(n, epoch, value, others)
            assert isinstance(decision, Decision)
            if decision.action is Action.EXPLOIT:  # only from another member of the pack
                assert decision.source in others


@pytest.mark.parametrize("name", NAMES)
def test_ending_an_unknown_trial_is_harmless(name):
    scheduler = build(name)
    scheduler.end(12345)
    scheduler.end(12345)
    assert isinstance(scheduler.decide(1, 1, 0.5), Decision)


@pytest.mark.parametrize("name", NAMES)
def test_each_rule_says_what_it_will_do_before_a_search_runs(name):
    """``mltune check`` prints it: one line naming the rule and, where it has them, the epochs
    it judges at (never the last: stopping there saves nothing)."""
    rule = SCHEDULERS.get(name)
    text = rule.outline(rule.options({}, 10), 10)
    assert text.startswith(f"{name}: ") and "\n" not in text
    assert "epoch 10 " not in text and "and 10 " not in text


def test_the_outlines_name_the_rungs_and_brackets():
    asha = SCHEDULERS.get("asha")
    assert asha.outline(asha.Options(), 10).startswith(
        "asha: rungs at epochs 1, 3 and 9 of 10; at each, a trial goes on only in the top 1/3")
    hyperband = SCHEDULERS.get("hyperband")
    assert ("bracket 0 (60% of the trials) at epochs 1, 3 and 9; bracket 1 (27% of the trials) "
            "at epochs 3 and 9; bracket 2 (13% of the trials) at epoch 9") in hyperband.outline(
                hyperband.options({}, 10), 10)


def replay(scheduler, events) -> list[Decision]:
    """Feed ``events`` (start / epoch of a pack / end) to ``scheduler``: its decisions."""
    decisions = []
    for kind, *args in events:
        if kind == "start":
            scheduler.start(args[0], params(learning_rate=1.0e-3 * (1 + args[0] % 5)))
        elif kind == "end":
            scheduler.end(args[0])
        else:
            epoch, values = args
            decisions += [scheduler.decide(n, epoch, v, {m: w for m, w in values.items()
                                                         if m != n})
                          for n, v in values.items()]
    return decisions


def history(trials: range, seed: int) -> tuple[list, list[TrialCurve]]:
    """Packs of three trials, four epochs each, made-up values (a NaN, ties); every trial
    ends by the last event. The events, and each trial's curve as a record keeps it."""
    rng = random.Random(seed)
    events, curves = [], []
    numbers = list(trials)
    for first in range(0, len(numbers), 3):
        pack = numbers[first:first + 3]
        curve = {n: [round(rng.random(), 1) for _ in range(4)] for n in pack}
        curve[pack[0]][1] = math.nan if seed % 2 else curve[pack[0]][1]
        events += [("start", n) for n in pack]
        events += [("epoch", e, {n: curve[n][e - 1] for n in pack}) for e in range(1, 5)]
        events += [("end", n) for n in pack]
        curves += [TrialCurve(n, params(learning_rate=1.0e-3 * (1 + n % 5)), tuple(curve[n]))
                   for n in pack]
    return events, curves


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("name", NAMES)
def test_the_same_history_gets_the_same_decisions(name, direction):
    events, _ = history(range(1, 13), seed=3)
    assert replay(build(name, direction), events) == replay(build(name, direction), events)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_a_scheduler_rebuilt_from_the_record_decides_as_the_uninterrupted_one(name, seed):
    """A resumed search: the trials that ended before the interruption are rebuilt from
    their curves; the next trials are judged exactly as without the interruption."""
    before, curves = history(range(1, 10), seed)
    after, _ = history(range(10, 22), seed + 10)
    uninterrupted = build(name)
    replay(uninterrupted, before)
    rebuilt = build(name)
    rebuilt.rebuild(curves)
    assert replay(rebuilt, after) == replay(uninterrupted, after)


def test_what_a_rebuilt_scheduler_learnt_is_what_judges_the_next_trials():
    """ASHA after a resume: the earlier trials' rung values are there to lose to."""
    curves = [TrialCurve(n, params(), (0.9, 0.9)) for n in (1, 2, 3)]
    rebuilt, forgot = build("asha"), build("asha")
    rebuilt.rebuild(curves)
    assert rebuilt.decide(4, 1, 0.1) == STOP  # below every earlier trial at rung 1
    assert forgot.decide(4, 1, 0.1) == CONTINUE  # alone at the rung: too few to judge


def test_a_rule_refuses_another_rules_option_naming_its_own():
    with pytest.raises(SpecError, match=r"pruning.every: not an option of rule asha \(an "
                                        r"option of pbt\); asha's options: min_epochs, eta"):
        load_spec(None, {"pruning": {"rule": "asha", "every": 2}})
    with pytest.raises(SpecError, match=r"pruning.typo: not an option of rule median; "
                                        r"median's options: warmup_trials, warmup_epochs"):
        load_spec(None, {"pruning": {"rule": "median", "typo": 1}})
    with pytest.raises(SpecError, match=r"pruning.max_epochs: not an option of rule asha"):
        load_spec(None, {"epochs": 10, "pruning": {"rule": "asha", "max_epochs": 5}})
    # what an older mltune wrote (every rule's options, the others' at their defaults) loads
    old = load_spec(None, {"epochs": 10, "pruning": {"rule": "asha", "min_epochs": 2, "eta": 3,
                                                     "every": 4, "max_epochs": 10,
                                                     "warmup_trials": 3, "brackets": None}})
    assert old.pruning.options == {"min_epochs": 2, "eta": 3}
    spec = load_spec(None, {"pruning": {"rule": "median", "warmup_trials": 5}})
    assert spec.pruning.options == {"warmup_trials": 5, "warmup_epochs": 1}
    assert spec.to_dict()["pruning"] == {"rule": "median", "warmup_trials": 5,
                                         "warmup_epochs": 1}


def test_no_rule_never_stops():
    scheduler = scheduler_of("none")
    assert all(scheduler.decide(1, epoch, 0.0) == CONTINUE for epoch in range(1, 10))


def test_median_waits_for_warmup_then_stops_trials_below_the_median():
    scheduler = scheduler_of("median", warmup_trials=2, warmup_epochs=1)
    for trial, values in ((1, [0.5, 0.6, 0.7]), (2, [0.5, 0.8, 0.9])):
        for epoch, value in enumerate(values, start=1):
            assert scheduler.decide(trial, epoch, value) == CONTINUE  # warm-up
        scheduler.end(trial)
    assert scheduler.decide(3, 1, 0.0) == CONTINUE  # epoch 1 is within warmup_epochs
    assert scheduler.decide(3, 2, 0.75) == CONTINUE  # the median of 0.6, 0.8 is 0.7
    assert scheduler.decide(4, 2, 0.65) == STOP  # below it: stopped


def test_median_in_the_min_direction():
    scheduler = scheduler_of("median", Direction.MIN, warmup_trials=1, warmup_epochs=0)
    scheduler.decide(1, 1, 0.3)
    scheduler.end(1)
    assert scheduler.decide(2, 1, 0.4) == STOP  # a higher loss than every earlier trial
    assert scheduler.decide(3, 1, 0.2) == CONTINUE


def test_asha_judges_only_at_rungs_and_keeps_the_top_fraction():
    scheduler = build("asha")
    assert scheduler.decide(1, 1, 0.9) == CONTINUE  # one value at the rung: too few
    assert scheduler.decide(2, 1, 0.1) == STOP  # two values: keep the top half
    assert scheduler.decide(3, 3, 0.0) == CONTINUE  # epoch 3 is no rung (1, 2, 4, ...)
    assert scheduler.decide(1, 2, 0.95) == CONTINUE
    assert scheduler.decide(3, 2, 0.97) == CONTINUE  # the better of two at rung 2


def test_asha_judges_the_members_of_a_pack_against_each_other():
    alone = build("asha")
    assert alone.decide(1, 1, 0.1) == CONTINUE  # the first to report has no one to lose to
    packed = build("asha")
    # members 1 and 2 reach rung 1 together: the weak one reports first and still loses
    assert packed.decide(1, 1, 0.1, peers={2: 0.9}) == STOP
    assert packed.decide(2, 1, 0.9, peers={1: 0.1}) == CONTINUE
    assert packed.decide(3, 1, 0.2) == STOP  # a later trial meets both values at the rung


def test_asha_ignores_a_diverged_value_when_ranking():
    scheduler = build("asha")
    scheduler.decide(1, 1, math.nan)
    assert scheduler.decide(2, 1, 0.5) == CONTINUE  # NaN is no value to lose to


def hyperband(**fields):
    spec = {"min_epochs": 1, "eta": 2, "max_epochs": 8, "brackets": 3, **fields}
    return scheduler_of("hyperband", **spec)


def members(scheduler, bracket: int, count: int) -> list[int]:
    """The first ``count`` trial numbers the scheduler puts in ``bracket``."""
    return [n for n in range(10_000) if scheduler.bracket(n) == bracket][:count]


def test_hyperband_brackets_follow_hyperbands_sizes_in_blocks_of_trials():
    assert bracket_sizes(3, 3, 3) == [27, 12, 6]  # Li et al.: ceil(4 / (r + 1) * 3**r)
    scheduler = hyperband()  # rungs 1, 2, 4 below 8 epochs, eta 2: ceil(4 / (r + 1) * 2**r)
    assert bracket_sizes(3, 3, 2) == [8, 6, 4]
    cycle = len(scheduler.order) * BLOCK
    counts = [sum(scheduler.bracket(n) == b for n in range(cycle)) for b in range(3)]
    assert counts == [8 * BLOCK, 6 * BLOCK, 4 * BLOCK]
    for n in range(0, cycle, BLOCK):  # a block of consecutive numbers (a pack) shares one
        assert len({scheduler.bracket(m) for m in range(n, n + BLOCK)}) == 1
    assert [hyperband().bracket(n) for n in range(cycle)] == [
        scheduler.bracket(n) for n in range(cycle)]  # by number alone: deterministic
    assert len({scheduler.bracket(n) for n in range(3 * BLOCK)}) > 1  # spread, not 8 in a row
    scheduler.start(5, params())
    assert scheduler.started[5] == scheduler.bracket(5)


def test_hyperband_judges_each_bracket_from_its_own_first_rung():
    scheduler = hyperband()
    (a0, b0), (a1, b1), (a2, b2) = (members(scheduler, b, 2) for b in range(3))
    assert scheduler.decide(a0, 1, 0.9) == CONTINUE  # bracket 0: rungs 1, 2, 4
    assert scheduler.decide(b0, 1, 0.1) == STOP
    assert scheduler.decide(a1, 1, 0.9) == CONTINUE  # bracket 1: rungs 2, 4 only
    assert scheduler.decide(b1, 1, 0.0) == CONTINUE  # epoch 1 is no rung of bracket 1
    assert scheduler.decide(a1, 2, 0.9) == CONTINUE
    assert scheduler.decide(b1, 2, 0.1) == STOP
    assert scheduler.decide(a2, 2, 0.9) == CONTINUE  # bracket 2: rung 4 only
    assert scheduler.decide(b2, 2, 0.0) == CONTINUE
    assert scheduler.decide(a2, 4, 0.9) == CONTINUE
    assert scheduler.decide(b2, 4, 0.1) == STOP
    assert scheduler.decide(b2, 8, 0.0) == CONTINUE  # the last epoch: never judged


def test_hyperband_judges_a_trial_only_against_its_own_bracket():
    scheduler = hyperband()
    (a0,), (a1, b1) = members(scheduler, 0, 1), members(scheduler, 1, 2)
    assert scheduler.decide(a0, 2, 0.9) == CONTINUE
    assert scheduler.decide(a1, 2, 0.1) == CONTINUE  # bracket 0's 0.9 is not its rival
    assert scheduler.decide(b1, 2, 0.05, peers={a0: 0.9}) == STOP  # a1's 0.1 is
    fresh = hyperband()
    assert fresh.decide(a1, 2, 0.1, peers={a0: 0.9}) == CONTINUE  # a peer of another bracket


def test_hyperband_spec_needs_rungs_for_its_brackets():
    spec = load_spec(None, {"epochs": 10, "pruning.rule": "hyperband"})
    options = HyperbandOptions(**spec.pruning.options)
    assert options.max_epochs == 10 and options.rungs() == (1, 3, 9)
    assert options.bracket_count() == 3
    with pytest.raises(SpecError, match=r"pruning.brackets: 4 is not allowed; expected 1 to 3"):
        load_spec(None, {"epochs": 10, "pruning.rule": "hyperband", "pruning.brackets": 4})
    with pytest.raises(SpecError, match=r"pruning.min_epochs: 10 is not allowed with rule "
                                        r"hyperband and 10 epochs"):
        load_spec(None, {"epochs": 10, "pruning.rule": "hyperband", "pruning.min_epochs": 10})
    with pytest.raises(SpecError, match=r"pruning.brackets: 0 is not allowed"):
        load_spec(None, {"pruning.rule": "hyperband", "pruning.brackets": 0})
    with pytest.raises(SpecError, match=r"pruning.max_epochs: 11 is not allowed; expected a "
                                        r"whole number from 1 to 10"):
        load_spec(None, {"epochs": 10, "pruning.rule": "hyperband", "pruning.max_epochs": 11})
    with pytest.raises(SpecError, match=r"pruning.rule: .*hyperband.*pbt"):
        load_spec(None, {"pruning.rule": "hyperbandd"})


def pbt(direction: Direction = Direction.MAX, seed: int = 0, **fields):
    epochs = fields.pop("epochs", 10)
    spec = {"every": 2, "fraction": 0.25, "resample_probability": 0.0, **fields}
    scheduler = scheduler_of("pbt", direction, seed, epochs, **spec)
    for n in range(4):
        scheduler.start(n, params(learning_rate=1.0e-3 * (n + 1)))
    return scheduler


def pack_epoch(scheduler, epoch: int, values: dict[int, float]) -> dict[int, Decision]:
    """Every member's decision after one epoch of the pack, in step."""
    return {n: scheduler.decide(n, epoch, v, {m: w for m, w in values.items() if m != n})
            for n, v in values.items()}


PACK_CURVES = {1: {0: 0.6, 1: 0.5, 2: 0.4, 3: 0.3}, 2: {0: 0.7, 1: 0.6, 2: 0.5, 3: 0.2},
               3: {0: 0.8, 1: 0.7, 2: 0.6, 3: 0.3}, 4: {0: 0.9, 1: 0.8, 2: 0.7, 3: 0.4}}


def test_pbt_bottom_member_exploits_the_top_one_every_few_epochs():
    scheduler = pbt()
    for epoch, values in PACK_CURVES.items():
        decisions = pack_epoch(scheduler, epoch, values)
        if epoch % 2:  # not an exploit epoch
            assert all(d == CONTINUE for d in decisions.values())
            continue
        assert all(decisions[n] == CONTINUE for n in (0, 1, 2))
        assert decisions[3].action is Action.EXPLOIT and decisions[3].source == 0  # the best
        values_ = decisions[3].values
        assert set(values_) == {"learning_rate", "dropout", "optimizer.momentum"}
        source = params(learning_rate=1.0e-3)
        for key, value in values_.items():  # resample_probability 0: scaled, never drawn
            assert any(math.isclose(value, source[key] * f) for f in (0.8, 1.2)), (key, value)
        # the target now holds the source's params with the explored values
        assert scheduler.params[3] == {**source, **values_}


def test_pbt_in_the_min_direction_and_with_a_diverged_member():
    scheduler = pbt(Direction.MIN)
    decisions = pack_epoch(scheduler, 2, {0: 0.9, 1: 0.2, 2: 0.5, 3: 0.4})
    assert decisions[0].action is Action.EXPLOIT and decisions[0].source == 1
    scheduler = pbt()
    decisions = pack_epoch(scheduler, 2, {0: math.nan, 1: 0.2, 2: 0.5, 3: 0.4})
    assert decisions[0].action is Action.EXPLOIT and decisions[0].source == 2  # NaN: worst


def test_pbt_leaves_one_member_equal_members_and_the_last_epoch_alone():
    scheduler = pbt()
    assert scheduler.decide(0, 2, 0.1) == CONTINUE  # no peers: no one to copy
    assert scheduler.decide(0, 2, 0.1, peers={}) == CONTINUE
    assert all(d == CONTINUE for d in pack_epoch(pbt(), 2, dict.fromkeys(range(4), 0.5)).values())
    nan = dict.fromkeys(range(4), math.nan)
    assert all(d == CONTINUE for d in pack_epoch(pbt(), 2, nan).values())
    last = pbt(epochs=4)
    assert all(d == CONTINUE for d in pack_epoch(last, 4, PACK_CURVES[4]).values())


def test_pbt_with_two_members_the_worse_copies_the_better():
    scheduler = pbt()
    decisions = pack_epoch(scheduler, 2, {0: 0.3, 1: 0.6})
    assert decisions[1] == CONTINUE
    assert decisions[0].action is Action.EXPLOIT and decisions[0].source == 1


def test_pbt_is_seeded_and_independent_of_the_order_members_report():
    first = pack_epoch(pbt(seed=3, resample_probability=0.5), 2, PACK_CURVES[2])
    reordered = dict(reversed(list(PACK_CURVES[2].items())))
    assert pack_epoch(pbt(seed=3, resample_probability=0.5), 2, reordered) == first
    sources = {pack_epoch(pbt(seed=s, fraction=0.5), 2, PACK_CURVES[2])[3].source
               for s in range(20)}
    assert sources == {0, 1}  # fraction 0.5: either of the top two


def test_pbt_explored_values_stay_within_their_distributions():
    edge = params(learning_rate=1.0e-1, dropout=0.5, **{"optimizer.momentum": 0.98})
    for seed in range(200):
        rng = random.Random(seed)
        values = explore(SPACE, edge, 0.5, rng)
        assert set(values) == {"learning_rate", "dropout", "optimizer.momentum"}
        assert 1.0e-4 <= values["learning_rate"] <= 1.0e-1
        assert 0.0 <= values["dropout"] <= 0.5
        assert 0.5 <= values["optimizer.momentum"] <= 0.99
    scaled = explore(SPACE, edge, 0.0, random.Random(0))  # 1.2x clipped to the high end
    assert scaled["dropout"] in (0.4, 0.5) and scaled["learning_rate"] <= 1.0e-1
    assert explore(SPACE, params(optimizer="adam"), 0.0, random.Random(0)).keys() == {
        "learning_rate", "dropout"}  # adam has no momentum to move
    assert {perturb(Int(1, 10), 5, random.Random(s)) for s in range(20)} == {4, 6}
    on_grid = {round(perturb(Float(0.0, 1.0, step=0.1), 0.5, random.Random(s)), 9)
               for s in range(20)}
    assert on_grid == {0.4, 0.6}


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("every", 0, "a whole number >= 1"),
    ("fraction", 0.6, "a number > 0 and <= 0.5"),
    ("fraction", 0, "a number > 0 and <= 0.5"),
    ("resample_probability", 1.5, "a number from 0 to 1"),
])
def test_pbt_spec_rejects_bad_values_naming_the_field(key, value, allowed):
    with pytest.raises(SpecError, match=rf"pruning.{key}: {value}.*expected {allowed}"):
        load_spec(None, {"pruning.rule": "pbt", f"pruning.{key}": value})


def test_pbt_spec_needs_an_exploit_before_the_last_epoch():
    spec = load_spec(None, {"epochs": 8, "pruning.rule": "pbt", "pruning.every": 2})
    assert spec.pruning.options == {"every": 2, "fraction": 0.25, "resample_probability": 0.25}
    with pytest.raises(SpecError, match=r"pruning.every: 8 is not allowed with rule pbt and 8 "
                                        r"epochs; expected 1 to 7"):
        load_spec(None, {"epochs": 8, "pruning.rule": "pbt", "pruning.every": 8})
