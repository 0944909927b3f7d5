"""Optuna's samplers behind mltune's sampler protocol: ``optuna-tpe``, ``optuna-gp`` and ``auto``.

An optional extra (``pip install 'mltune[optuna]'``): Optuna is imported only when one of these
samplers is made, so ``import mltune`` works without it, the names stay in the catalog (the
spec is validated against it) and asking for one without Optuna is one ``SpecError`` line
naming the extra.

Each sampler drives an in-memory Optuna study, define-by-run: mltune's space is compiled once
into nodes (``_compile``) that suggest a point through an Optuna trial (``suggest``) and turn a
recorded point back into Optuna's params (``recorded``, for ``pending``, ``rebuild`` and a
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
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from mltune.core.errors import SpecError
from mltune.search.samplers.base import Finished, Params
from mltune.search.samplers.optuna_space import (
    Choice,
    Compiler,
    conditional,
    fixed_params,
    has_kind,
    names,
    recorded,
    suggest,
)
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.distributions import (
    Space,
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
        self._nodes = Compiler(optuna, algo).nodes(space)
        self._names = names(self._nodes)
        self._seed, self._startup = seed, startup_trials(budget)
        self._conditional = conditional(self._nodes)
        categorical = has_kind(self._nodes, Choice)
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
        fixed_params(self._nodes, fixed, params)
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
            suggest(trial, self._nodes, point)
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
        if not recorded(self._nodes, point, params, dists):
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
