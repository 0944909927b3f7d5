"""The promotion gate: ``champion`` moves only to a model that is better on the holdout split.

Challenger and champion are scored on the same holdout data (the challenger search's
``test_size`` split, never used to pick a trial) with the spec's metric. The champion moves
when the challenger is better by more than zero and at least ``min_delta``; the version it
leaves keeps the alias ``previous``, so a rollback is one command. Every decision is recorded
as version tags (and on the search's parent run when there is one).

Race safety: promotions of one model are serialised by a lock file on this machine, and the
champion is re-read right before it is moved and checked again just after; a promotion that
finds a new champion compares again against it.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import mlflow
import yaml
from mlflow.entities import Metric, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mltune.core.errors import SpecError
from mltune.core.locks import machine_lock
from mltune.core.terms import holdout_metric
from mltune.data.splits import TaskData
from mltune.registry.versions import CHALLENGER, CHAMPION, alias_version
from mltune.spec.build import stored_spec
from mltune.spec.model import SearchSpec
from mltune.tasks import drawn_split_seed, task_for
from mltune.tracking import tags as T
from mltune.tracking.model import load_logged, quiet_model_io
from mltune.training.fit import predict_batches

PREVIOUS = "previous"


@dataclass
class Decision:
    """One comparison on the holdout, and what was (or would be) done about it."""

    model: str
    challenger: str
    champion: str | None
    metric: str
    mode: str
    challenger_score: float
    champion_score: float | None
    min_delta: float
    promote: bool
    reason: str
    moved: bool = False
    holdout: dict[str, float] = field(default_factory=dict)  # the challenger's, test_ names

    def line(self) -> str:
        verb = "promoted" if self.moved else ("would promote" if self.promote else "kept")
        who = (f"v{self.challenger} to champion" if self.promote
               else f"champion v{self.champion}")
        return f"{self.model}: {verb} {who}: {self.reason}"


def _version(client: MlflowClient, name: str, version: str | None, alias: str | None
             ) -> ModelVersion:
    try:
        client.get_registered_model(name)
    except MlflowException:
        raise SpecError(f"no registered model named {name!r}", field="model") from None
    try:
        if version is not None:
            return client.get_model_version(name, str(version))
        return client.get_model_version_by_alias(name, alias or CHALLENGER)
    except MlflowException:
        what = f"version {version!r}" if version is not None else f"alias {alias or CHALLENGER!r}"
        raise SpecError(f"{name}: no {what}", field="model") from None


def search_spec(version: ModelVersion) -> SearchSpec:
    """The spec of the search that produced ``version`` (its parent run's spec.yaml)."""
    parent = version.tags.get(T.PARENT_RUN_ID)
    if not parent:
        raise SpecError(f"version {version.version} of {version.name!r} has no mltune lineage "
                        "(tag mltune.parent_run_id): no holdout data is known for it")
    try:
        with quiet_model_io():
            text = mlflow.artifacts.load_text(f"runs:/{parent}/spec.yaml")
    except MlflowException:
        raise SpecError(f"version {version.version}: the spec of search run {parent} cannot be "
                        "read, so its holdout data is unknown") from None
    return stored_spec(yaml.safe_load(text))


def holdout_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A task's metadata as it applies to the holdout split.

    A task describes its validation split under ``val_*`` keys and may give the holdout's
    counterpart under ``test_*`` (the forecast task's naive error: ``val_naive_rmse``,
    ``test_naive_rmse``); scoring the holdout reads the ``test_*`` value where the task's
    ``score`` reads the ``val_*`` one, so its skill is the skill on the holdout.
    """
    swapped = {"val_" + k.removeprefix("test_"): v for k, v in meta.items()
               if k.startswith("test_")}
    return {**meta, **swapped}


def holdout_scores(version: ModelVersion, spec: SearchSpec, data: TaskData) -> dict[str, float]:
    """The version's model scored on the holdout split: each metric the task measures, by its
    holdout name (``test_accuracy``, ``test_rmse``, ``test_naive_rmse``, ``test_skill``...).

    The spec's metric must be among them (``test_loss`` for ``val_loss``).
    """
    task = task_for(spec)
    model = load_logged(f"models:/{version.name}/{version.version}").unwrap_python_model()
    y_test = data.y_test.cpu()
    outputs = predict_batches(model.network, task.holdout_inputs(data, model.meta).cpu())
    if spec.metric == "val_loss":
        return {"test_loss": float(task.make_loss(model.params, data)(outputs, y_test))}
    metrics = task.score(outputs, y_test, holdout_meta(data.meta))
    key = spec.metric.removeprefix("val_")
    if key not in metrics:
        raise SpecError(f"metric: {spec.metric!r} has no holdout counterpart for task "
                        f"{spec.task!r}; available: {', '.join(sorted(metrics))}")
    return {f"test_{k}": float(v) for k, v in metrics.items()}


def score(version: ModelVersion, spec: SearchSpec, data: TaskData) -> float:
    """The version's model scored on the holdout split with the spec's metric."""
    return holdout_scores(version, spec, data)[holdout_metric(spec.metric)]


def _check_comparable(challenger: ModelVersion, champion: ModelVersion) -> None:
    for tag, what in ((T.TASK, "task"), (T.METRIC, "metric")):
        ours, theirs = challenger.tags.get(tag), champion.tags.get(tag)
        if ours != theirs:
            raise SpecError(
                f"champion v{champion.version} of {champion.name!r} was tuned for {what} "
                f"{theirs!r}, the challenger v{challenger.version} for {ours!r}: they cannot be "
                "compared; register it under another name or force the promotion")


def _promotion_lock(name: str) -> AbstractContextManager[None]:
    """One promotion of ``name`` at a time on this machine (threads and processes)."""
    return machine_lock("promote", f"{mlflow.get_registry_uri()}|{name}")


def _flattered(champion: ModelVersion, challenger: ModelVersion, spec: SearchSpec) -> str:
    """Why the champion's score on this holdout may flatter it ('' when it cannot): it was
    split from other data, or from the same with another seed, so rows it trained on can be
    among the challenger's holdout rows. Said, not refused: new rows arriving is the usual
    reason for a new search."""
    ours, theirs = (v.tags.get(T.DATA_FINGERPRINT) for v in (challenger, champion))
    if ours and theirs and ours != theirs:
        return (f"; v{champion.version} was tuned on other data: rows it trained on may be in "
                "this holdout, which flatters it")
    try:
        seed = drawn_split_seed(search_spec(champion))
    except SpecError:  # no lineage: nothing known of its splits
        return ""
    ours = drawn_split_seed(spec)
    if seed is None or ours is None or seed == ours:  # None: cut by time, whatever the seed
        return ""
    return (f"; v{champion.version}'s splits were drawn with seed {seed}, this holdout's with "
            f"{ours}: rows it trained on are in this holdout, which flatters it "
            "(data.split_seed keeps the splits across searches)")


def _decide(client: MlflowClient, challenger: ModelVersion, spec: SearchSpec, data: TaskData,
            holdout: dict[str, float], min_delta: float, force: bool) -> Decision:
    champion = alias_version(client, challenger.name, CHAMPION)
    challenger_score = holdout[holdout_metric(spec.metric)]
    common = dict(model=challenger.name, challenger=challenger.version, metric=spec.metric,
                  mode=spec.mode, challenger_score=challenger_score, min_delta=min_delta,
                  holdout=dict(holdout))
    if champion is None:
        return Decision(champion=None, champion_score=None, promote=True,
                        reason="first version: no champion yet", **common)
    if champion.version == challenger.version:
        return Decision(champion=champion.version, champion_score=challenger_score,
                        promote=False, reason="it is already the champion", **common)
    if not force:
        _check_comparable(challenger, champion)
    champion_score = score(champion, spec, data)
    gain = spec.direction.gain(challenger_score, champion_score)
    name = holdout_metric(spec.metric)
    versus = (f"{name} {challenger_score:.4f} (v{challenger.version}) vs "
              f"{champion_score:.4f} (v{champion.version})"
              + _flattered(champion, challenger, spec))
    if force:
        return Decision(champion=champion.version, champion_score=champion_score, promote=True,
                        reason=f"forced, gate skipped; {versus}", **common)
    if gain > 0 and gain >= min_delta:
        reason = f"better by {gain:.4f} (min_delta {min_delta:g}): {versus}"
        return Decision(champion=champion.version, champion_score=champion_score, promote=True,
                        reason=reason, **common)
    reason = f"not better by more than 0 and at least min_delta {min_delta:g}: {versus}"
    return Decision(champion=champion.version, champion_score=champion_score, promote=False,
                    reason=reason, **common)


def _record(client: MlflowClient, challenger: ModelVersion, decision: Decision,
            forced: bool) -> None:
    name = holdout_metric(decision.metric)
    tags: dict[str, Any] = {
        T.HOLDOUT_METRIC: name,
        T.HOLDOUT_SCORE: f"{decision.challenger_score:.6g}",
        T.GATE: ("forced" if forced else "promoted") if decision.moved else "kept",
        T.GATE_REASON: decision.reason,
    }
    if decision.champion is not None and decision.champion != decision.challenger:
        tags[T.COMPARED_WITH] = decision.champion
        tags[T.CHAMPION_HOLDOUT_SCORE] = f"{decision.champion_score:.6g}"
    for key, value in tags.items():
        client.set_model_version_tag(challenger.name, challenger.version, key, str(value))
    parent = challenger.tags.get(T.PARENT_RUN_ID)
    if parent:  # the search's run: every holdout metric, the champion's score, the decision
        metrics = dict(decision.holdout or {name: decision.challenger_score})
        if decision.champion_score is not None and decision.champion != decision.challenger:
            metrics[f"champion_{name}"] = decision.champion_score
        stamp = int(time.time() * 1000)
        client.log_batch(parent, metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
                         tags=[RunTag(T.GATE, f"{tags[T.GATE]}: {decision.reason}"[
                             :T.MAX_TAG_LENGTH])])


def promote(
    name: str,
    version: str | None = None,
    alias: str | None = None,
    *,
    min_delta: float = 0.0,
    dry_run: bool = False,
    force: bool = False,
    spec: SearchSpec | None = None,
    data: TaskData | None = None,
) -> Decision:
    """Run the gate for one version (default: the ``challenger``) and move aliases if it passes.

    ``spec`` and ``data`` skip re-reading the holdout when the caller (the search) has it.
    """
    if min_delta < 0:
        raise SpecError(f"{min_delta:g} is not allowed; expected a number >= 0", field="min_delta")
    client = MlflowClient()
    challenger = _version(client, name, version, alias)
    spec = spec or search_spec(challenger)
    if data is None:
        data = task_for(spec).load(spec.data, spec.split_seed)
    holdout = holdout_scores(challenger, spec, data)
    with _promotion_lock(name):
        for _ in range(5):  # re-compare if another promotion moved the champion meanwhile
            decision = _decide(client, challenger, spec, data, holdout, min_delta, force)
            if dry_run or not decision.promote:
                break
            current = alias_version(client, name, CHAMPION)
            if (current.version if current else None) != decision.champion:
                continue  # moved since we compared: compare again
            if decision.champion is not None:
                client.set_registered_model_alias(name, PREVIOUS, decision.champion)
            client.set_registered_model_alias(name, CHAMPION, challenger.version)
            decision.moved = True
            time.sleep(0.05)
            after = alias_version(client, name, CHAMPION)
            if after is not None and after.version == challenger.version:
                break
    if not dry_run:
        _record(client, challenger, decision, forced=force and decision.moved)
    return decision


def rollback(name: str) -> str:
    """Give ``champion`` back to the ``previous`` version; return the version now champion."""
    client = MlflowClient()
    _version(client, name, None, CHAMPION)
    with _promotion_lock(name):
        previous = alias_version(client, name, PREVIOUS)
        champion = alias_version(client, name, CHAMPION)
        if previous is None:
            raise SpecError(f"{name}: no version holds the alias 'previous'; nothing to roll "
                            "back to", field="model")
        client.set_registered_model_alias(name, CHAMPION, previous.version)
        if champion is not None:
            client.set_registered_model_alias(name, PREVIOUS, champion.version)
            client.set_model_version_tag(name, champion.version, T.ROLLED_BACK, "true")
    return previous.version
