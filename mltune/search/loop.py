"""The search from end to end: prepared (``prepare``: every refusal before a run opens), its
parent run opened, its lanes run by the backend around one coordinator (``packs``), then
concluded (``selection.finish``: an ensemble or a refit, registration, gate, report). The
parent run ends as the search did (``SearchRun.closing``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mltune.core.errors import SearchError
from mltune.core.heap import frozen_heap
from mltune.core.interrupts import Stop, stop_on_signals
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import TrialStatus
from mltune.search.history.result import SearchResult
from mltune.search.history.resume import ResumeState, rebuilt
from mltune.search.history.stopping import Progress
from mltune.search.packs.coordinator import Coordinator, FixedPoints
from mltune.search.packs.driver import Driver
from mltune.search.packs.lane import Lane
from mltune.search.packs.shapes import is_free
from mltune.search.prepare import Prepared, open_search, prepare, with_network
from mltune.search.selection.finish import conclude
from mltune.spec.model import SearchSpec
from mltune.spec.rules import check_params
from mltune.tracking.remote import check_tracking_server
from mltune.tracking.runs import SearchRun
from mltune.tracking.store import create_tables, share_sqlite_store
from mltune.tracking.tracker import MlflowTracker
from mltune.training.device import resolve_device
from mltune.training.precision import resolve_precision

Display = Callable[[TrialOutcome, float | None], None]


def tune(
    spec: SearchSpec,
    progress: Display | None = None,
    resume: str | None = None,
    on_start: Callable[[], None] | None = None,
    model: Any = None,
) -> SearchResult:
    """Run the search the spec describes (or continue the one ``resume`` names); register
    the best model. Returns the outcome.

    ``progress(outcome, best)`` is called after each trial; ``on_start`` once the data has
    loaded and the parent run is open, before the first trial (so a progress display never
    appears above a data error). ``model``: your network's callable, ``build(params, data)
    -> nn.Module``, instead of the spec's ``model:``.
    """
    share_sqlite_store()  # several searches may write to one local store at once
    prepared = prepare(spec, model, resume)
    search, history = open_search(prepared, resume)
    stop = Stop()
    with search.closing(), frozen_heap(), stop_on_signals(stop):
        if on_start is not None:
            on_start()
        coordinator = coordinate(prepared, search, history, progress, stop)
        prepared.backend.run(prepared.setup, coordinator, stop)
        return conclude(prepared.setup, coordinator, stop)


def coordinate(prepared: Prepared, search: SearchRun, history: ResumeState,
               progress: Display | None, stop: Stop) -> Coordinator:
    """The search's coordinator: its sampler and scheduler (a resumed search's rebuilt from
    what MLflow holds), its progress and stop rules, its queue of points to run first."""
    setup = prepared.setup
    spec, task = setup.spec, setup.task
    sampler, scheduler = rebuilt(spec, prepared.space, history, prepared.sampler)
    return Coordinator(spec, sampler, scheduler,
                       Progress(spec, search.log_best, progress, history.outcomes), history,
                       lambda key: is_free(key, task), pack_limit=prepared.pack_limit,
                       per_trial=len(setup.folds) if setup.folds else 1, stop=stop)


def train_once(spec: SearchSpec, params: Mapping[str, Any],
               model: Any = None) -> tuple[str, dict[str, float]]:
    """Train and log one configuration as a standalone run; return (run id, final metrics).
    ``model``: as for ``tune``."""
    share_sqlite_store()
    spec, task = with_network(spec, model)
    device = resolve_device(spec.device)
    task.check_param_names(params)  # a typo is refused, not logged as if it mattered
    full = {**task.default_params(), **params}
    check_params(full, task.param_rules())  # the space's rules, before the run opens
    check_tracking_server()
    data = task.loaded(spec.data, spec.split_seed, device)
    task.check_network(data)
    create_tables()
    tracker = MlflowTracker(None, task, data, device, run_name=f"{spec.name}-train",
                            precision=resolve_precision(spec.precision, device).name)
    points = FixedPoints([(0, full)])
    Driver(Lane(spec, task, data, device, str(device)), points, tracker, Stop()).run()
    outcome = points.outcomes[0]
    if outcome.status != TrialStatus.FINISHED:
        raise SearchError(f"the run failed: {outcome.error}")
    return outcome.run_id, outcome.metrics
