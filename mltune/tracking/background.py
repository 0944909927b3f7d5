"""Tracking work done off the training thread: metrics sent in order, models logged while the
next trial trains.

mltune's own threads rather than MLflow's async logging: MLflow's queue is shared by every run
of the store and torn down by any ``set_terminated``, which races with a search that ends one
trial's run in the background while the next trial logs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_SENDER: list[ThreadPoolExecutor] = []
_SENDER_LOCK = threading.Lock()


def _sender() -> ThreadPoolExecutor:
    """One thread that sends metrics in the order they were logged, while training goes on
    (one for the process, whichever device's loop logs: made under a lock)."""
    with _SENDER_LOCK:
        if not _SENDER:
            _SENDER.append(ThreadPoolExecutor(1, thread_name_prefix="mltune-metrics"))
        return _SENDER[0]


def send_later(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
    """Queue a tracking call; its future raises what the server answered."""
    return _sender().submit(call, *args, **kwargs)


def sent() -> None:
    """Wait until everything queued so far has been sent."""
    send_later(lambda: None).result()


class Finisher:
    """Logs finished trials' models in one background thread, overlapping the next trial.

    A model is dozens of files; against a tracking server that is dozens of HTTP calls
    (1-2 s a trial on 127.0.0.1). Jobs run in order, one at a time; ``drain`` waits for them
    (the search does before it picks the best trial). A job records its own failure. The
    loops of several devices submit to one finisher (``submit`` is safe from any thread).
    """

    def __init__(self, backlog: int = 4) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mltune-finish")
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        # jobs waiting at most: what a slow server may hold in memory (a trained network each),
        # and how far the search runs ahead of its models before it waits for them
        self.backlog = backlog

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; when ``backlog`` jobs already wait, first wait for the oldest (so
        a slow tracking server slows the search down instead of piling up networks)."""
        while True:
            with self._lock:
                self._pending = [f for f in self._pending if not f.done()]
                if len(self._pending) <= self.backlog:
                    self._pending.append(self._pool.submit(job))
                    return
                oldest = self._pending[0]
            oldest.result()  # outside the lock: another loop may submit meanwhile

    def drain(self) -> None:
        """Wait for every job submitted so far."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        self.drain()
        self._pool.shutdown()


def inline(job: Callable[[], None]) -> None:
    """A finisher that runs the job at once (a Ray worker, ``mltune train``)."""
    job()
