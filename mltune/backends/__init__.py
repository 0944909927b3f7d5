"""Where lanes run: ``local`` (a driver per device, in this process) and ``ray`` (a driver per
Ray worker, each a Ray core actor).

Each module adds its backend to ``mltune.search.packs.lanes.BACKENDS``; this package is imported
by the package root, so every built-in backend is known by name. ``ray`` imports Ray only
when a search runs on it.
"""

from mltune.backends import local, ray  # noqa: F401  (registers the built-in backends)
