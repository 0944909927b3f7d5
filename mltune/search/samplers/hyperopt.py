"""Hyperopt's ``tpe``, ``rand`` and ``anneal`` behind the sampler protocol: the one module that
imports hyperopt.

mltune's distributions become the same ``hp.*`` expressions mltune has always searched (labels
``optimizer``, ``optimizer[1].momentum``), so TPE behaves as before. The sampler keeps its own
``Trials``: an asked point is a pending document, a told one is done with its loss, and a
resumed search's history is rebuilt from decoded points (a choice's index found from the option
value or ``name``), so hyperopt never needs anything but what a trial's run holds as params.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from hyperopt import (
    JOB_STATE_DONE,
    JOB_STATE_NEW,
    STATUS_FAIL,
    STATUS_OK,
    Domain,
    Trials,
    anneal,
    hp,
    rand,
    space_eval,
    tpe,
)
from hyperopt.pyll import scope

from mltune.search.samplers.base import Finished, Params
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.distributions import Categorical, Float, Int, Normal, Space, is_conditional
from mltune.spec.distributions import is_distribution as drawn
from mltune.spec.space import decode, option_index

TRIES = 10  # suggestions tried for a point unlike every pending one before giving up
DOMAINS_KEPT = 64  # compiled spaces of fixed shapes kept (the oldest goes first)


def startup_trials(budget: int) -> int:
    """TPE's random start-up, sized for the budget.

    hyperopt's default of 20 random trials turns a 20-trial search into random search; a
    quarter of the budget (2 to 20) leaves most trials to TPE.
    """
    return max(2, min(20, budget // 4))


def algorithm(name: str, budget: int) -> Callable[..., Any]:
    """The hyperopt suggest function for ``algo``."""
    if name == "tpe":
        return partial(tpe.suggest, n_startup_jobs=startup_trials(budget))
    return {"rand": rand.suggest, "anneal": anneal.suggest}[name]


# -- mltune's space -> hyperopt's --------------------------------------------------------------

def _number(label: str, dist: Float | Int | Normal) -> Any:
    """The ``hp.*`` expression the YAML distribution (``source``) has always made."""
    if isinstance(dist, Normal):
        if dist.log:
            return hp.lognormal(label, dist.mu, dist.sigma)
        if dist.step is None:
            return hp.normal(label, dist.mu, dist.sigma)
        expr = hp.qnormal(label, dist.mu, dist.sigma, dist.step)
        return scope.int(expr) if dist.whole else expr
    if dist.source == "randint":
        return hp.randint(label, dist.low, dist.high + 1)
    low, high = (math.log(dist.low), math.log(dist.high)) if dist.log else (dist.low, dist.high)
    if dist.step is None:
        return (hp.loguniform if dist.log else hp.uniform)(label, low, high)
    expr = (hp.qloguniform if dist.log else hp.quniform)(label, low, high, dist.step)
    return scope.int(expr) if isinstance(dist, Int) else expr


def to_hyperopt(space: Space, fixed: Mapping[str, Any] | None = None, prefix: str = "",
                label_prefix: str = "") -> dict[str, Any]:
    """hyperopt's space for ``space``; every hyperparameter in ``fixed`` (decoded names) takes
    its value there, a fixed choice its option, whose own hyperparameters stay free unless
    ``fixed`` names them too."""
    fixed = fixed or {}
    return {name: _node(f"{label_prefix}{name}", f"{prefix}{name}", value, fixed)
            for name, value in space.items()}


def _node(label: str, key: str, value: Any, fixed: Mapping[str, Any]) -> Any:
    if isinstance(value, Categorical):
        chosen = option_index(value, key, fixed) if key in fixed or _under(key, fixed) else None
        if chosen is None and key in fixed:
            raise ValueError(f"fixed {key}: {fixed[key]!r} is none of its options "
                             f"{list(value.options)}")
        if chosen is not None:
            return _option(f"{label}[{chosen}]", key, value.options[chosen], fixed)
        options = [_option(f"{label}[{i}]", key, o, fixed) for i, o in enumerate(value.options)]
        if value.weights is None:
            return hp.choice(label, options)
        return hp.pchoice(label, list(zip(value.weights, options, strict=True)))
    if key in fixed:
        return fixed[key]
    if drawn(value):
        return _number(label, value)
    return value


def _under(key: str, fixed: Mapping[str, Any]) -> bool:
    return any(k.startswith(f"{key}.") for k in fixed)


def _option(label: str, key: str, option: Any, fixed: Mapping[str, Any]) -> Any:
    if is_conditional(option):
        return {k: v if k == "name" else _node(f"{label}.{k}", f"{key}.{k}", v, fixed)
                for k, v in option.items()}
    return _node(label, key, option, fixed) if drawn(option) else option


def encode(space: Space, point: Mapping[str, Any], prefix: str = "",
           label_prefix: str = "") -> dict[str, Any]:
    """A decoded point -> hyperopt's raw vals (a choice as its option's index); the labels of
    options not chosen are left out. A value the space cannot have raises ValueError."""
    vals: dict[str, Any] = {}
    for name, value in space.items():
        key, label = f"{prefix}{name}", f"{label_prefix}{name}"
        if isinstance(value, Categorical):
            i = option_index(value, key, point)
            if i is None:
                raise ValueError(f"{key}: {point.get(key)!r} is none of the options")
            vals[label] = i
            option = value.options[i]
            if is_conditional(option):
                own = {k: v for k, v in option.items() if k != "name"}
                vals.update(encode(own, point, f"{key}.", f"{label}[{i}]."))
            elif drawn(option):  # drawn under the option's label, shown under the key
                vals[f"{label}[{i}]"] = point[key]
        elif drawn(value):
            vals[label] = point[key]
    return vals


# -- the sampler -------------------------------------------------------------------------------

class HyperoptSampler:
    """One of hyperopt's algorithms over its own ``Trials`` (``base.Sampler``).

    Seeds: trial document ``tid`` is suggested with the ``tid``-th draw of the search's seed
    (what ``fmin`` does), so a pack of one proposes what ``fmin`` would, the same spec and seed
    give the same points, and a sampler rebuilt from a history proposes what one told it trial
    by trial would.
    """

    def __init__(self, algo: str, space: Space, budget: int, seed: int) -> None:
        self.space, self.seed = space, seed
        self.algo = algorithm(algo, budget)
        self.hp_space = to_hyperopt(space)
        self.domain = Domain(lambda _: 0.0, self.hp_space)  # compiled once (10 ms for digits)
        self.labels = list(self.domain.params)
        self.trials = Trials()
        self._stream = np.random.default_rng(seed)
        self._seeds: list[int] = []
        self._points: dict[int, Params] = {}  # each document's decoded point, by tid
        self._domains: dict[tuple[tuple[str, str], ...], tuple[dict[str, Any], Domain]] = {}

    def ask(self, n: int = 1, fixed: Mapping[str, Any] | None = None) -> list[Params]:
        hp_space, domain = self._domain(fixed) if fixed else (self.hp_space, self.domain)
        points: list[Params] = []
        for _ in range(n):
            point = self._suggest(hp_space, domain)
            if point is None:
                break
            points.append(point)
        return points

    def tell(self, point: Params, loss: float | None) -> None:
        doc = self._pending_doc(point)
        if doc is None:  # a point this sampler never asked (another process did): learn it
            doc = self._insert(point, JOB_STATE_NEW)
        doc["state"], doc["result"] = JOB_STATE_DONE, _result(loss)
        self.trials.refresh()

    def pending(self, point: Params) -> None:
        if self._pending_doc(point) is None:
            self._insert(point, JOB_STATE_NEW)
            self.trials.refresh()

    def rebuild(self, finished: Sequence[Finished]) -> None:
        for trial in finished:
            doc = self._insert(trial.point, JOB_STATE_DONE)
            doc["result"] = _result(trial.loss)
        self.trials.refresh()

    def _suggest(self, hp_space: dict[str, Any], domain: Domain) -> Params | None:
        """The algorithm's next point over ``domain``, unlike every pending one (None when
        ``TRIES`` suggestions gave none), inserted as pending."""
        tid = len(self.trials._dynamic_trials)
        taken = [self._points[d["tid"]] for d in self.trials._dynamic_trials
                 if d["state"] == JOB_STATE_NEW]
        for attempt in range(TRIES):
            (doc,) = self.algo([tid], domain, self.trials, self._seed(tid, attempt))
            point = decode(space_eval(hp_space, {k: v[0] for k, v in doc["misc"]["vals"].items()
                                                 if v}))
            if point not in taken:
                self._insert(point, JOB_STATE_NEW)
                self.trials.refresh()
                return point
        return None

    def _domain(self, fixed: Mapping[str, Any]) -> tuple[dict[str, Any], Domain]:
        """The space with ``fixed`` taken as given, compiled once per shape (a pack's refills
        ask with the same shape again and again; compiling costs ~10 ms)."""
        key = tuple(sorted((k, repr(v)) for k, v in fixed.items()))
        if key not in self._domains:
            if len(self._domains) >= DOMAINS_KEPT:
                self._domains.pop(next(iter(self._domains)))
            hp_space = to_hyperopt(self.space, fixed)
            self._domains[key] = (hp_space, Domain(lambda _: 0.0, hp_space))
        return self._domains[key]

    def _seed(self, tid: int, attempt: int) -> int:
        if attempt:  # a retry: a stream of its own, the same run to run
            return int(np.random.default_rng((self.seed, tid, attempt)).integers(2**31 - 1))
        while len(self._seeds) <= tid:
            self._seeds.append(int(self._stream.integers(2**31 - 1)))
        return self._seeds[tid]

    def _insert(self, point: Params, state: int) -> dict[str, Any]:
        """A document for ``point`` over every label (inactive ones present and empty: TPE
        needs them)."""
        tid = len(self.trials._dynamic_trials)
        vals = encode(self.space, point)
        misc = {"tid": tid, "cmd": self.domain.cmd, "workdir": None,
                "idxs": {label: [tid] if label in vals else [] for label in self.labels},
                "vals": {label: [vals[label]] if label in vals else [] for label in self.labels}}
        (doc,) = self.trials.new_trial_docs([tid], [None], [{"status": "new"}], [misc])
        doc["state"] = state
        self.trials.insert_trial_docs([doc])
        self._points[tid] = dict(point)
        return self.trials._dynamic_trials[-1]

    def _pending_doc(self, point: Params) -> dict[str, Any] | None:
        for doc in self.trials._dynamic_trials:
            if doc["state"] == JOB_STATE_NEW and self._points[doc["tid"]] == point:
                return doc
        return None


def _result(loss: float | None) -> dict[str, Any]:
    """What hyperopt learns: a loss, or a failed point (a trial that measured nothing)."""
    return {"status": STATUS_FAIL} if loss is None else {"status": STATUS_OK, "loss": loss}


def _factory(algo: str) -> Callable[[Space, int, int], HyperoptSampler]:
    def make(space: Space, budget: int, seed: int) -> HyperoptSampler:
        return HyperoptSampler(algo, space, budget, seed)

    make.__doc__ = f"hyperopt's {algo} over ``space``."
    return make


for _name in ("tpe", "rand", "anneal"):
    SAMPLERS.add(_name, _factory(_name))
