"""Optuna's samplers behind mltune's sampler protocol: ``optuna-tpe``, ``optuna-gp`` and ``auto``.

An optional extra (``pip install 'mltune[optuna]'``): Optuna is imported only when one of these
samplers is made, so ``import mltune`` works without it, the names stay in the catalog (the
spec is validated against it) and asking for one without Optuna is one ``SpecError`` line
naming the extra.

Each sampler drives an in-memory Optuna study, define-by-run: mltune's space is compiled once
into nodes (``_compile``) that suggest a point through an Optuna trial (``_suggest``) and turn a
recorded point back into Optuna's params (``_recorded``, for ``pending``, ``rebuild`` and a
told point that was never asked). Optuna's parameter names are the decoded names
(``optimizer.momentum``); a categorical is suggested by option index, so any literal (a list,
a dict) can be an option and Optuna never has to store it.

- ``optuna-tpe``: multivariate TPE with the constant liar, so pending points (asked, not yet
  told: a pack's other members, a resumed search's interrupted trials) push the next points
  away. Its random start-up is sized for the budget as hyperopt's TPE is here
  (``startup_trials``): Optuna's default of 10 would be half of a 20-trial search. With
  conditional hyperparameters it decomposes the space into groups (``group=True``, Optuna's
  remedy), so an option's own hyperparameters are modelled jointly, not drawn independently.
- ``optuna-gp``: Gaussian-process Bayesian optimisation (``GPSampler``), the same start-up.
  Categoricals are accepted: Optuna's GP has a kernel for them. Conditional sub-hyperparameters
  are accepted too and fall back as Optuna does: outside the intersection of every trial's
  space, they are drawn by its independent (random) sampler. Refusing them would make
  ``optuna-gp`` fail on most of mltune's default spaces (the image task's optimizer choice);
  ``auto`` is the choice that avoids the fallback.
- ``auto``: Optuna's own rule: TPE when the space has a categorical or conditional
  hyperparameter, GP otherwise (GP is stronger on small numeric spaces, TPE on the rest).

What Optuna cannot express is refused with one line naming the hyperparameter and what
replaces it: normal draws (``normal``, ``lognormal``, ``qnormal``...), ``pchoice`` weights, a
choice whose options are distributions. A log scale with a step (``qloguniform``), which
Optuna's distributions refuse, is drawn as the step's multiples ``k * q`` with ``k`` an
integer on a log scale: the same log-uniform law over the same grid.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from mltune.core.errors import SpecError
from mltune.search.samplers.base import Finished, Params
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.distributions import (
    Categorical,
    Float,
    Int,
    Normal,
    Space,
    is_conditional,
    is_distribution,
)

if TYPE_CHECKING:
    import optuna

INSTALL = "pip install 'mltune[optuna]'"
RETRIES = 8  # draws per point before a duplicate of a pending point makes ask return fewer


def startup_trials(budget: int) -> int:
    """Random trials before the model takes over, sized for the budget (as hyperopt's TPE is
    in mltune): a quarter of it, 2 to 20, so a 20-trial search is mostly model-guided."""
    return max(2, min(20, budget // 4))


def _import_optuna(algo: str) -> Any:
    """Optuna, quiet: INFO lines per trial and experimental-feature warnings are noise in a
    search that logs every trial to MLflow. Missing: one line naming the extra."""
    try:
        import optuna
    except ImportError as exc:
        missing = "" if exc.name in (None, "optuna") else f" (no module {exc.name!r})"
        raise SpecError(f"{algo!r} needs Optuna, which is not installed{missing}; install it "
                        f"with: {INSTALL}", field="algo") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# --- the space, compiled once into nodes that suggest and record points --------------------


@dataclass(frozen=True)
class _Literal:
    name: str
    value: Any


@dataclass(frozen=True)
class _Number:
    name: str  # the decoded name, the point's key
    key: str  # Optuna's parameter name (the decoded name, unless two options clash)
    dist: Any  # optuna.distributions.FloatDistribution | IntDistribution
    whole: bool  # the point's value is an int
    scale: float | None = None  # a log scale with a step: Optuna draws k, the point k * scale

    def value(self, drawn: float) -> Any:
        """The point's value of what Optuna drew."""
        if self.scale is not None:
            x = drawn * self.scale
            return int(round(x)) if self.whole else _tidy(x)
        if self.whole:
            return int(drawn)
        d = self.dist
        return _tidy(d.low + round((drawn - d.low) / d.step) * d.step) if d.step else drawn

    def drawn(self, value: float) -> Any:
        """What Optuna drew for a point's value."""
        if self.scale is not None:
            return int(round(value / self.scale))
        return int(value) if self.whole else value


