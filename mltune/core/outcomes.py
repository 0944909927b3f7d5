"""One trial as the search saw it: the record every backend reports and resume rebuilds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mltune.core.terms import TrialStatus


@dataclass
class TrialOutcome:
    """One trial: its number, run, decoded params, status and final metrics."""

    number: int
    run_id: str
    params: dict[str, Any]
    status: TrialStatus
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    error: str | None = None
    seconds: float = 0.0
    pack: int | None = None  # the pack it trained in, when packed
    epochs: int = 0  # the epochs it trained (fewer than the search's when stopped early)
    device: str | None = None  # where it trained (``mltune.device``: ``cuda:1``, ``cpu#2``)

    def __post_init__(self) -> None:
        self.status = TrialStatus(self.status)  # from JSON (a Ray worker's report) too
