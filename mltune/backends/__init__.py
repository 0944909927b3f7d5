"""Where trials run: ``local`` (packs one after another in this process) and ``ray`` (Ray Tune
workers).

Each module adds its backend to ``mltune.search.backend.BACKENDS``; this package is imported
by the package root, so every built-in backend is known by name. ``ray`` imports Ray only
when a search runs on it.
"""

from mltune.backends import local, ray  # noqa: F401  (registers the built-in backends)