@dataclass(frozen=True)
class _Option:
    value: Any  # what the parent takes in a point (a literal, or a conditional option's name)
    named: bool  # an unnamed conditional option leaves its parent out of the point
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class _Choice:
    name: str
    key: str
    dist: Any  # optuna.distributions.CategoricalDistribution over option indices
    options: tuple[_Option, ...]


_Node = _Literal | _Number | _Choice


class _Compiler:
    """mltune's distributions -> nodes holding Optuna's; refuses what Optuna cannot draw."""

    def __init__(self, optuna: Any, algo: str) -> None:
        self.optuna, self.algo = optuna, algo
        self.seen: dict[str, Any] = {}  # Optuna name -> distribution, to keep names unique

    def refuse(self, name: str, what: str, instead: str) -> SpecError:
        by = "auto (Optuna's samplers)" if self.algo == "auto" else self.algo
        return SpecError(f"{what} cannot be sampled by {by}; use {instead}, or algo: tpe",
                         field=f"space.{name}")

    def key(self, name: str, dist: Any) -> str:
        """Optuna's name for a parameter: its decoded name, suffixed only when another option
        declared the same name with another distribution (Optuna requires one per name)."""
        key, n = name, 1
        while key in self.seen and self.seen[key] != dist:
            n += 1
            key = f"{name}#{n}"
        self.seen[key] = dist
        return key

    def nodes(self, space: Mapping[str, Any], prefix: str = "") -> tuple[_Node, ...]:
        return tuple(self.node(f"{prefix}{k}", v) for k, v in space.items())

    def node(self, name: str, value: Any) -> _Node:
        d = self.optuna.distributions
        if isinstance(value, Normal):
            raise self.refuse(name, value.source, "uniform or loguniform")
        if isinstance(value, (Float, Int)):
            whole = isinstance(value, Int)
            if value.log and value.step is not None and not (whole and value.step == 1):
                # Optuna takes no step on a log scale: draw k log-uniformly over the step's
                # multiples inside [low, high] (low > 0, so k >= 1); the value is k * step
                k_low = math.ceil(value.low / value.step - 1e-9)
                k_high = math.floor(value.high / value.step + 1e-9)
                if k_low > k_high:
                    raise self.refuse(name, f"{value.source} with no multiple of its step "
                                      "inside its bounds", "loguniform or quniform")
                dist = d.IntDistribution(k_low, k_high, log=True)
                return _Number(name, self.key(name, dist), dist, whole, float(value.step))
            low, high = _grid(value)
            if isinstance(value, Int):
                dist = d.IntDistribution(int(low), int(high), log=value.log,
                                         step=int(value.step))
            else:
                dist = d.FloatDistribution(low, high, log=value.log, step=value.step)
            return _Number(name, self.key(name, dist), dist, whole)
        if isinstance(value, Categorical):
            if value.weights is not None:
                raise self.refuse(name, f"{value.source} weights", "choice (equal weights)")
            options = tuple(self.option(name, o) for o in value.options)
            dist = d.CategoricalDistribution(tuple(range(len(options))))
            return _Choice(name, self.key(name, dist), dist, options)
        if is_distribution(value):  # a distribution type added without an adapter case
            raise self.refuse(name, type(value).__name__, "uniform, quniform or choice")
        return _Literal(name, value)

    def option(self, name: str, option: Any) -> _Option:
        if is_distribution(option):
            raise self.refuse(name, "a choice of distributions",
                              "named options with their own ranges ({name: low, value: "
                              "{uniform: [0, 1]}})")
        if is_conditional(option):
            rest = {k: v for k, v in option.items() if k != "name"}
            return _Option(option.get("name"), "name" in option,
                           self.nodes(rest, prefix=f"{name}."))
        return _Option(option, True, ())


