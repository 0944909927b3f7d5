"""The local backend: hyperopt's ``fmin`` with in-memory ``Trials``, trials one after another.

A resumed search starts from a ``Trials`` rebuilt from MLflow (finished, failed and pruned
trials as done documents, interrupted ones queued to run first), so TPE continues where it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hyperopt import Trials, fmin
from hyperopt.exceptions import AllTrialsFailed
from hyperopt.pyll import rec_eval

from mltune.search.backend import BACKENDS
from mltune.search.hyperopt import algorithm, done, point_of, rebuilt_trials, result_of
from mltune.search.session import Session
from mltune.spec.model import SearchSpec


class LocalBackend:
    """Trials one after another in this process (the model of the previous one is logged in
    the background while the next trains)."""

    def preflight(self, spec: SearchSpec) -> None:
        """Nothing to check: hyperopt is a dependency."""

    def run(self, session: Session, space: dict[str, Any]) -> None:
        spec = session.spec

        def result(outcome: Any) -> dict[str, Any]:
            return result_of(outcome, spec.metric, spec.direction)

        def evaluate(expr: Any, memo: Any, ctrl: Any) -> dict[str, Any]:
            sample = rec_eval(expr, memo=memo, print_node_on_error=False)
            return result(session.run_trial(sample, point_of(ctrl.current_trial)))

        history = session.history
        trials = rebuilt_trials(space, history, result)

        def budget_spent(trials: Trials, *_: Any) -> tuple[bool, list[Any]]:
            return session.stop_reason() is not None or done(trials) >= spec.max_evals, []

        try:
            fmin(
                evaluate,
                space,
                algo=algorithm(spec.algo, spec.max_evals),
                # fmin runs ``max_evals - len(trials)`` more, and ``len`` counts the points
                # queued to re-run: with as many queued as trials left it would run none.
                # The budget is enforced by ``budget_spent`` instead.
                max_evals=spec.max_evals + len(history.requeue),
                trials=trials,
                rstate=np.random.default_rng(spec.seed + len(trials)),
                show_progressbar=False,
                return_argmin=False,
                pass_expr_memo_ctrl=True,
                early_stop_fn=budget_spent,
            )
        except AllTrialsFailed:
            pass  # the search reports it, with the trials' errors


BACKENDS.add("local", LocalBackend())
