"""What a finished search prints: its counts, its best trial and params, what was registered
and from which run, the gate's decision, the report, and where to browse it in the MLflow UI.
The ``mltune`` command prints it; a notebook may too (``print(summary(result))``)."""

from __future__ import annotations

from mltune.report.build import REPORT_DIR
from mltune.report.console import short
from mltune.search.history.result import SearchResult, shares_line
from mltune.search.selection.finish import chosen_on
from mltune.tracking.links import experiment_url, ui_command


def summary(result: SearchResult) -> str:
    spec, best = result.spec, result.best
    params = ", ".join(f"{k}={short(v, width=None)}" for k, v in sorted(best.params.items()))
    lines = [
        f"Search {spec.name!r} finished: {result.finished} trials finished, "
        f"{result.failed} failed, {result.pruned} pruned (parent run {result.parent_run_id})",
        f"Epochs: {result.epochs_trained} trained, {result.epochs_without_pruning} without "
        "pruning",
        f"Best trial: trial-{best.number:04d}  {spec.metric}={result.best_value:.4f}  "
        f"(run {best.run_id})",
        f"Best params: {params}",
    ]
    if len(result.devices) > 1:
        lines.append(f"Devices: trained on {shares_line(result.devices)}")
    if result.warm is not None:
        lines.append(f"Warm start: {result.warm.line()}")
    ensemble, refit = result.ensemble, result.refit
    if ensemble is not None and ensemble.run_id and ensemble.value is not None:
        members = ", ".join(f"trial-{m['trial']:04d} x{m['weight']:.3g}"
                            for m in ensemble.members)
        lines.append(f"Ensemble: {members}; {spec.metric}={ensemble.value:.4f} "
                     f"({chosen_on(spec)}) (run {ensemble.run_id}): its model is the one "
                     "registered")
    elif ensemble is not None and ensemble.members:
        lines.append("Ensemble: no trial added to the best improved it; the best trial's model "
                     "is registered alone")
    elif ensemble is not None and ensemble.error:
        lines.append(f"Ensemble failed: {ensemble.error}; the single model is "
                     "registered instead")
    if result.registered_from == "refit" and refit is not None:
        lines.append(f"Refit: trial-{best.number:04d}'s configuration on train + validation, "
                     f"{refit.epochs} epochs (run {refit.run_id}): its model is "
                     "the one registered")
    elif refit is not None and refit.error:
        lines.append(f"Refit failed: {refit.error}; the best trial's model is "
                     "registered instead")
    if result.registered_version:
        lines.append(f"Registered: {spec.registered_model} version {result.registered_version}"
                     f" (aliases: {', '.join(result.aliases)})")
    if result.decision is not None:
        lines.append(f"Gate: {result.decision.line()}")
    if result.gate_error:
        lines.append(f"Gate not run: {result.gate_error}")
    lines.append(f"Report not made: {result.report_error}" if result.report_error else
                 f"Report: {REPORT_DIR}/report.html among the parent run's artifacts")
    lines.append(browse_line(experiment_url(result.experiment_id)))
    return "\n".join(lines)


def browse_line(url: str) -> str:
    """Where to look: a page of the MLflow UI (the experiment's runs, a run), and for a local
    store the command that serves it."""
    command = ui_command()
    return f"Browse: {command}   then open {url}" if command else f"Browse: {url}"
