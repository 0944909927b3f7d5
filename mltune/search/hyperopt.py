"""All of the hyperopt glue: the suggest algorithm, what TPE learns from a trial, and the
``Trials`` history a resumed search starts from.

Every backend talks to hyperopt through these functions, so TPE sees the same history whether
trials ran here, in Ray workers, or before a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
from hyperopt import (
    JOB_STATE_DONE,
    STATUS_FAIL,
    STATUS_OK,
    Domain,
    Trials,
    anneal,
    rand,
    space_eval,
    tpe,
)
from hyperopt.fmin import generate_trials_to_calculate

from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction


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


def result_of(outcome: TrialOutcome, metric: str, direction: Direction) -> dict[str, Any]:
    """What TPE learns from a trial: its measured metric as a loss, whatever happened after
    (a pruned trial's best value counts; so does a trial whose model could not be logged).
    A trial that measured nothing is a failed point."""
    value = outcome.metrics.get(metric)
    if value is None:
        return {"status": STATUS_FAIL, "trial": outcome.number}
    return {"status": STATUS_OK, "loss": direction.as_loss(value), "trial": outcome.number,
            "run_id": outcome.run_id}


def native(vals: Mapping[str, Any]) -> dict[str, Any]:
    """hyperopt's raw point with numpy scalars as Python values (it is stored as JSON)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in vals.items()}


def point_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The raw point of a hyperopt trial document (inactive conditional labels left out)."""
    return native({k: v[0] for k, v in doc["misc"]["vals"].items() if v})


def rebuilt_trials(space: dict[str, Any], history: Any,
                   result: Callable[[TrialOutcome], dict[str, Any]]) -> Trials:
    """A ``Trials`` holding a resumed search's history (``ResumeState``), then its
    interrupted points queued to run first."""
    labels = list(domain_of(space).params)

    def full(vals: dict[str, Any]) -> dict[str, Any]:
        return {label: vals[label] for label in labels if label in vals}

    points = [full(v) for v in history.vals] + [full(v) for v in history.requeue]
    trials = Trials()
    if not points:
        return trials
    docs = generate_trials_to_calculate(points)._dynamic_trials
    for doc, outcome in zip(docs, history.outcomes, strict=False):
        doc["state"] = JOB_STATE_DONE
        doc["result"] = result(outcome)
    for doc in docs:
        misc = doc["misc"]
        for label in labels:  # inactive conditional params: present, empty (TPE needs them)
            misc["vals"].setdefault(label, [])
            misc["idxs"].setdefault(label, [])
            if not misc["vals"][label]:
                misc["idxs"][label] = []
    trials.insert_trial_docs(docs)
    trials.refresh()
    return trials


def done(trials: Trials) -> int:
    """Trials that ran (not the ones queued to run again)."""
    return sum(t["state"] == JOB_STATE_DONE for t in trials.trials)


# -- packs -------------------------------------------------------------------------------------

def _switch_label(node: Any) -> str | None:
    """The label of a ``choice``/``pchoice`` node, or None for any other node."""
    if getattr(node, "name", None) != "switch":
        return None
    param = node.pos_args[0]
    return param.pos_args[0].obj if getattr(param, "name", None) == "hyperopt_param" else None


def condition(space: Mapping[str, Any], point: Mapping[str, Any], free: Callable[[str], bool]
              ) -> dict[str, Any]:
    """The space with every hyperparameter that is not ``free`` fixed as in ``point``.

    A fixed ``choice`` keeps its chosen option, so the option's own hyperparameters
    (``optimizer[2].momentum``) stay free under their labels; any other fixed one becomes the
    value it took. TPE then fills a pack's other members over what is left.
    """
    sample = space_eval(dict(space), dict(point))
    fixed: dict[str, Any] = {}
    for key, node in space.items():
        if free(key):
            fixed[key] = node
            continue
        label = _switch_label(node)
        if label is not None and label in point:
            fixed[key] = node.pos_args[1 + int(point[label])]
        else:
            fixed[key] = sample[key]
    return fixed


def _full_doc(doc: dict[str, Any], point: Mapping[str, Any], labels: list[str]) -> None:
    """Give a member's document the fixed labels' values, so it is a point of the whole
    space (what resume, the report and TPE's history read)."""
    misc, tid = doc["misc"], doc["tid"]
    for label in labels:
        if misc["vals"].get(label):
            continue
        if label in point:
            misc["vals"][label], misc["idxs"][label] = [point[label]], [tid]
        else:
            misc["vals"][label], misc["idxs"][label] = [], []


def domain_of(space: dict[str, Any]) -> Domain:
    """hyperopt's compiled form of ``space``, which its algorithms suggest from (10 ms to build
    for the digits space: once per search, not once per trial)."""
    return Domain(lambda _: 0.0, space)


def suggest_pack(space: dict[str, Any], trials: Trials, algo: Callable[..., Any],
                 rng: np.random.Generator, size_for: Callable[[dict[str, Any]], int],
                 free: Callable[[str], bool], tries: int = 5,
                 domain: Domain | None = None) -> list[dict[str, Any]]:
    """Up to ``size_for(first point)`` new trial documents, inserted into ``trials`` as
    pending. ``domain``: ``domain_of(space)``, built once by the caller.

    The first is the algorithm's own suggestion and fixes the pack's shape; the others are
    suggested over the free hyperparameters only, each knowing every earlier result (pending
    points count as failed for TPE, which steers it away from them) and differing from every
    pending point. With fewer distinct points to be had, the pack is smaller.
    """
    domain = domain or domain_of(space)
    labels = list(domain.params)
    first = algo(trials.new_trial_ids(1), domain, trials, rng.integers(2**31 - 1))
    trials.insert_trial_docs(first)
    trials.refresh()
    docs = list(first)
    point = point_of(docs[0])
    size = size_for(point)
    if size <= 1:
        return docs
    conditioned = condition(space, point, free)
    free_domain = domain_of(conditioned)
    if not free_domain.params:
        return docs  # nothing may differ: a pack of one
    seen = [point_of(doc) for doc in docs]
    while len(docs) < size:
        for _ in range(tries):
            (doc,) = algo(trials.new_trial_ids(1), free_domain, trials,
                          rng.integers(2**31 - 1))
            _full_doc(doc, point, labels)
            if point_of(doc) not in seen:
                break
        else:
            return docs  # the free hyperparameters give no new point
        seen.append(point_of(doc))
        trials.insert_trial_docs([doc])
        trials.refresh()
        docs.append(doc)
    return docs
