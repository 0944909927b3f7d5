"""Ctrl-C and SIGTERM during a search: noted by the handler, acted on at safe points.

Raising from a signal handler can land anywhere, including inside a garbage-collector
callback where Python swallows the exception and prints a traceback. So the handler only
records the request; the training loop (every batch) and the search (every trial) call
``check()``, which raises ``KeyboardInterrupt`` there.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_requested: list[str] = []


def check() -> None:
    """Raise the pending interrupt, if any."""
    if _requested:
        raise KeyboardInterrupt(_requested[0])


def request(name: str) -> None:
    """Ask for a stop as a signal would (a Ray worker, when the driver was interrupted)."""
    if not _requested:
        _requested.append(name)


def clear() -> None:
    _requested.clear()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: SIGINT and SIGTERM request a stop (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, frame: Any) -> None:
        if _requested:  # a second signal while stopping: exit at once
            os._exit(130)
        _requested.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _requested.clear()
