"""The local backend: hyperopt's ``fmin`` with in-memory ``Trials``, trials one after another."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from hyperopt import Trials, anneal, fmin, rand, tpe
from hyperopt.exceptions import AllTrialsFailed

from mltune.backends import BACKENDS
from mltune.spec import SearchSpec


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


@BACKENDS.register("local")
def run_local(objective: Callable[[dict[str, Any]], dict[str, Any]], space: dict[str, Any],
              spec: SearchSpec) -> None:
    try:
        fmin(
            objective,
            space,
            algo=algorithm(spec.algo, spec.max_evals),
            max_evals=spec.max_evals,
            trials=Trials(),
            rstate=np.random.default_rng(spec.seed),
            show_progressbar=False,
            return_argmin=False,
        )
    except AllTrialsFailed:
        pass  # the search reports it, with the trials' errors
