"""The default local store (sqlite) shared by several searches at once.

SQLite lets one writer in at a time; another writer waits for the lock up to the connection's
busy timeout (5 s by default in Python), then fails with "database is locked" — which would fail
a trial whose metrics happened to wait behind another search's model. mltune makes every sqlite
connection of the process wait up to ``BUSY_TIMEOUT_S`` instead: writes are short, so a writer
that waits gets in. Servers (http) and other databases are left as they are.

A store's first use creates MLflow's tables (alembic migrations, several statements): two
searches started at once on a new file would both run them and one would fail ("table
_alembic_tmp_tags already exists"), so the first use takes a lock named by the file
(``mltune.core.locks``).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from mltune.core.locks import machine_lock

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


def create_tables() -> None:
    """A local sqlite store's tables, created by one process at a time (called just before
    the first run opens: bad input found earlier leaves no file behind)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and ":memory:" not in uri:
        path = os.path.abspath(uri[len("sqlite:///"):])
        os.makedirs(os.path.dirname(path), exist_ok=True)  # sqlite creates the file only
        with machine_lock("store", path):
            MlflowClient(uri).search_experiments(max_results=1)  # creates them if missing
