"""Stopping a search: Ctrl-C, SIGTERM, a failed lane, a driver's request, each noted on the
search's own ``Stop`` and acted on at safe points.

Raising from a signal handler can land anywhere, including inside a garbage-collector
callback where Python swallows the exception and prints a traceback. So the handler only
records the request on the search's ``Stop``; the pack trainer (every batch) and the driver
(every epoch) call ``check()``, which raises ``KeyboardInterrupt`` there. Each search has its
own ``Stop``: two searches in one process (or a Ray worker between two packs) never stop each
other.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Stop:
    """One search's stop request: its reason once asked for, None before."""

    def __init__(self) -> None:
        self._reason: str | None = None
        self._lock = threading.Lock()

    @property
    def reason(self) -> str | None:
        return self._reason

    def request(self, reason: str) -> bool:
        """Ask for a stop (the first reason given is kept); True when this call asked it."""
        with self._lock:
            if self._reason is not None:
                return False
            self._reason = reason
            return True

    def check(self) -> None:
        """Raise ``KeyboardInterrupt(reason)`` when a stop was asked for."""
        if self._reason is not None:
            raise KeyboardInterrupt(self._reason)

    def clear(self) -> None:
        with self._lock:
            self._reason = None


NEVER = Stop()  # for code run outside a search (a benchmark's ``fit``): never asked to stop


@contextmanager
def stop_on_signals(stop: Stop) -> Iterator[None]:
    """Within: SIGINT and SIGTERM ask ``stop`` to stop (main thread only; elsewhere a no-op).
    A second signal while stopping exits at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, frame: Any) -> None:
        if not stop.request(signal.Signals(signum).name):
            os._exit(130)

    previous = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
