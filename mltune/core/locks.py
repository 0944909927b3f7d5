"""A lock shared by the threads and processes of one machine, named by what it guards.

``filelock`` works on every platform (``fcntl`` does not exist on Windows, where ``import
mltune`` must still work). The lock file lives in the temporary folder, named by a hash of
what it guards: never the guarded file itself (a database is not ours to open for locking),
and nothing is left next to the user's files.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


def lock_path(purpose: str, key: str) -> Path:
    """The lock file for ``key`` (a store's path, a registry URI and model name)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mltune-{purpose}-{digest}.lock"


@contextmanager
def machine_lock(purpose: str, key: str) -> Iterator[None]:
    """Hold the lock of ``key`` exclusively, waiting as long as it takes (the work it guards
    is short: creating tables, moving an alias)."""
    with FileLock(lock_path(purpose, key)):
        yield
