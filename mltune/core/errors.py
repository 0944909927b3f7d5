"""The errors mltune raises on purpose.

Each carries the facts a user can act on: the field, the value and what is allowed. Library
code never names a command-line flag or an exit code: the CLI (``mltune.cli``) words an error
with its flags and picks the exit code by the error's class.
"""

from __future__ import annotations


class MltuneError(Exception):
    """Base class: a problem the user can fix, reported without a traceback.

    ``field`` names the setting at fault (``resume``, ``model``, ``space.activation``) when the
    message is about one; ``str()`` starts with it, the CLI may show it as its flag instead.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field, self.detail = field, message


class SpecError(MltuneError):
    """The search spec (YAML, CLI flags, MLproject parameters) is invalid."""


class DataError(MltuneError):
    """The user's data cannot be used as the spec says."""


class SearchError(MltuneError):
    """The search ran but has no result to give (for example: every trial failed)."""


class SearchInterrupted(MltuneError):
    """Ctrl-C or SIGTERM stopped a search; it can be resumed from its parent run."""

    def __init__(self, parent_run_id: str, signal_name: str = "SIGINT") -> None:
        super().__init__(f"search interrupted ({signal_name}); finished trials are kept; "
                         f"resume it from parent run {parent_run_id}")
        self.parent_run_id, self.signal_name = parent_run_id, signal_name


class TrackingServerError(MltuneError):
    """The tracking server cannot be used: unreachable, credentials refused, no permission."""


class TrackingLost(MltuneError):
    """The tracking server stopped answering during a search (after MLflow's retries); the
    search can be resumed from its parent run once the server is back."""

    def __init__(self, parent_run_id: str, reason: str) -> None:
        super().__init__(f"the tracking server stopped answering ({reason}); finished trials "
                         "are kept on it, the trial in flight will run again; once the server "
                         f"is back, resume parent run {parent_run_id}")
        self.parent_run_id, self.reason = parent_run_id, reason
