"""Tracking work done off the training thread: metrics sent in order, models logged while the
next trial trains.

mltune's own threads rather than MLflow's async logging: MLflow's queue is shared by every run
of the store and torn down by any ``set_terminated``, which races with a search that ends one
trial's run in the background while the next trial logs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
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


class Batch:
    """What one run writes (metrics, params, tags), sent in the background in as few calls as
    the store's pace allows: a send is queued only when none waits already, and it takes
    everything written by then (``send(metrics, params, tags)``: one ``log_batch``)."""

    def __init__(self, send: Callable[[list[Any], list[Any], list[Any]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._metrics: list[Any] = []
        self._params: list[Any] = []
        self._tags: list[Any] = []

    def write(self, metrics: Sequence[Any] = (), params: Sequence[Any] = (),
              tags: Sequence[Any] = (), queue: bool = True) -> Future[None] | None:
        """Add to what the next send takes; the send queued for it, if this call queued one
        (``queue=False``: none is, the next ``send_now`` or queued send takes it)."""
        with self._lock:
            idle = not (self._metrics or self._params or self._tags)
            self._metrics += metrics
            self._params += params
            self._tags += tags
        return send_later(self.send_now) if idle and queue else None

    def send_now(self) -> None:
        """Send what waits, in one call, in this thread."""
        with self._lock:
            metrics, params, tags = self._metrics, self._params, self._tags
            self._metrics, self._params, self._tags = [], [], []
        if metrics or params or tags:
            self._send(metrics, params, tags)


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
