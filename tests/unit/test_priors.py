"""Warm starts without a store: an earlier trial mapped into a moved space, every sampler of
the catalog learning earlier trials before its first point, the rungs started from earlier
curves, the earlier best configurations chosen to train first, ``warm_start:`` validated."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

import mltune
from mltune.core.errors import SpecError
from mltune.core.terms import Direction
from mltune.search.history.priors import (
    Candidate,
    Priors,
    Source,
    choose_starts,
    parse_tag,
    start_count,
    warm_sampler,
    warm_scheduler,
)
from mltune.search.samplers.base import Finished
from mltune.search.schedulers import make_scheduler
from mltune.search.schedulers.base import Action, Context, TrialCurve
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.model import PruningSpec
from mltune.spec.space import build_space
from mltune.spec.start import check_warm_start, start_points
from mltune.spec.transfer import fit_point
from mltune.tasks import task_for

EARLIER = build_space({
    "lr": {"loguniform": [1e-4, 1e-1]}, "layers": {"quniform": [1, 4, 1]},
    "dropout": {"uniform": [0.0, 0.5]}, "step": {"quniform": [0.05, 0.5, 0.1]},
    "opt": {"choice": [{"name": "adam"}, {"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
})
NOW = build_space({  # dropout dropped, decay added, lr narrowed, a fixed value, an option gone
    "lr": {"loguniform": [1e-3, 1e-1]}, "layers": {"quniform": [1, 4, 1]},
    "decay": {"loguniform": [1e-6, 1e-2]}, "step": {"quniform": [0.05, 0.5, 0.1]},
    "norm": "batch",
    "opt": {"choice": [{"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
})


def test_an_earlier_trial_keeps_what_still_means_the_same_in_a_moved_space():
    point = {"lr": 0.01, "layers": 2, "dropout": 0.3, "step": 0.0, "opt": "sgd",
             "opt.momentum": 0.9}
    fitted = fit_point(NOW, point)
    assert fitted is not None  # dropout dropped; step 0.0 is what quniform draws from 0.05
    assert fitted.point == {"lr": 0.01, "layers": 2, "step": 0.0, "norm": "batch",
                            "opt": "sgd", "opt.momentum": 0.9}
    assert fitted.missing == ("decay",)  # left unknown to the sampler
    assert isinstance(fitted.point["layers"], int)
    assert fit_point(NOW, {**point, "lr": 5e-4}) is None  # outside the narrowed bound
    assert fit_point(NOW, {**point, "opt": "adam"}) is None  # an option no longer there
    assert fit_point(NOW, {**point, "norm": "layer"}) is None  # the space fixes another
    assert fit_point(NOW, {**point, "layers": 2.5}) is None  # not a whole number
    missing_choice = fit_point(NOW, {"lr": 0.01, "layers": 2, "step": 0.1})
    assert missing_choice is not None and "opt" in missing_choice.missing


def priors_around(best_lr: float, seed: int = 0, n: int = 30) -> list[Finished]:
    """Earlier trials of a space without ``new``: the loss is the distance to ``best_lr``."""
    rng = np.random.default_rng(seed)
    finished = []
    for _ in range(n):
        lr = float(np.exp(rng.uniform(math.log(1e-4), math.log(1e-1))))
        finished.append(Finished({"lr": lr, "units": int(rng.choice([16, 32, 64]))},
                                 abs(math.log10(lr / best_lr))))
    return finished


SPACE = build_space({"lr": {"loguniform": [1e-4, 1e-1]}, "units": {"choice": [16, 32, 64]},
                     "new": {"uniform": [0.0, 1.0]}})


def first_distance(algo: str, seed: int, warm: bool) -> float:
    """How far (decades) the sampler's first point lands from the earlier trials' best."""
    sampler = SAMPLERS.get(algo)(SPACE, 20, seed)
    if warm:
        assert sampler.warm(priors_around(1e-2)) == 30  # every one, though none has ``new``
    (point,) = sampler.ask(1)
    assert set(point) == {"lr", "units", "new"}
    return abs(math.log10(point["lr"] / 1e-2))


@pytest.mark.parametrize("algo", SAMPLERS.names())
def test_every_sampler_learns_earlier_trials_before_its_first_point(algo):
    # 30 earlier trials, none with the key ``new``: every sampler takes them all; a
    # model-based one's first point is already a model's (near their best), where its own
    # random start-up (5 trials for a budget of 20) would still be drawing at random
    warm = [first_distance(algo, seed, warm=True) for seed in range(4)]
    cold = [first_distance(algo, seed, warm=False) for seed in range(4)]
    if algo == "rand":  # random search by design: learns nothing
        return
    assert max(warm) < 0.6 and np.mean(warm) < 0.6 * np.mean(cold), (warm, cold)


def test_a_sampler_that_cannot_learn_says_so_in_one_line_and_starts_cold(caplog):
    class Plain:  # a sampler of the protocol without ``warm``
        def ask(self, n=1, fixed=None):
            return []

    priors = Priors(looked=True, sources=[Source("a" * 32, "A", True, 30, 30)],
                    finished=priors_around(1e-2))
    with caplog.at_level(logging.WARNING, logger="mltune"):
        warm_sampler(Plain(), priors, "mine")
    assert [r.getMessage() for r in caplog.records] == [
        "warm_start: algo mine cannot learn from earlier searches: it starts cold"]
    assert priors.line().endswith("algo mine cannot learn from earlier searches: it starts cold")


def test_asha_starts_from_the_earlier_rungs_and_stops_a_hopeless_point_at_the_first():
    curves = [TrialCurve(-1 - i, {}, (0.90 + i / 100, 0.95)) for i in range(6)]
    trusted = {"lr": 0.01}  # a point trained first: the task's defaults, an earlier best
    priors = Priors(looked=True, curves=curves, first=[trusted])
    context = Context(Direction.MAX, {}, 0, 9)
    cold = make_scheduler(PruningSpec("asha", {"min_epochs": 1, "eta": 3}), context)
    warm = warm_scheduler(make_scheduler(PruningSpec("asha", {"min_epochs": 1, "eta": 3}),
                                         context), priors, "asha")
    for number, scheduler in enumerate((cold, warm, warm, warm), start=1):
        scheduler.start(number, trusted if number == 4 else {"lr": 0.1})
    assert cold.decide(1, 1, 0.5).action == Action.CONTINUE  # too few values to judge
    assert warm.decide(2, 1, 0.5).action == Action.STOP  # below the earlier rung's top third
    assert warm.decide(3, 1, 0.97).action == Action.CONTINUE
    assert warm.decide(4, 1, 0.5).action == Action.CONTINUE  # trusted: a hurdle, not judged
    median = warm_scheduler(make_scheduler(PruningSpec(
        "median", {"warmup_trials": 3, "warmup_epochs": 0}), context), priors, "median")
    median.start(1, {})  # its warm-up is spent on the earlier trials
    assert median.decide(1, 1, 0.5).action == Action.STOP
    pbt = make_scheduler(PruningSpec("pbt", {}), context)
    assert warm_scheduler(pbt, priors, "pbt") is pbt  # its population is a pack: no curves


def test_with_changed_data_the_earlier_best_configuration_is_never_stopped_the_rest_are():
    earlier_best, defaults = {"lr": 0.004}, {"lr": 0.01}
    priors = Priors(looked=True, starts=[earlier_best], first=[defaults])  # no curves
    context = Context(Direction.MAX, {}, 0, 9)
    asha = warm_scheduler(make_scheduler(PruningSpec("asha", {"min_epochs": 1, "eta": 3}),
                                         context), priors, "asha")
    for number, params in enumerate((defaults, earlier_best, {"lr": 0.1}, {"lr": 0.2}),
                                    start=1):
        asha.start(number, params)
    for number, value in ((3, 0.97), (4, 0.96)):
        asha.decide(number, 1, value)
    assert asha.decide(1, 1, 0.5).action == Action.STOP  # defaults: judged as any point
    assert asha.decide(2, 1, 0.4).action == Action.CONTINUE  # the earlier best: never
    assert warm_scheduler(asha, Priors(looked=True), "asha") is asha  # nothing earlier


def test_the_earlier_best_configurations_train_first_completed_and_credited():
    spec = mltune.load_spec(None, {"task": "tabular", "max_evals": 20})
    task = task_for(spec)
    space = build_space(spec.space)
    first = start_points(spec, task, space)  # the task's defaults
    best = {**first[0], "learning_rate": 0.02, "dropout": 0.3}
    partial = {k: v for k, v in best.items() if k != "dropout"}  # an earlier space lacked it
    priors = Priors(looked=True, sources=[Source("a" * 32, "A", True, 3), Source("b" * 32, "B",
                                                                              False, 2)],
                    candidates=[Candidate(first[0], 0.01, 0), Candidate(partial, 0.02, 1),
                                Candidate(partial, 0.03, 0), Candidate(best, 0.04, 0)])
    starts = choose_starts(priors, first, task, space, count=3)
    assert starts == [{**partial, "dropout": first[0]["dropout"]}, best]
    assert [s.starts for s in priors.sources] == [1, 1]
    assert parse_tag(priors.tag()) == priors.sources
    assert "their best 2 configurations trained first" in priors.line()



@pytest.mark.parametrize(("budget", "count"), [
    ({"max_evals": 4}, 1), ({"max_evals": 200}, 1), ({"stop": {"time_budget_s": 60}}, 1),
    ({"max_evals": 10_000, "stop": {"time_budget_s": 20}}, 1)])
def test_one_earlier_best_configuration_is_trained_first_whatever_the_budget(budget, count):
    # three, trained to their last epoch, ate a short budget (benchmarks/warm_start.py)
    assert start_count(mltune.load_spec(None, {"task": "tabular", **budget})) == count


@pytest.mark.parametrize(("written", "read"), [
    (None, "auto"), ("auto", "auto"), (False, "off"), ("off", "off"), ([], "off"),
    (["digits-cnn", "0" * 32], ("digits-cnn", "0" * 32)), ("a, b,a", ("a", "b"))])
def test_warm_start_is_auto_off_or_the_searches_to_learn_from(written, read):
    assert check_warm_start(written) == read


def test_a_bad_warm_start_is_one_line_naming_what_is_allowed():
    with pytest.raises(SpecError) as error:
        mltune.load_spec(None, {"warm_start": 3})
    assert str(error.value) == ("warm_start: 3 is not allowed; expected auto, off, or a list "
                                "of parent run ids or search names (a, b)")
    with pytest.raises(SpecError, match=r"warm_start: entry 'off' of \['a', 'off'\]"):
        mltune.load_spec(None, {"warm_start": ["a", "off"]})
    assert mltune.load_spec(None, {"warm_start": False}).warm_start == "off"  # YAML's `off`
