"""The local backend: hyperopt suggests, this process trains, one pack after another.

A pack is one trial when the search is unpacked (``pack: 1``, or a network that cannot be
packed); then this loop makes exactly the calls hyperopt's ``fmin`` makes (one suggestion per
trial, seeds drawn in the same order). A resumed search starts from a ``Trials`` rebuilt from
MLflow (finished, failed and pruned trials as done documents, interrupted ones queued), and its
interrupted points run first, in packs of one shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from hyperopt import JOB_STATE_DONE, JOB_STATE_NEW, space_eval
from hyperopt.base import spec_from_misc

from mltune.core.outcomes import TrialOutcome
from mltune.search.backend import BACKENDS
from mltune.search.hyperopt import (
    algorithm,
    domain_of,
    done,
    rebuilt_trials,
    result_of,
    suggest_pack,
)
from mltune.search.session import Session
from mltune.spec.model import SearchSpec
from mltune.spec.space import decode


class LocalBackend:
    """Packs of trials one after another in this process (the models of one pack are logged
    in the background while the next trains)."""

    def preflight(self, spec: SearchSpec) -> None:
        """Nothing to check: hyperopt is a dependency."""

    def run(self, session: Session, space: dict[str, Any]) -> None:
        spec = session.spec

        def result(outcome: TrialOutcome) -> dict[str, Any]:
            return result_of(outcome, spec.metric, spec.direction)

        trials = rebuilt_trials(space, session.history, result)
        rng = np.random.default_rng(spec.seed + len(trials))
        algo = algorithm(spec.algo, spec.max_evals)
        queued = [doc for doc in trials.trials if doc["state"] == JOB_STATE_NEW]
        domain = domain_of(space)

        def sized(point: dict[str, Any]) -> int:  # the pack of the shape a point fixes
            return session.pack_size(decode(space_eval(space, point)))

        while session.stop_reason() is None and done(trials) < spec.max_evals:
            if queued:
                docs = _same_shape(queued, space, min(session.pack_limit, session.left),
                                   session.is_free)
            else:
                docs = suggest_pack(space, trials, algo, rng, sized, session.is_free,
                                    domain=domain)
            points = [decode(space_eval(space, spec_from_misc(d["misc"]))) for d in docs]
            for doc, outcome in zip(docs, session.run_pack(points), strict=True):
                doc["state"], doc["result"] = JOB_STATE_DONE, result(outcome)
                doc["refresh_time"] = time.time()
            trials.refresh()


def _same_shape(queued: list[dict[str, Any]], space: dict[str, Any], limit: int,
                is_free: Callable[[str], bool]) -> list[dict[str, Any]]:
    """The next interrupted points to run again: the first, and those of its shape, up to
    ``limit`` (taken off ``queued``)."""
    def shape(doc: dict[str, Any]) -> dict[str, Any]:
        params = decode(space_eval(space, spec_from_misc(doc["misc"])))
        return {k: v for k, v in params.items() if not is_free(k.split(".")[0])
                and "." not in k}

    first = shape(queued[0])
    chosen = [d for d in queued if shape(d) == first][:max(1, limit)]
    for doc in chosen:
        queued.remove(doc)
    return chosen


BACKENDS.add("local", LocalBackend())
