"""The end of a search: the best trial registered and gated, its figures, the report.

Each step that is not the search's purpose (figures, the report) costs a warning and a tag when
it fails, never the search: the trials and the registered model are what it is for.
"""

from __future__ import annotations

import logging

from mltune.core.errors import MltuneError, SearchError
from mltune.data.splits import TaskData
from mltune.registry.gate import promote
from mltune.registry.versions import CHALLENGER, CHAMPION, register
from mltune.search.result import SearchResult
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.model import load_network
from mltune.tracking.remote import is_outage
from mltune.tracking.runs import SearchRun, log_figures, tag_value

log = logging.getLogger(__name__)


def register_best(result: SearchResult, search: SearchRun, data: TaskData) -> None:
    """The best trial's model as a new version (``challenger``), then the promotion gate."""
    spec, best = result.spec, result.best
    if best.model_uri is None:
        raise SearchError(f"trial {best.number} finished without a logged model")
    version = register(
        best.model_uri,
        spec.registered_model,
        tags={T.SEARCH_ID: search.search_id, T.PARENT_RUN_ID: search.run_id,
              T.RUN_ID: best.run_id, T.METRIC: spec.metric,
              T.METRIC_VALUE: result.best_value, T.MODE: spec.mode,
              T.TASK: spec.task, T.SPEC_HASH: spec.fingerprint(),
              T.DATA_FINGERPRINT: data.fingerprint},
        description=(f"Best of {len(result.trials)} trials of search {spec.name!r} "
                     f"({search.search_id}): {spec.metric}={result.best_value:.4f}"),
    )
    search.set_tag(T.REGISTERED_MODEL, f"{spec.registered_model}/{version.version}")
    result.registered_version = version.version
    result.aliases = [CHALLENGER]
    try:
        result.decision = promote(spec.registered_model, version.version,
                                  min_delta=spec.min_delta, spec=spec, data=data)
    except MltuneError as exc:  # e.g. a champion tuned for another metric: keep the version
        result.gate_error = str(exc)
        search.set_tag(T.GATE, f"not run: {exc}")
        return
    if result.decision.moved:
        result.aliases.append(CHAMPION)


def log_best_figures(task: Task, data: TaskData, result: SearchResult,
                     search: SearchRun) -> None:
    """The task's figures for the best trial (a forecast plot...), on the best trial's run.

    Rebuilt from the logged model, so it works whichever backend trained it.
    """
    best = result.best
    if best.model_uri is None or type(task).best_trial_figures is Task.best_trial_figures:
        return
    try:
        network = load_network(best.model_uri)
        figures = task.best_trial_figures(network, best.params, data)
        log_figures(search.client, best.run_id, figures)
    except Exception as exc:
        log.warning("figures of the best trial were not logged: %s: %s",
                    type(exc).__name__, exc)


def make_report(search: SearchRun) -> str | None:
    """The report on the parent run; returns why it could not be made, or None."""
    try:
        from mltune.report.build import build_report  # matplotlib is imported only now

        build_report(search.run_id, client=search.client)
        return None
    except Exception as exc:
        if is_outage(exc):
            raise
        error = f"{type(exc).__name__}: {exc}"
        log.warning("search report not made: %s", error)
        try:
            search.set_tag(T.REPORT_ERROR, tag_value(error))
        except Exception:  # the store itself is failing: the warning has said it
            pass
        return error
