"""``none``: no scheduling; every trial runs all its epochs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mltune.search.schedulers.base import CONTINUE, Context, Decision, Replayed
from mltune.spec.catalogs import SCHEDULERS


@dataclass(frozen=True)
class NoOptions:
    """``none`` takes no options."""


@SCHEDULERS.register("none")
class NoScheduler(Replayed):
    """Answers CONTINUE to everything, so a search without pruning needs no special case."""

    Options = NoOptions

    @staticmethod
    def options(raw: Mapping[str, Any], epochs: int) -> NoOptions:
        return NoOptions()

    @staticmethod
    def outline(options: NoOptions, epochs: int) -> str:
        return f"none: every trial trains all {epochs} epochs"

    def __init__(self, options: NoOptions, context: Context) -> None:
        self.context = context

    def start(self, trial: int, params: Mapping[str, Any]) -> None:
        """Params play no part in this rule."""

    def decide(self, trial: int, epoch: int, value: float,
               peers: Mapping[int, float] | None = None) -> Decision:
        return CONTINUE

    def end(self, trial: int) -> None:
        """Nothing is kept per trial."""
