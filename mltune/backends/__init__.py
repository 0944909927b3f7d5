"""Where trials run: ``local`` (hyperopt fmin in this process); more backends register here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mltune.catalog import Catalog
from mltune.spec import SearchSpec

# A backend runs ``objective`` over ``space`` for the spec's budget.
Backend = Callable[[Callable[[dict[str, Any]], dict[str, Any]], dict[str, Any], SearchSpec], None]
BACKENDS: Catalog[Backend] = Catalog("backend")

from mltune.backends import local  # noqa: E402,F401  (registers the built-in backends)
