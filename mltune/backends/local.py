"""The local backend: the sampler proposes, this process trains, one pack after another, on
each device of the search at once (``search.packloop``: a pack loop per device, in threads).

A pack is one trial when the search is unpacked (``pack: 1``, or a network that cannot be
packed). A resumed search's sampler starts from what MLflow holds (``resume.resumed_sampler``);
its interrupted points run first.
"""

from __future__ import annotations

from mltune.search.backend import BACKENDS
from mltune.search.packloop import Refill, run_loops
from mltune.search.session import Session
from mltune.spec.distributions import Space
from mltune.spec.model import SearchSpec

__all__ = ["LocalBackend", "Refill"]


class LocalBackend:
    """Packs of trials one after another in this process, each kept full while its shape
    lasts (the models of one pack are logged in the background while it trains on); one
    such loop per device."""

    def preflight(self, spec: SearchSpec) -> None:
        """Nothing to check: every sampler in the catalog runs here."""

    def run(self, session: Session, space: Space) -> None:
        run_loops(session, space, session.lanes)


BACKENDS.add("local", LocalBackend())
