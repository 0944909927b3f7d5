"""Ensembles (``ensemble: N``): the registered model averages the predictions of up to N
finished trials, chosen by greedy ensemble selection with replacement (Caruana et al. 2004).

Candidates: the ``CANDIDATES_PER_MEMBER * N`` best finished trials by the search's metric (on
validation). Each candidate's logged model is loaded once and predicts the validation rows
once. Selection starts empty and adds, N times at most, the candidate (one already chosen too)
whose addition gives the best validation score of the averaged predictions (the search's
metric and direction; class probabilities averaged for classification, raw outputs for
regression and forecasting); it stops as soon as no addition improves the score. Weights:
times chosen / additions.

One member chosen: nothing changes, the best trial's model is registered as without
``ensemble``. More: an ``ensemble`` child run of the search (tag ``mltune.role=ensemble``, no
``mltune.trial``: resume and the report read role ``trial`` only) whose tag
``mltune.ensemble.members`` lists them (JSON ``[{trial, run_id, weight}]``), its metric the
ensemble's validation score (measured on the rows it was selected on: optimistic; the
promotion gate's holdout score is the fair one), and its model: one pyfunc holding every
member's network (``EnsembleModel``), served exactly like a single trial's.

With ``refit: true``, each chosen member is refit on train + validation first (a ``refit``
child run each, ``search.refit``) and the ensemble averages the refits' networks with the
weights the selection gave the trials (each member's ``refit_run_id`` recorded). With ``cv``,
the selection is made on out-of-fold predictions (``search.crossval``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from mltune.core.interrupts import Stop
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.data.splits import TaskData
from mltune.models.ensemble import Averaged, average
from mltune.search.history.result import EnsembleResult
from mltune.search.packs.driver import release_memory
from mltune.search.packs.trial import stops_search
from mltune.search.selection.refit import refit_trials
from mltune.spec.model import SearchSpec
from mltune.tasks.base import Task
from mltune.tracking import tags as T
from mltune.tracking.model import load_network
from mltune.tracking.remote import best_effort
from mltune.tracking.runs import SearchRun, describe_error
from mltune.tracking.tracker import log_ensemble_run
from mltune.training.fit import predict_batches

log = logging.getLogger(__name__)
CANDIDATES_PER_MEMBER = 4  # candidates: the 4 * N best finished trials


def candidates(trials: Sequence[TrialOutcome], metric: str, direction: Direction,
               size: int) -> list[TrialOutcome]:
    """The ``CANDIDATES_PER_MEMBER * size`` best finished trials with a logged model, best
    first (the earliest first on a tie)."""
    finished = [t for t in trials if t.status == TrialStatus.FINISHED and metric in t.metrics
                and t.model_uri is not None]
    finished.sort(key=lambda t: (direction.sort_key(t.metrics[metric]), t.number))
    return finished[:CANDIDATES_PER_MEMBER * size]


def greedy_selection(predictions: Sequence[torch.Tensor], score: Callable[[torch.Tensor], float],
                     direction: Direction, size: int, probabilities: bool) -> list[int]:
    """How many times each candidate is chosen (Caruana et al. 2004): start empty; add, with
    replacement, the candidate whose addition scores best (``score`` of the averaged
    ``predictions``; the earliest candidate wins a tie), ``size`` additions at most; stop as
    soon as the best addition does not strictly improve on the ensemble so far."""
    counts = [0] * len(predictions)
    best: float | None = None
    for _ in range(size):
        choice, value = None, None
        for i in range(len(predictions)):
            trial = counts.copy()
            trial[i] += 1
            scored = score(averaged(predictions, trial, probabilities))
            if value is None or direction.better(scored, value):
                choice, value = i, scored
        if choice is None or value is None or (best is not None
                                               and not direction.better(value, best)):
            break
        counts[choice] += 1
        best = value
    return counts


def averaged(predictions: Sequence[torch.Tensor], counts: Sequence[int],
             probabilities: bool) -> torch.Tensor:
    """The predictions averaged with weights ``counts / sum(counts)`` (zero counts left out)."""
    total = sum(counts)
    chosen = [(p, c / total) for p, c in zip(predictions, counts, strict=True) if c]
    return average([p for p, _ in chosen], [w for _, w in chosen], probabilities)


def validation_scorer(spec: SearchSpec, task: Task, data: TaskData, params: dict[str, Any],
                      targets: torch.Tensor) -> Callable[[torch.Tensor], float]:
    """Outputs on the rows of ``targets`` -> the search's metric (``val_loss``: the loss of
    the best trial's ``params``)."""
    targets = targets.cpu()
    if spec.metric == "val_loss":
        loss = task.make_loss(params, data)
        return lambda outputs: float(loss(outputs, targets))
    key = spec.metric.removeprefix("val_")
    return lambda outputs: float(task.score(outputs, targets, data.meta)[key])


