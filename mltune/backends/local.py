"""The local backend: the sampler proposes, this process trains, one pack after another.

A pack's first point is the sampler's own and fixes the pack's shape (every hyperparameter
that may not differ inside a pack); the others are asked with that shape fixed, each knowing
every earlier result. A pack is one trial when the search is unpacked (``pack: 1``, or a
network that cannot be packed). A resumed search's sampler starts from what MLflow holds
(``resume.resumed_sampler``), and its interrupted points run first, in packs of one shape.
"""

from __future__ import annotations

from collections.abc import Callable

from mltune.search.backend import BACKENDS
from mltune.search.packs import shape
from mltune.search.resume import resumed_sampler
from mltune.search.samplers.base import Params, loss_of
from mltune.search.session import Session
from mltune.spec.distributions import Space
from mltune.spec.model import SearchSpec


class LocalBackend:
    """Packs of trials one after another in this process (the models of one pack are logged
    in the background while the next trains)."""

    def preflight(self, spec: SearchSpec) -> None:
        """Nothing to check: every sampler in the catalog runs here."""

    def run(self, session: Session, space: Space) -> None:
        spec = session.spec
        sampler = resumed_sampler(spec, space, session.history)
        queued = list(session.history.requeue)
        while session.stop_reason() is None and session.left > 0:
            if queued:
                points = _same_shape(queued, min(session.pack_limit, session.left),
                                     session.is_free)
            else:
                points = sampler.ask(1)
                if not points:
                    return  # no point left that is not pending: the space is spent
                size = session.pack_size(points[0])
                if size > 1:
                    points += sampler.ask(size - 1, fixed=shape(points[0], session.is_free))
            for point, outcome in zip(points, session.run_pack(points), strict=True):
                sampler.tell(point, loss_of(outcome, spec.metric, spec.direction))


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
