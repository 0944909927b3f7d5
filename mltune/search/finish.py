"""The end of a search: the best trial registered and gated, its figures, the report, the
parent run's description.

Each step that is not the search's purpose (figures, the report) costs a warning and a tag when
it fails, never the search: the trials and the registered model are what it is for. The
report's figures are drawn in a thread while the best model is registered and gated
(``PendingReport``), so the search's end costs about the longer of the two, not their sum.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from mltune.core.errors import MltuneError, SearchError
from mltune.core.terms import holdout_metric
from mltune.data.splits import TaskData
from mltune.registry.gate import promote
from mltune.registry.versions import CHALLENGER, CHAMPION, register
from mltune.report.build import REPORT_DIR, draw_report, publish_report
from mltune.search.result import SearchResult, shares_line
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.links import run_url, server_address
from mltune.tracking.model import load_network
from mltune.tracking.remote import is_outage
from mltune.tracking.runs import SearchRun, log_figures, tag_value

log = logging.getLogger(__name__)


def register_best(result: SearchResult, search: SearchRun, data: TaskData) -> None:
    """The best trial's model as a new version (``challenger``), then the promotion gate.
    With a refit (``refit: true`` and it finished), the refit's model is the version, tagged
    ``mltune.refit_of`` = the best trial's run, and is what the gate scores. With an ensemble
    (``ensemble: N``, more than one member chosen), the ensemble's model is the version, tagged
    ``mltune.ensemble.members`` and its description listing members and weights."""
    spec, best = result.spec, result.best
    if best.model_uri is None:
        raise SearchError(f"trial {best.number} finished without a logged model")
    summary = (f"Best of {len(result.trials)} trials of search {spec.name!r} "
               f"({search.search_id}): {spec.metric}={result.best_value:.4f}")
    tags: dict[str, Any] = {
        T.SEARCH_ID: search.search_id, T.PARENT_RUN_ID: search.run_id, T.RUN_ID: best.run_id,
        T.METRIC: spec.metric, T.METRIC_VALUE: result.best_value, T.MODE: spec.mode,
        T.TASK: spec.task, T.SPEC_HASH: spec.fingerprint(), T.DATA_FINGERPRINT: data.fingerprint}
    model_uri = best.model_uri
    if result.refit_run_id and result.refit_model_uri:
        model_uri = result.refit_model_uri
        tags.update({T.RUN_ID: result.refit_run_id, T.REFIT_OF: best.run_id})
        summary = (f"Refit on train + validation of trial {best.number} "
                   f"({result.refit_epochs} epochs). {summary} (the trial's validation "
                   "score; the refit has none: it trained on the validation rows)")
    if result.ensemble_run_id and result.ensemble_model_uri:
        model_uri = result.ensemble_model_uri
        members = ", ".join(f"trial {m['trial']} ({m['run_id']}) x{m['weight']:.4g}"
                            for m in result.ensemble_members)
        tags.update({T.RUN_ID: result.ensemble_run_id,
                     T.ENSEMBLE_MEMBERS: json.dumps(result.ensemble_members)})
        summary = (f"Ensemble of {len(result.ensemble_members)} trials of search {spec.name!r} "
                   f"({search.search_id}), predictions averaged with weights: {members}. "
                   f"{spec.metric}={result.ensemble_value:.4f} on validation (the rows it was "
                   f"selected on); best single trial {best.number}: {result.best_value:.4f}")
    version = register(model_uri, spec.registered_model, tags=tags, description=summary)
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


class PendingReport:
    """The search's report, made in two halves: its figures are drawn in a thread from the
    trials as soon as they are done (``start``), while the best model is registered and
    gated; the page, which shows their outcome and the search's final status, is written and
    logged once those are known (``finish``)."""

    def __init__(self, search: SearchRun, drawn: Future[Any]) -> None:
        self.search = search
        self._drawn = drawn

    @classmethod
    def start(cls, search: SearchRun) -> PendingReport:
        pool = ThreadPoolExecutor(1, thread_name_prefix="mltune-report")
        try:
            return cls(search, pool.submit(draw_report, search.run_id, search.client))
        finally:
            pool.shutdown(wait=False)  # the thread ends with its one job

    def finish(self, status: str | None = None) -> str | None:
        """Write and log the page (``status``: the one the search is about to end with);
        returns why the report could not be made, or None."""
        try:
            publish_report(self._drawn.result(), self.search.client, status=status)
            return None
        except Exception as exc:
            if is_outage(exc):
                raise
            error = f"{type(exc).__name__}: {exc}"
            log.warning("search report not made: %s", error)
            try:
                self.search.set_tag(T.REPORT_ERROR, tag_value(error))
            except Exception:  # the store itself is failing: the warning has said it
                pass
            return error


def make_report(search: SearchRun, status: str | None = None) -> str | None:
    """The report on the parent run, made at once; returns why it could not be made, or
    None."""
    return PendingReport.start(search).finish(status)


def chosen_on(spec: SearchSpec) -> str:
    """The rows an ensemble was selected and scored on."""
    return "out-of-fold predictions of train + validation" if spec.cv else "validation"


def describe(result: SearchResult) -> str:
    """The parent run's description (markdown, at the top of its page in the MLflow UI): the
    best trial as a link, its validation and holdout scores, the gate's decision with both
    scores, the registered version, where the report is."""
    spec, best, decision = result.spec, result.best, result.decision
    base = server_address() or ""  # a local UI: links relative to the page they are on
    link = run_url(result.experiment_id, best.run_id, base=base)
    holdout = holdout_metric(spec.metric)
    scores = (f"{spec.metric} **{result.best_value:.4f}** (validation)" if not spec.cv else
              f"{spec.metric} **{result.best_value:.4f}** (mean of {spec.cv} folds)")
    if decision is not None:
        scores += f", {holdout} **{decision.challenger_score:.4f}** (holdout)"
    lines = [f"**{spec.name}**: {len(result.trials)} trials ({result.finished} finished, "
             f"{result.failed} failed, {result.pruned} pruned), optimising {spec.metric} "
             f"({spec.mode}); {result.epochs_trained} epochs trained of the "
             f"{result.epochs_without_pruning} the same trials would take unpruned.", "",
             f"- **Best trial:** [trial-{best.number:04d}]({link}): {scores}"]
    if spec.cv:
        lines.append(f"- **Cross-validation:** each trial trained on {spec.cv} folds of train + "
                     f"validation as one pack and judged on the fold mean ({spec.metric}, "
                     f"with {spec.metric}_std and fold_<i>/ beside it); a trial's own model "
                     "averages its fold networks; the holdout split is in no fold")
    if len(result.devices) > 1:
        lines.append(f"- **Devices:** trained on {shares_line(result.devices)}")
    if decision is not None:
        alone = (f" ({holdout} {decision.challenger_score:.4f})"  # else the reason has both
                 if decision.champion is None else "")
        lines.append(f"- **Gate:** {decision.line()}{alone}")
    elif result.gate_error:
        lines.append(f"- **Gate:** not run: {result.gate_error}")
    if result.refit_run_id:
        refit = run_url(result.experiment_id, result.refit_run_id, base=base)
        lines.append(f"- **Refit:** [refit]({refit}): trial-{best.number:04d}'s configuration "
                     f"trained again on train + validation for {result.refit_epochs} epochs; "
                     "its model is the one registered and gated (its val_* metrics are on "
                     "rows it trained on)")
    elif result.refit_error:
        lines.append(f"- **Refit:** failed ({result.refit_error}); the best trial's own model "
                     "is registered instead")
    if result.ensemble_run_id:
        ensemble = run_url(result.experiment_id, result.ensemble_run_id, base=base)
        members = ", ".join(f"trial-{m['trial']:04d} x{m['weight']:.3g}"
                            for m in result.ensemble_members)
        refit = ("; each member refit on train + validation" if any(
            "refit_run_id" in m for m in result.ensemble_members) else "")
        lines.append(f"- **Ensemble:** [ensemble]({ensemble}): {members}; {spec.metric} "
                     f"{result.ensemble_value:.4f} on {chosen_on(spec)} (the rows it was chosen "
                     f"on){refit}; its model is the one registered and gated")
    elif result.ensemble_members:
        lines.append("- **Ensemble:** no trial added to the best improved its validation "
                     "score; the best trial's model is registered alone")
    elif result.ensemble_error:
        lines.append(f"- **Ensemble:** failed ({result.ensemble_error}); the single model is "
                     "registered instead")
    if result.registered_version:
        source = ("the ensemble's model" if result.ensemble_run_id
                  else "the refit's model" if result.refit_run_id
                  else f"trial-{best.number:04d}'s model")
        lines.append(f"- **Registered:** `{spec.registered_model}` version "
                     f"{result.registered_version}, {source} (aliases: "
                     f"{', '.join(result.aliases)})")
    lines.append(f"- **Report:** not made: {result.report_error}" if result.report_error else
                 f"- **Report:** `{REPORT_DIR}/report.html` among this run's artifacts")
    return "\n".join(lines)
