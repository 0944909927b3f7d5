"""What a backend is (where trials run), and the catalog of backends by name.

The catalog is ``spec.catalogs.BACKENDS``, the one a spec's ``backend`` is checked against; each
backend module adds itself (``mltune.backends``, imported by the package root), so the search
never imports a backend and a new one is one module.
"""

from __future__ import annotations

from typing import Protocol

from mltune.core.catalog import Catalog
from mltune.search.session import Session
from mltune.spec.catalogs import BACKENDS as _BACKENDS
from mltune.spec.distributions import Space
from mltune.spec.model import SearchSpec


class Backend(Protocol):
    """Runs a search's trials until its budget is spent or a stop rule fires."""

    def preflight(self, spec: SearchSpec) -> None:
        """Refuse what cannot run (a missing library, an unreachable cluster) before any data
        is read or any run is opened."""

    def run(self, session: Session, space: Space) -> None:
        """Run trials of ``space`` (mltune's distributions: the backend makes the spec's
        sampler from the catalog) through ``session``, resumed history first."""


BACKENDS: Catalog[Backend] = _BACKENDS  # the one the spec is checked against
