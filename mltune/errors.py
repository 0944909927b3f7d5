"""The errors mltune raises on purpose.

Each carries a message a user can act on: the field, the value and what is allowed. The CLI
prints it as one line and exits with ``exit_code``: 2 for bad input, 1 for a search that ran
and could not produce a result.
"""

from __future__ import annotations


class MltuneError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    exit_code = 2


class SpecError(MltuneError):
    """The search spec (YAML, CLI flags, MLproject parameters) is invalid."""


class DataError(MltuneError):
    """The user's data cannot be used as the spec says."""


class SearchError(MltuneError):
    """The search ran but has no result to give (for example: every trial failed)."""

    exit_code = 1