def _grid(value: Float | Int) -> tuple[float, float]:
    """The bounds Optuna draws between. With a step, the multiples of it inside [low, high]
    (hyperopt's q-distributions round to multiples of q, and so do mltune's), where there are
    any; Optuna's own grid starts at ``low``."""
    if not value.step or value.log:
        return value.low, value.high
    first = math.ceil(value.low / value.step - 1e-9) * value.step
    last = math.floor(value.high / value.step + 1e-9) * value.step
    if first > last:
        return value.low, value.high
    if isinstance(value, Int):
        return int(round(first)), int(round(last))
    return _tidy(first), _tidy(last)


def _tidy(x: float) -> float:
    """A multiple of a decimal step without binary noise (0.30000000000000004 -> 0.3): it is
    what MLflow shows as the trial's param."""
    return float(f"{x:.12g}")


def _has(nodes: Sequence[_Node], kind: type) -> bool:
    """Whether any node (options' children included) is a ``kind``."""
    for node in nodes:
        if isinstance(node, kind):
            return True
        if isinstance(node, _Choice) and any(_has(o.children, kind) for o in node.options):
            return True
    return False


def _is_conditional(nodes: Sequence[_Node]) -> bool:
    """Whether some option carries hyperparameters of its own to draw (only when chosen)."""
    return any(isinstance(n, _Choice) and any(not isinstance(c, _Literal)
                                              for o in n.options for c in o.children)
               for n in nodes)


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same kind (True is not 1)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _suggest(trial: Any, nodes: Sequence[_Node], point: Params) -> None:
    """Draw ``nodes`` through an Optuna trial into ``point`` (decoded, flat, native)."""
    for node in nodes:
        if isinstance(node, _Literal):
            point[node.name] = node.value
        elif isinstance(node, _Number):
            d = node.dist
            if node.whole or node.scale is not None:  # Optuna's IntDistribution
                drawn = trial.suggest_int(node.key, d.low, d.high, step=d.step, log=d.log)
            else:
                drawn = trial.suggest_float(node.key, d.low, d.high, step=d.step, log=d.log)
            point[node.name] = node.value(drawn)
        else:
            option = node.options[trial.suggest_categorical(node.key, node.dist.choices)]
            if option.named:
                point[node.name] = option.value
            _suggest(trial, option.children, point)


def _chosen(node: _Choice, point: Mapping[str, Any]) -> int | None:
    """The index of the option a point took: by its value, or (an unnamed conditional option)
    by its hyperparameters being there."""
    if node.name in point:
        return next((i for i, o in enumerate(node.options)
                     if o.named and _same(o.value, point[node.name])), None)
    return next((i for i, o in enumerate(node.options) if not o.named and o.children
                 and all(c.name in point for c in o.children)), None)


