"""The default local store (sqlite) shared by several searches at once.

SQLite lets one writer in at a time; another writer waits for the lock up to the connection's
busy timeout (5 s by default in Python), then fails with "database is locked" — which would fail
a trial whose metrics happened to wait behind another search's model. mltune makes every sqlite
connection of the process wait up to ``BUSY_TIMEOUT_S`` instead: writes are short, so a writer
that waits gets in. Servers (http) and other databases are left as they are.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_S = 120
_installed: list[bool] = []


def _wait_for_the_lock(connection: Any, record: Any) -> None:
    if isinstance(connection, sqlite3.Connection):
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")


def share_sqlite_store() -> None:
    """Every sqlite connection opened from now on waits for the write lock (once per
    process; MLflow opens its engine lazily, after this)."""
    if not _installed:
        event.listen(Engine, "connect", _wait_for_the_lock)
        _installed.append(True)
