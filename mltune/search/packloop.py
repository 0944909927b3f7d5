"""A pack loop: one device's packs one after another, sharing the search's sampler.

A pack's first point is the sampler's own and fixes the pack's shape (every hyperparameter
that may not differ inside a pack); the others are asked with that shape fixed, each knowing
every earlier result. As members end (done, pruned, early-stopped), new points take their
slots at the next epoch boundary (``Refill``), so a pack stays full while its shape lasts.
The ``start:`` points and a resumed search's interrupted ones (``queued``) run first, in
packs of one shape.

Several loops (one per device: ``search.devices``; one per Ray worker) share the sampler, its
stash and the queue: each chooses its points and takes their numbers under the session's lock
(so the budget is never overspent and a point is pending in one pack only) and trains
outside it. A lane that is lost mid-pack (a Ray worker that died: ``LaneLost``) gives its
unfinished points back to the queue, to be run again, and its loop goes on when the lane
can be started again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from mltune.core.outcomes import TrialOutcome
from mltune.search.devices import Lane, LaneLost, run_lanes
from mltune.search.packs import shape
from mltune.search.resume import resumed_sampler
from mltune.search.samplers.base import Params, Sampler, loss_of
from mltune.search.session import Session
from mltune.spec.distributions import Space

log = logging.getLogger(__name__)


def run_loops(session: Session, space: Space, lanes: Sequence[Lane]) -> None:
    """The rest of the search's budget: a pack loop on each lane (one in this thread; several
    in threads, ``run_lanes``), sharing one sampler (a resumed search's starts from what
    MLflow holds), its stash and the queue of points to run first."""
    sampler = resumed_sampler(session.spec, space, session.history)
    queued = list(session.history.requeue)
    stash: list[Params] = []  # the sampler's points of another shape: they start packs

    def loop(lane: Lane, halted: Callable[[], bool]) -> None:
        pack_loop(session, lane, sampler, queued, stash, halted)

    run_lanes(lanes, loop)


def pack_loop(session: Session, lane: Lane, sampler: Sampler, queued: list[Params],
               stash: list[Params], halted: Callable[[], bool]) -> None:
    """One device's packs, one after another, until the budget, the stop rules or the space
    end the search (or ``halted()``: another device's loop failed)."""
    spec = session.spec

    def tell(point: Params, outcome: TrialOutcome) -> None:
        sampler.tell(point, loss_of(outcome, spec.metric, spec.direction))

    while True:
        with session.lock:  # the first points chosen: shared with other loops
            if halted() or session.stop_reason() is not None or session.left <= 0:
                return
            from_queue = bool(queued)
            if from_queue:  # start points, then a resumed search's interrupted ones
                points = _same_shape(queued, min(session.pack_limit, session.left),
                                     session.is_free)
            else:
                points = [stash.pop(0)] if stash else sampler.ask(1)
                if not points:
                    return  # no point left that is not pending: the space is spent
            fill = not queued  # the queue is spent: the sampler fills and refills this pack
        size = session.pack_size(points[0], lane)  # measuring: the other loops go on
        with session.lock:  # filled and numbered at once: the budget is never overspent
            left = session.left
            if session.stop_reason() is not None or left < len(points):
                # other loops took the budget meanwhile: the points wait (or the search ends)
                (queued if from_queue else stash)[:0] = points
                continue
            more = None
            if fill and min(size, left) > 1:
                size = min(size, left)
                fixed = shape(points[0], session.is_free)
                points += sampler.ask(size - len(points), fixed=fixed)
                more = Refill(sampler, fixed, session.is_free, stash, misses=8 * size)
            numbered = session.number(points, more)
        try:
            session.train(numbered, on_end=tell, lane=lane)
        except LaneLost as lost:
            with session.lock:  # its unfinished trials are re-run, first, by any loop
                for number, _ in lost.unfinished:
                    session.in_flight.discard(number)
                queued[:0] = [point for _, point in lost.unfinished]
            log.warning("%s; its %d unfinished trial(s) run again", lost, len(lost.unfinished))
            if not lost.restartable:
                return


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
