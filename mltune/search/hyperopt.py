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
from hyperopt import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK, Domain, Trials, anneal, rand, tpe
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
    labels = list(Domain(lambda _: 0.0, space).params)

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
