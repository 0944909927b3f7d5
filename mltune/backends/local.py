"""The local backend: hyperopt's ``fmin`` with in-memory ``Trials``, trials one after another.

A resumed search starts from a ``Trials`` rebuilt from MLflow (finished, failed and pruned
trials as done documents, interrupted ones queued to run first), so TPE continues where it was.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from hyperopt import JOB_STATE_DONE, Domain, Trials, anneal, fmin, rand, tpe
from hyperopt.exceptions import AllTrialsFailed
from hyperopt.fmin import generate_trials_to_calculate
from hyperopt.pyll import rec_eval

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


def rebuilt_trials(space: dict[str, Any], state: Any, result_of: Callable[..., Any]) -> Trials:
    """A ``Trials`` holding the resumed search's history, then its interrupted points."""
    labels = list(Domain(lambda _: 0.0, space).params)

    def full(vals: dict[str, Any]) -> dict[str, Any]:
        return {label: vals[label] for label in labels if label in vals}

    points = [full(v) for v in state.vals] + [full(v) for v in state.requeue]
    trials = Trials()
    if not points:
        return trials
    docs = generate_trials_to_calculate(points)._dynamic_trials
    for doc, outcome in zip(docs, state.outcomes, strict=False):
        doc["state"] = JOB_STATE_DONE
        doc["result"] = result_of(outcome)
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


@BACKENDS.register("local")
def run_local(objective: Any, space: dict[str, Any], spec: SearchSpec, state: Any,
              stop_reason: Callable[[], str | None]) -> None:
    from mltune.search import hyperopt_result

    def evaluate(expr: Any, memo: Any, ctrl: Any) -> dict[str, Any]:
        sample = rec_eval(expr, memo=memo, print_node_on_error=False)
        vals = {k: v[0] for k, v in ctrl.current_trial["misc"]["vals"].items() if v}
        return objective(sample, _native(vals))

    trials = rebuilt_trials(space, state, lambda o: hyperopt_result(o, spec))

    def budget_spent(trials: Trials, *_: Any) -> tuple[bool, list[Any]]:
        return stop_reason() is not None or _done(trials) >= spec.max_evals, []

    try:
        fmin(
            evaluate,
            space,
            algo=algorithm(spec.algo, spec.max_evals),
            # fmin runs ``max_evals - len(trials)`` more, and ``len`` counts the interrupted
            # points queued to re-run: with as many queued as trials left it would run none.
            # The budget is enforced by ``budget_spent`` instead.
            max_evals=spec.max_evals + len(state.requeue),
            trials=trials,
            rstate=np.random.default_rng(spec.seed + len(trials)),
            show_progressbar=False,
            return_argmin=False,
            pass_expr_memo_ctrl=True,
            early_stop_fn=budget_spent,
        )
    except AllTrialsFailed:
        pass  # the search reports it, with the trials' errors


def _done(trials: Trials) -> int:
    return sum(t["state"] == JOB_STATE_DONE for t in trials.trials)


def _native(vals: dict[str, Any]) -> dict[str, Any]:
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in vals.items()}
