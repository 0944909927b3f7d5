"""A Ray worker's coordinator: the search's own, reached through the worker's event queue.

The driver in a worker calls its coordinator as a local lane's driver does; each call becomes
an event (``("call", (method, args))``) that a thread of the search's process takes
(``next_event``, a long poll), answers with the real coordinator's result (``answer``), and the
worker's call returns it. Calls are plain values both ways (points, numbers, outcomes, a
tensor of out-of-fold predictions), one at a time (the driver's thread and its model
finisher's may both call). So a worker's trials are numbered, refilled, judged by the one
scheduler and recorded exactly as a local lane's: nothing of the coordinator is copied.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from mltune.core.outcomes import TrialOutcome
from mltune.search.packs.coordinator import Admitted, EpochAnswer, Numbered, PackStart

CALLS = ("next_pack", "admit", "refill", "epoch", "ended", "logged", "packed")


class Relay:
    """Both ends of a worker's events: calls and the driver's end go out, answers come in."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.answers: queue.Queue[Any] = queue.Queue()
        self.lock = threading.Lock()

    def call(self, method: str, *args: Any) -> Any:
        with self.lock:  # one call in flight: its answer is the next one
            self.events.put(("call", (method, args)))
            return self.answers.get()

    def end(self, kind: str, value: Any) -> None:
        """The driver is done (``done``) or raised (``raised``, the error as it pickles)."""
        self.events.put((kind, value))

    def next_event(self, wait_s: float) -> tuple[str, Any] | None:
        try:
            return self.events.get(timeout=wait_s)
        except queue.Empty:
            return None


class RelayCoordinator:
    """The ``Coordinator`` interface a driver in a worker calls."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def next_pack(self) -> PackStart | None:
        return self.relay.call("next_pack")

    def admit(self, start: PackStart, size: int) -> Admitted | None:
        return self.relay.call("admit", start, size)

    def refill(self, pack: int, free: int) -> Numbered:
        return self.relay.call("refill", pack, free)

    def epoch(self, reports: list[tuple[int, int, float]]) -> EpochAnswer:
        return self.relay.call("epoch", reports)

    def ended(self, outcome: TrialOutcome, oof: Any = None) -> None:
        self.relay.call("ended", outcome, oof)

    def logged(self, outcome: TrialOutcome) -> None:
        self.relay.call("logged", outcome)

    def packed(self, member_s: float, slot_s: float) -> None:
        self.relay.call("packed", member_s, slot_s)
