"""The heap a search made while it set up, frozen while it runs.

Python's full collections scan every object the process holds; MLflow, torch and the loaded
data make that 0.4 s each on the CPU, more than a small trial's training. What set-up made
lives on for the whole search, so it is frozen (``gc.freeze``: kept out of later
collections) while the search runs, and unfrozen when it ends, whichever way it ends. Nested
searches (a search inside a caller's own frozen block) count: only the outermost unfreezes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_depth = [0]
_lock = threading.Lock()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Within: the objects that exist now are kept out of the collector's scans."""
    with _lock:
        _depth[0] += 1
        gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _depth[0] -= 1
            if _depth[0] == 0:
                gc.unfreeze()