def _recorded(nodes: Sequence[_Node], point: Mapping[str, Any], params: dict[str, Any],
              dists: dict[str, Any]) -> bool:
    """A point's Optuna params and distributions; False if the point does not fit the space
    (a value missing or of the wrong kind, an unknown option). Optuna's ``create_trial``
    checks the rest (ranges, steps)."""
    for node in nodes:
        if isinstance(node, _Literal):
            continue
        if isinstance(node, _Number):
            value = point.get(node.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            if node.whole and value != int(value):
                return False
            params[node.key], dists[node.key] = node.drawn(value), node.dist
            continue
        index = _chosen(node, point)
        if index is None:
            return False
        params[node.key], dists[node.key] = index, node.dist
        if not _recorded(node.options[index].children, point, params, dists):
            return False
    return True


def _fixed_params(nodes: Sequence[_Node], fixed: Mapping[str, Any],
                  params: dict[str, Any]) -> None:
    """Fixed decoded values -> Optuna params to enqueue (a categorical by option index; its
    options' own hyperparameters stay free unless fixed too)."""
    for node in nodes:
        if isinstance(node, _Number) and node.name in fixed:
            params[node.key] = node.drawn(fixed[node.name])
        elif isinstance(node, _Choice):
            if node.name in fixed:
                index = _chosen(node, {node.name: fixed[node.name]})
                if index is None:
                    raise ValueError(f"fixed {node.name}={fixed[node.name]!r} is not one of "
                                     "its options")
                params[node.key] = index
            for option in node.options:
                _fixed_params(option.children, fixed, params)


def _names(nodes: Sequence[_Node]) -> set[str]:
    out: set[str] = set()
    for node in nodes:
        out.add(node.name)
        if isinstance(node, _Choice):
            for option in node.options:
                out |= _names(option.children)
    return out


# --- the sampler -----------------------------------------------------------------------------


class OptunaSampler:
    """mltune's ``Sampler`` protocol over an in-memory Optuna study.

    Pending points are Optuna trials left RUNNING: TPE's constant liar and GP's q-batch
    acquisition both account for them.

    Each draw is made by a fresh Optuna sampler seeded from (seed, trials in the study), not
    by one sampler whose random state runs on: a point is then a function of the seed and
    the history alone, so a resumed search's sampler (``rebuild``, which draws nothing) asks
    exactly what the interrupted one would have asked next. Optuna's samplers keep no other
    state that matters (GP caches its last kernel fit only to start the next fit from it).

    Fixed hyperparameters (a pack's shape key) are enqueued as the trial's fixed params:
    the sampler draws the point as usual and the fixed values take precedence, which is what
    Optuna's ``PartialFixedSampler`` does too (neither TPE nor GP can condition a draw on
    given values). One lock around each call: a study is not meant to be asked and told
    from two threads at once, and a search may tell from the thread that finishes a trial.
    """

    def __init__(self, algo: str, space: Space, budget: int, seed: int) -> None:
        self.algo = algo
        self._optuna = optuna = _import_optuna(algo)
        self._nodes = _Compiler(optuna, algo).nodes(space)
        self._names = _names(self._nodes)
        self._seed, self._startup = seed, startup_trials(budget)
        self._conditional = _is_conditional(self._nodes)
        categorical = _has(self._nodes, _Choice)
        self.kind = ("tpe" if categorical else "gp") if algo == "auto" else algo.removeprefix(
            "optuna-")
        self.study: optuna.Study = optuna.create_study(direction="minimize",
                                                       sampler=self._sampler(0))
        self._pending: list[tuple[int | None, Params]] = []  # (Optuna trial number, point)
        self._discarded = 0  # duplicates of pending points, told FAIL: not part of the history
        self._lock = threading.Lock()

    @property
    def optuna_sampler(self) -> optuna.samplers.BaseSampler:
        """The Optuna sampler that draws the next point (TPESampler or GPSampler)."""
        return self.study.sampler

    def _sampler(self, draw: int) -> optuna.samplers.BaseSampler:
        """The Optuna sampler for one draw, seeded from the search's seed and ``draw``."""
        seed = int(np.random.SeedSequence([self._seed, draw]).generate_state(1)[0])
        samplers = self._optuna.samplers
        if self.kind == "tpe":
            return samplers.TPESampler(n_startup_trials=self._startup, seed=seed,
                                       multivariate=True, group=self._conditional,
                                       constant_liar=True)
        return samplers.GPSampler(n_startup_trials=self._startup, seed=seed,
                                  warn_independent_sampling=False)  # conditional: fallback

    def ask(self, n: int = 1, fixed: Mapping[str, Any] | None = None) -> list[Params]:
        fixed = dict(fixed or {})
        unknown = set(fixed) - self._names
        if unknown:
            raise ValueError(f"fixed hyperparameters not in the space: {sorted(unknown)}")
        params: dict[str, Any] = {}
        _fixed_params(self._nodes, fixed, params)
        points: list[Params] = []
        with self._lock:
            for _ in range(n):
                point = self._draw(params, fixed)
                if point is None:
                    break
                points.append(point)
        return points

    def _draw(self, params: Mapping[str, Any], fixed: Mapping[str, Any]) -> Params | None:
        """One new point, not equal to a pending one; None after ``RETRIES`` duplicates (the
        duplicates are told FAIL: TPE and GP learn nothing from a failed trial)."""
        failed = self._optuna.trial.TrialState.FAIL
        history = len(self.study.get_trials(deepcopy=False)) - self._discarded
        for retry in range(RETRIES):
            self.study.sampler = self._sampler(history * RETRIES + retry)
            if params:
                self.study.enqueue_trial(dict(params), skip_if_exists=False)
            trial = self.study.ask()
            point: Params = {}
            _suggest(trial, self._nodes, point)
            point.update({k: v for k, v in fixed.items() if k in point})
            if any(p == point for _, p in self._pending):
                self.study.tell(trial, state=failed)
                self._discarded += 1
                continue
            self._pending.append((trial.number, point))
            return point
        return None

    def tell(self, point: Params, loss: float | None) -> None:
        with self._lock:
            self._tell(point, loss)

    def _tell(self, point: Params, loss: float | None) -> None:
        state = self._optuna.trial.TrialState
        failed = loss is None or math.isnan(loss)
        for i, (number, pending) in enumerate(self._pending):
            if pending == point:
                del self._pending[i]
                if number is not None:
                    if failed:
                        self.study.tell(number, state=state.FAIL)
                    else:
                        self.study.tell(number, float(loss))  # type: ignore[arg-type]
                return
        self._add([Finished(point, loss)])  # told without being asked: learn it all the same

    def pending(self, point: Params) -> None:
        trial = self._trial(point, None, running=True)
        with self._lock:
            number = None
            if trial is not None:
                self.study.add_trial(trial)
                number = len(self.study.get_trials(deepcopy=False)) - 1
            self._pending.append((number, dict(point)))

    def rebuild(self, finished: Sequence[Finished]) -> None:
        with self._lock:
            self._add(finished)

    def _add(self, finished: Sequence[Finished]) -> None:
        """Finished trials into the study; a point that does not fit the space (the space
        changed between a search and its resume) is left out: Optuna cannot hold it."""
        trials = [t for f in finished if (t := self._trial(f.point, f.loss)) is not None]
        self.study.add_trials(trials)

    def _trial(self, point: Mapping[str, Any], loss: float | None,
               running: bool = False) -> optuna.trial.FrozenTrial | None:
        params: dict[str, Any] = {}
        dists: dict[str, Any] = {}
        if not _recorded(self._nodes, point, params, dists):
            return None
        state = self._optuna.trial.TrialState
        failed = loss is None or math.isnan(loss)
        outcome: dict[str, Any] = (
            {"state": state.RUNNING} if running else {"state": state.FAIL} if failed
            else {"value": float(loss)})  # type: ignore[arg-type]
        try:  # Optuna checks each value against its distribution (range, step)
            return self._optuna.trial.create_trial(params=params, distributions=dists,
                                                   **outcome)
        except ValueError:
            return None


for _algo in ("optuna-tpe", "optuna-gp", "auto"):
    SAMPLERS.add(_algo, partial(OptunaSampler, _algo))
