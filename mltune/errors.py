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


class SearchInterrupted(MltuneError):
    """Ctrl-C or SIGTERM stopped a search; it can be resumed from its parent run."""

    exit_code = 130

    def __init__(self, parent_run_id: str, signal_name: str = "SIGINT",
                 config: str = "<spec>") -> None:
        super().__init__(f"search interrupted ({signal_name}); finished trials are kept. "
                         f"Resume with: mltune tune --config {config} --resume {parent_run_id}")
        self.parent_run_id, self.signal_name = parent_run_id, signal_name
        if signal_name == "SIGTERM":
            self.exit_code = 143


class TrackingServerError(MltuneError):
    """The tracking server cannot be used: unreachable, credentials refused, no permission."""


class TrackingLost(MltuneError):
    """The tracking server stopped answering during a search (after MLflow's retries).

    Exit code 75 (EX_TEMPFAIL: try again later): the search can be resumed once it is back.
    """

    exit_code = 75

    def __init__(self, parent_run_id: str, reason: str, config: str = "<spec>") -> None:
        super().__init__(f"the tracking server stopped answering ({reason}); finished trials "
                         "are kept on it, the trial in flight will run again. Once the server "
                         f"is back, resume with: mltune tune --config {config} "
                         f"--resume {parent_run_id}")
        self.parent_run_id, self.reason = parent_run_id, reason
