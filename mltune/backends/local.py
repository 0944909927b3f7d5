"""The local backend: the sampler proposes, this process trains, one pack after another.

A pack's first point is the sampler's own and fixes the pack's shape (every hyperparameter
that may not differ inside a pack); the others are asked with that shape fixed, each knowing
every earlier result. As members end (done, pruned, early-stopped), new points take their
slots at the next epoch boundary (``Refill``), so a pack stays full while its shape lasts.
A pack is one trial when the search is unpacked (``pack: 1``, or a
network that cannot be packed). A resumed search's sampler starts from what MLflow holds
(``resume.resumed_sampler``). The ``start:`` points (by default the task's defaults) and a
resumed search's interrupted points run first, in packs of one shape; the last of them is
filled and refilled by the sampler.

On several devices (``search.devices``), each device runs this loop in a thread of its own,
all of them sharing the one sampler, its stash and the queue of start points; each loop
chooses its points and takes their numbers under the session's lock (so the budget is never
overspent and a point is pending in one pack only) and trains outside it.
"""

from __future__ import annotations

from collections.abc import Callable

from mltune.core.outcomes import TrialOutcome
from mltune.search.backend import BACKENDS
from mltune.search.devices import Lane, run_lanes
from mltune.search.packs import shape
from mltune.search.resume import resumed_sampler
from mltune.search.samplers.base import Params, Sampler, loss_of
from mltune.search.session import Session
from mltune.spec.distributions import Space
from mltune.spec.model import SearchSpec


class LocalBackend:
    """Packs of trials one after another in this process, each kept full while its shape
    lasts (the models of one pack are logged in the background while it trains on); one
    such loop per device."""

    def preflight(self, spec: SearchSpec) -> None:
        """Nothing to check: every sampler in the catalog runs here."""

    def run(self, session: Session, space: Space) -> None:
        sampler = resumed_sampler(session.spec, space, session.history)
        queued = list(session.history.requeue)
        stash: list[Params] = []  # the sampler's points of another shape: they start packs

        def loop(lane: Lane, halted: Callable[[], bool]) -> None:
            _pack_loop(session, lane, sampler, queued, stash, halted)

        run_lanes(session.lanes, loop)


def _pack_loop(session: Session, lane: Lane, sampler: Sampler, queued: list[Params],
               stash: list[Params], halted: Callable[[], bool]) -> None:
    """One device's packs, one after another, until the budget, the stop rules or the space
    end the search (or ``halted()``: another device's loop failed)."""
    spec = session.spec

    def tell(point: Params, outcome: TrialOutcome) -> None:
        sampler.tell(point, loss_of(outcome, spec.metric, spec.direction))

    while True:
        with session.lock:  # the points chosen and numbered at once: shared with other loops
            if halted() or session.stop_reason() is not None or session.left <= 0:
                return
            more = None
            if queued:  # start points, then a resumed search's interrupted ones
                points = _same_shape(queued, min(session.pack_limit, session.left),
                                     session.is_free)
            else:
                points = [stash.pop(0)] if stash else sampler.ask(1)
                if not points:
                    return  # no point left that is not pending: the space is spent
            size = session.pack_size(points[0], lane)
            if size > 1 and not queued:  # the sampler fills the pack, refills it as they end
                fixed = shape(points[0], session.is_free)
                points += sampler.ask(size - len(points), fixed=fixed)
                more = Refill(sampler, fixed, session.is_free, stash, misses=8 * size)
            numbered = session.number(points, more)
        session.train(numbered, on_end=tell, lane=lane)


class Refill:
    """The points that take a running pack's free slots: the sampler's own next point when it
    has the pack's shape; otherwise that point waits (``stash``: it starts a later pack) and
    a point of the pack's shape is asked instead. After ``misses`` such points the sampler
    has asked for other shapes long enough: the pack takes no one more and drains. The local
    backend allows 8K: at 2K an ASHA search on digits kept its slots 0.72 full (draining
    often), at 8K 0.93-1.0 (``benchmarks/pruning.py``)."""

    def __init__(self, sampler: Sampler, fixed: Params, is_free: Callable[[str], bool],
                 stash: list[Params], misses: int) -> None:
        self.sampler, self.fixed, self.is_free = sampler, fixed, is_free
        self.stash, self.misses = stash, misses

    def __call__(self, n: int) -> list[Params]:
        points: list[Params] = []
        while len(points) < n and self.misses > 0:
            asked = self.sampler.ask(1)
            if not asked:
                break
            if shape(asked[0], self.is_free) == self.fixed:
                points += asked
                continue
            self.stash += asked
            self.misses -= 1
            points += self.sampler.ask(1, fixed=self.fixed)
        return points


def _same_shape(queued: list[Params], limit: int, is_free: Callable[[str], bool]
                ) -> list[Params]:
    """The next interrupted points to run again: the first, and those of its shape, up to
    ``limit`` (taken off ``queued``)."""
    first = shape(queued[0], is_free)
    chosen = [p for p in queued if shape(p, is_free) == first][:max(1, limit)]
    for point in chosen:
        queued.remove(point)
    return chosen


BACKENDS.add("local", LocalBackend())
