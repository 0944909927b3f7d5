"""What a search would do, said before it runs (``mltune tune --dry-run``, ``mltune check``).

The spec is checked exactly as ``tune`` checks it (``prepare``: the network imported, the data
read and split, a user's network run on two samples, packs and folds sized), so a plan that
prints is a search that starts. Then the plan: the resolved spec, the space key by key (how it
is searched, the task's default), the first point the search trains, what the scheduler will
do (its rungs or brackets) and the most trials and epochs the budget allows. Nothing is opened
or written in MLflow. The data first (``Plan``), then its text (``plan_text``), as the report
does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from mltune.search.prepare import prepare
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.model import SearchSpec, yaml_value
from mltune.spec.space import flatten, is_distribution
from mltune.spec.start import start_points


@dataclass(frozen=True)
class SpaceRow:
    """One hyperparameter: how it is searched (a distribution, or a literal: fixed), the
    task's default for it, and whether the spec gave it (else it is the task's default)."""

    key: str
    searched: str
    default: Any
    given: bool


@dataclass(frozen=True)
class Plan:
    """What ``mltune tune`` would do with a spec: every number here is what the search uses."""

    spec: SearchSpec
    rows: tuple[SpaceRow, ...]
    first: Mapping[str, Any] | None  # the first point trained (None: ``start: []``)
    starts: int  # points trained first, before the sampler proposes any
    scheduler: str  # the rule's outline: its rungs or brackets
    folds: int  # members a trial trains (cv: k; else 1)
    pack: int  # the most trials a pack may hold
    devices: tuple[str, ...]

    @property
    def max_epochs(self) -> int | None:
        """Epochs every trial trains at most, summed (None: no trial limit, time alone)."""
        trials = self.spec.max_evals
        return None if trials is None else trials * self.spec.epochs


def plan_search(spec: SearchSpec, model: Any = None) -> Plan:
    """Check ``spec`` as ``tune`` would, then say what the search would do. Opens no run."""
    prepared = prepare(spec, model)
    setup = prepared.setup
    spec, task = setup.spec, setup.task
    defaults = flatten(task.default_params())
    rows = tuple(SpaceRow(str(key), _searched(value), defaults.get(key),
                          key in spec.space_given) for key, value in spec.space.items())
    points = start_points(spec, task, prepared.space)
    rule = SCHEDULERS.get(spec.pruning.rule, field="pruning.rule")
    outline = rule.outline(rule.Options(**spec.pruning.options), spec.epochs)
    return Plan(spec, rows, points[0] if points else None, len(points), outline,
                len(setup.folds) if setup.folds else 1, prepared.pack_limit,
                tuple(str(d) for d in setup.devices))


def _searched(value: Any) -> str:
    """``loguniform [0.0001, 0.1]``, or ``fixed 0.1`` for a literal."""
    if is_distribution(value):
        (name, args), = value.items()
        return f"{name} {yaml_value(args)}"
    return f"fixed {yaml_value(value)}"


def plan_text(plan: Plan) -> str:
    """The plan as the CLI prints it: the resolved spec, the space, the first point, the
    scheduler, the budget."""
    spec = plan.spec
    resolved = {k: v for k, v in spec.to_dict().items() if k != "space"}
    width = max(len(r.key) for r in plan.rows) + 1
    search = max(len(r.searched) for r in plan.rows)
    lines = ["Spec (resolved: every key at the value the search uses):",
             *("  " + line for line in yaml.safe_dump(resolved, sort_keys=False,
                                                      width=96).splitlines()),
             "",
             f"Space ({len(plan.rows)} hyperparameters; * given by the spec, the others the "
             f"task's defaults):",
             f"  {'key'.ljust(width)}  {'searched as'.ljust(search)}  default"]
    lines += [f"  {(r.key + ('*' if r.given else '')).ljust(width)}  {r.searched.ljust(search)}"
              f"  {'-' if r.default is None else yaml_value(r.default)}" for r in plan.rows]
    lines += ["", _first_line(plan), f"Scheduler: {plan.scheduler}", _budget_line(plan),
              _pack_line(plan)]
    return "\n".join(lines)


def _first_line(plan: Plan) -> str:
    if plan.first is None:
        return "First trial: the sampler's first proposal (start: [])"
    point = ", ".join(f"{k}={yaml_value(v)}" for k, v in sorted(plan.first.items()))
    given = "the spec's start" if plan.spec.start else "the task's defaults"
    more = f" ({plan.starts} start points in all)" if plan.starts > 1 else ""
    return f"First trial ({given}){more}: {point}"


def _budget_line(plan: Plan) -> str:
    """The most the search may train: trials x epochs (x folds), and what may end it
    sooner."""
    spec = plan.spec
    budget = spec.stop.time_budget_s
    if spec.max_evals is None:
        trials = f"no trial limit: trials start until {budget:g} s have passed"
    else:
        trials = (f"at most {spec.max_evals} trials x {spec.epochs} epochs = "
                  f"{plan.max_epochs} epochs")
        if plan.folds > 1:
            trials += (f", each on {plan.folds} folds ({plan.max_epochs * plan.folds} "
                       "fold-epochs)")
        if budget is not None:
            trials += f"; no trial starts after {budget:g} s"
    after = []
    if spec.refit:
        after.append(f"a refit of up to {spec.epochs} epochs")
    if spec.ensemble and spec.ensemble > 1:
        after.append(f"an ensemble of up to {spec.ensemble} trials")
    sooner = [f"{spec.pruning.rule} stops trials"] if spec.pruning.rule not in (
        "none", "pbt") else []  # pbt copies members, it stops none
    if spec.patience is not None:
        sooner.append(f"patience {spec.patience} ends trials early")
    ends = [f"{name} {value:g}" for name, value in (
        ("stop.no_improvement", spec.stop.no_improvement), ("stop.target", spec.stop.target))
        if value is not None]
    if ends:
        sooner.append(f"the search ends at {' or '.join(ends)}")
    text = f"Budget: {trials}"
    text += f"; then {' and '.join(after)}" if after else ""
    return text + (f" (fewer where {', '.join(sooner)})" if sooner else "")


def _pack_line(plan: Plan) -> str:
    spec = plan.spec
    devices = ", ".join(plan.devices)
    where = f"{spec.backend} on {devices}" + (
        f", {spec.parallelism} Ray workers" if spec.backend == "ray" else "")
    if plan.pack == 1:
        return f"Trials: one at a time per device ({where})"
    sized = ("sized on the device when the search starts" if spec.pack == "auto"
             else f"pack: {spec.pack}")
    return f"Trials: up to {plan.pack} at once as one fused network ({sized}; {where})"