def select(spec: SearchSpec, task: Task, data: TaskData, trials: Sequence[TrialOutcome],
           best: TrialOutcome, device: torch.device,
           oof: Mapping[int, torch.Tensor] | None = None,
           ) -> tuple[EnsembleResult, list[torch.nn.Module], list[TrialOutcome]]:
    """Greedy selection among the candidates: the selection, and the chosen members'
    networks (CPU) and trials, in the selection's order. ``oof`` (cross-validation): each
    trial's out-of-fold predictions of the pooled training and validation rows, by trial
    number: what is selected on, instead of the validation split (which every fold but one
    trained on)."""
    size = spec.ensemble or 1
    pool = candidates(trials, spec.metric, spec.direction, size)
    if oof is not None:
        pool = [trial for trial in pool if trial.number in oof]
    networks, predictions = [], []
    try:
        for trial in pool:
            assert trial.model_uri is not None
            network = load_network(trial.model_uri)
            if oof is None:
                with torch.no_grad():
                    predictions.append(predict_batches(network.to(device), data.x_val).cpu())
            networks.append(network.cpu())
    finally:
        release_memory(device)
    targets = data.y_val
    if oof is not None:  # the rows some fold scored (all but a time-ordered first stretch)
        first = oof[pool[0].number]
        scored = ~first.reshape(len(first), -1).isnan().any(dim=1)
        predictions = [oof[trial.number][scored] for trial in pool]
        targets = torch.cat([data.y_train, data.y_val]).cpu()[scored]
    probabilities = task.outputs_are_logits(data.meta)
    score = validation_scorer(spec, task, data, best.params, targets)
    counts = greedy_selection(predictions, score, spec.direction, size, probabilities)
    total = sum(counts)
    order = sorted((i for i, c in enumerate(counts) if c), key=lambda i: (-counts[i], i))
    members = [{"trial": pool[i].number, "run_id": pool[i].run_id, "weight": counts[i] / total}
               for i in order]
    value = score(averaged(predictions, counts, probabilities))
    return (EnsembleResult(members, value, len(pool)), [networks[i] for i in order],
            [pool[i] for i in order])


def flattened(networks: Sequence[torch.nn.Module], params: Sequence[Mapping[str, Any]],
              weights: Sequence[float]
              ) -> tuple[list[torch.nn.Module], list[Mapping[str, Any]], list[float]]:
    """Members that are themselves averages (a cross-validated trial's fold networks) as
    their networks, each with its share of the member's weight: the same predictions."""
    out: tuple[list[torch.nn.Module], list[Mapping[str, Any]], list[float]] = ([], [], [])
    for network, p, w in zip(networks, params, weights, strict=True):
        parts = list(network.members) if isinstance(network, Averaged) else [network]
        shares = network.weights if isinstance(network, Averaged) else [1.0]
        for part, share in zip(parts, shares, strict=True):
            out[0].append(part)
            out[1].append(p)
            out[2].append(w * share)
    return out


def log_ensemble(spec: SearchSpec, task: Task, data: TaskData, search: SearchRun,
                 selection: EnsembleResult, networks: list[torch.nn.Module],
                 trials: list[TrialOutcome]) -> EnsembleResult:
    """The ``ensemble`` child run and its model (members that are averages themselves,
    flattened); returns the selection with both."""
    weights = [m["weight"] for m in selection.members]
    networks, params_of, weights = flattened(networks, [t.params for t in trials], weights)
    params = {"ensemble.size": spec.ensemble, "ensemble.candidates": selection.candidates,
              "ensemble.members": len(selection.members)}
    run_id, model_uri = log_ensemble_run(
        search, task, data, networks, params_of, weights,
        tags={T.ENSEMBLE_MEMBERS: json.dumps(selection.members)}, params=params,
        metrics={spec.metric: selection.value})
    return EnsembleResult(selection.members, selection.value, selection.candidates, run_id,
                          model_uri)


def refit_members(spec: SearchSpec, task: Task, data: TaskData, search: SearchRun,
                  device: torch.device, selection: EnsembleResult,
                  trials: Sequence[TrialOutcome], stop: Stop
                  ) -> tuple[EnsembleResult, list[torch.nn.Module]]:
    """Each chosen member refit on train + validation (``refit: true``): the selection with
    each member's ``refit_run_id``, and the refits' networks (as logged) in its order."""
    refits = refit_trials(spec, task, data, search, device, trials, stop)
    members = [{**m, "refit_run_id": r.run_id}
               for m, r in zip(selection.members, refits, strict=True)]
    networks = [load_network(r.model_uri) for r in refits if r.model_uri is not None]
    return EnsembleResult(members, selection.value, selection.candidates), networks


def try_ensemble(spec: SearchSpec, task: Task, data: TaskData, search: SearchRun,
                 device: torch.device, trials: Sequence[TrialOutcome], best: TrialOutcome,
                 stop: Stop, oof: Mapping[int, torch.Tensor] | None = None) -> EnsembleResult:
    """Selection, then (more than one member) the ensemble's run and model; never losing the
    search: the ensemble; the one-member selection (nothing logged, the best trial's model
    stays the one registered); or why it failed (``error``), with a warning and the parent
    tagged ``mltune.ensemble_error``. An interrupt or a lost tracking server is raised."""
    try:
        selection, networks, chosen = select(spec, task, data, trials, best, device, oof)
        if len(selection.members) < 2:
            log.info("ensemble: no addition improved on trial %d alone; its model is "
                     "registered", selection.members[0]["trial"])
            return selection
        if spec.refit:  # the members' configurations trained again on train + validation
            selection, networks = refit_members(spec, task, data, search, device, selection,
                                                chosen, stop)
        return log_ensemble(spec, task, data, search, selection, networks, chosen)
    except BaseException as exc:
        if stops_search(exc):
            raise
        error = describe_error(exc)
        log.warning("ensemble not made, the single model is registered instead: %s", error)
        best_effort(search.set_tag, T.ENSEMBLE_ERROR, error)
        return EnsembleResult(error=error)
