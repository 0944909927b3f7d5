"""Where trials run: ``local`` (hyperopt fmin in this process), ``ray`` (Ray Tune workers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mltune.catalog import Catalog
from mltune.spec import SearchSpec

# A backend runs ``objective(sample, vals)`` over ``space`` until the spec's budget is spent or
# ``stop_reason()`` returns a reason, starting from a resumed search's ``state``.
Backend = Callable[[Any, dict[str, Any], SearchSpec, Any, Callable[[], str | None]], None]
BACKENDS: Catalog[Backend] = Catalog("backend")

from mltune.backends import local, ray  # noqa: E402,F401  (registers the built-in backends)
