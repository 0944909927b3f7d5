"""Environment variables set for a block and put back afterwards (MLflow and Ray read them)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def temporarily(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` inside the block; what was there before, after it."""
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
