"""The end of a search: the best trial (or an ensemble of trials, or the best's refit) registered
and gated, its figures, the report, the parent run's summary and description.

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

from mlflow.entities import RunStatus

from mltune.core.errors import MltuneError, SearchError
from mltune.core.interrupts import Stop
from mltune.core.terms import holdout_metric
from mltune.data.splits import TaskData
from mltune.registry.gate import promote
from mltune.registry.versions import CHALLENGER, CHAMPION, register
from mltune.report.build import REPORT_DIR, draw_report, publish_report
from mltune.search.history.result import SearchResult, select_best, shares_line
from mltune.search.packs.coordinator import Coordinator
from mltune.search.packs.lane import SearchSetup
from mltune.search.packs.lanes import shares
from mltune.search.selection.ensemble import try_ensemble
from mltune.search.selection.refit import try_refit
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.links import run_url, server_address
from mltune.tracking.model import load_network
from mltune.tracking.remote import is_outage
from mltune.tracking.runs import SearchRun, log_figures, tag_value

log = logging.getLogger(__name__)


def conclude(setup: SearchSetup, coordinator: Coordinator, stop: Stop) -> SearchResult:
    """The search's result from every trial it ran; an ensemble of trials (``ensemble: N``)
    or else the best's refit on train + validation (``refit: true``); the registration and
    gate (the report's figures drawn meanwhile); figures, report, summary, description."""
    spec, task, data, search = setup.spec, setup.task, setup.data, setup.search
    device = setup.devices[0]
    outcomes = sorted(coordinator.all_outcomes, key=lambda o: o.number)  # they end unordered
    result = SearchResult(spec, search.run_id, search.experiment_id, search.search_id,
                          outcomes, select_best(outcomes, spec.metric, spec.direction),
                          devices=shares(outcomes))
    if (spec.ensemble or 0) > 1:  # trials' own models averaged; a failure costs a tag
        result.ensemble = try_ensemble(spec, task, data, search, device, outcomes, result.best,
                                       stop, coordinator.oof if setup.folds else None)
    if spec.refit and result.registered_from != "ensemble":  # an ensemble's members: refit
        result.refit = try_refit(spec, task, data, search, device, result.best, stop)
    report = PendingReport.start(search)  # figures drawn while the best is registered
    register_best(result, search, data)
    log_best_figures(task, data, result, search)
    result.report_error = report.finish(RunStatus.to_string(RunStatus.FINISHED))
    metrics = summary_metrics(result, coordinator.occupancy.share)
    tags = summary_tags(result, coordinator.stop_reason())
    search.log_summary({f"best.{k}": v for k, v in result.best.params.items()}, metrics, tags)
    return result


def summary_metrics(result: SearchResult, occupancy: float | None) -> dict[str, float]:
    """The parent run's metrics at the end: trial counts, epochs, devices, occupancy."""
    return {"trials_finished": result.finished, "trials_failed": result.failed,
            "trials_pruned": result.pruned, "epochs_trained": result.epochs_trained,
            "epochs_without_pruning": result.epochs_without_pruning,
            "devices": len(result.devices),
            **({"pack_occupancy": occupancy} if occupancy is not None else {})}


def summary_tags(result: SearchResult, stop_reason: str | None) -> dict[str, Any]:
    """The parent run's tags at the end: the best trial, what was registered, the devices,
    why it stopped, its description."""
    spec = result.spec
    refit = result.refit if result.registered_from == "refit" else None
    ensemble = result.ensemble if result.registered_from == "ensemble" else None
    return {T.BEST_RUN_ID: result.best.run_id, T.BEST_TRIAL: result.best.number,
            **({T.REFIT_RUN_ID: refit.run_id} if refit is not None else {}),
            **({T.ENSEMBLE_RUN_ID: ensemble.run_id} if ensemble is not None else {}),
            T.DEVICES: json.dumps(result.devices),
            T.STOP_REASON: stop_reason or ("max_evals reached" if spec.max_evals is not None
                                           else "space spent"),
            T.NOTE: describe(result)}


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
    refit, ensemble = result.refit, result.ensemble
    if result.registered_from == "refit" and refit is not None and refit.model_uri:
        model_uri = refit.model_uri
        tags.update({T.RUN_ID: refit.run_id, T.REFIT_OF: best.run_id})
        summary = (f"Refit on train + validation of trial {best.number} "
                   f"({refit.epochs} epochs). {summary} (the trial's validation "
                   "score; the refit has none: it trained on the validation rows)")
    if result.registered_from == "ensemble" and ensemble is not None and ensemble.model_uri:
        model_uri = ensemble.model_uri
        members = ", ".join(f"trial {m['trial']} ({m['run_id']}) x{m['weight']:.4g}"
                            for m in ensemble.members)
        tags.update({T.RUN_ID: ensemble.run_id,
                     T.ENSEMBLE_MEMBERS: json.dumps(ensemble.members)})
        summary = (f"Ensemble of {len(ensemble.members)} trials of search {spec.name!r} "
                   f"({search.search_id}), predictions averaged with weights: {members}. "
                   f"{spec.metric}={ensemble.value:.4f} on {chosen_on(spec)} (the rows it was "
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
    lines += _refit_lines(result, base) + _ensemble_lines(result, base)
    if result.registered_version:
        source = {"ensemble": "the ensemble's model", "refit": "the refit's model",
                  "trial": f"trial-{best.number:04d}'s model"}[result.registered_from]
        lines.append(f"- **Registered:** `{spec.registered_model}` version "
                     f"{result.registered_version}, {source} (aliases: "
                     f"{', '.join(result.aliases)})")
    lines.append(f"- **Report:** not made: {result.report_error}" if result.report_error else
                 f"- **Report:** `{REPORT_DIR}/report.html` among this run's artifacts")
    return "\n".join(lines)


def _refit_lines(result: SearchResult, base: str) -> list[str]:
    refit, best = result.refit, result.best
    if refit is None or result.ensemble is not None and result.ensemble.model_uri:
        return []
    if refit.run_id:
        link = run_url(result.experiment_id, refit.run_id, base=base)
        return [f"- **Refit:** [refit]({link}): trial-{best.number:04d}'s configuration "
                f"trained again on train + validation for {refit.epochs} epochs; its model is "
                "the one registered and gated (its val_* metrics are on rows it trained on)"]
    return [f"- **Refit:** failed ({refit.error}); the best trial's own model is registered "
            "instead"]


def _ensemble_lines(result: SearchResult, base: str) -> list[str]:
    ensemble, spec = result.ensemble, result.spec
    if ensemble is None:
        return []
    if ensemble.run_id and ensemble.value is not None:
        link = run_url(result.experiment_id, ensemble.run_id, base=base)
        members = ", ".join(f"trial-{m['trial']:04d} x{m['weight']:.3g}"
                            for m in ensemble.members)
        refit = ("; each member refit on train + validation" if any(
            "refit_run_id" in m for m in ensemble.members) else "")
        return [f"- **Ensemble:** [ensemble]({link}): {members}; {spec.metric} "
                f"{ensemble.value:.4f} on {chosen_on(spec)} (the rows it was chosen on)"
                f"{refit}; its model is the one registered and gated"]
    if ensemble.members:
        return ["- **Ensemble:** no trial added to the best improved its validation score; "
                "the best trial's model is registered alone"]
    return [f"- **Ensemble:** failed ({ensemble.error}); the single model is registered "
            "instead"]
