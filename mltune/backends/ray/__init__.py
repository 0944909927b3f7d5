"""The ray backend: trials in parallel on Ray Tune, searched by the spec's sampler (any ``algo``).

The driver (this process) holds the parent run, the search's bookkeeping and the sampler; each
trial trains in a Ray worker, which opens its own child run with ``parent_run_id`` and logs it
exactly like a local trial (``mltune.search.trial.TrialRunner``). The data is prepared once,
here, and shipped through Ray's object store.

This module imports without Ray; everything that needs it lives in ``runner``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mltune.core.errors import SpecError
from mltune.search.backend import BACKENDS
from mltune.spec.model import SearchSpec

INSTALL = "pip install 'mltune[ray]'"
LOCAL_SCHEMES = ("", "file", "sqlite")


def preflight(spec: SearchSpec) -> None:
    """Refuse what cannot run, before any data is read or any run is opened."""
    try:
        import ray.tune  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "ray"
        raise SpecError(f"backend: 'ray' needs Ray Tune, which is not installed (no module "
                        f"{missing!r}); install it with: {INSTALL}") from None
    if spec.ray_address is not None:
        check_reachable(spec.ray_address)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A cluster to join must answer: Ray itself would retry for minutes, printing warnings."""
    if address.startswith("ray://"):
        return  # Ray Client: it reports an unreachable server itself
    from ray._private.services import canonicalize_bootstrap_address

    try:
        target = canonicalize_bootstrap_address(address)
    except Exception as exc:  # "auto" and no cluster recorded on this machine, a bad form
        raise SpecError(f"ray_address: {address!r}: {str(exc).splitlines()[0]}") from None
    if target is None:
        raise SpecError(f"ray_address: {address!r}: no running Ray cluster found on this "
                        "machine; start one with `ray start --head` or give host:port")
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise SpecError(f"ray_address: {address!r}: nothing answers at {target} "
                        f"({exc.strerror or exc}); start the head with `ray start --head` "
                        "or check the address") from None


def is_local_store(uri: str) -> bool:
    """A store only this machine can write: a sqlite file or a folder."""
    return urlparse(uri).scheme in LOCAL_SCHEMES


def check_tracking_store(uri: str, nodes: int) -> None:
    """Workers on other nodes cannot write a file on this one: a cluster needs a server."""
    if nodes > 1 and is_local_store(uri):
        raise SpecError(
            f"tracking: {uri!r} is a local store, which workers on the other {nodes - 1} Ray "
            "node(s) cannot write; start `mlflow server` and set MLFLOW_TRACKING_URI="
            "http://HOST:PORT")


def worker_tracking_uri(uri: str) -> str:
    """The tracking URI as a worker must see it: a local store's path made absolute.

    A worker's working directory is not the driver's, so ``sqlite:///mlflow.db`` would be
    another file there.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        path = uri[len("sqlite:///"):]
        if path and not path.startswith("/") and path != ":memory:":
            return f"sqlite:///{Path(path).resolve()}"
        return uri
    if parsed.scheme == "":
        return str(Path(uri).resolve())
    return uri


def worker_env(tracking_uri: str) -> dict[str, str]:
    """Environment for the workers: MLflow's settings (credentials too), never MLFLOW_RUN_ID.

    ``MLFLOW_RUN_ID`` (set by ``mlflow run``) would make every worker log into the parent
    run (mlflow#15713); ``tracking.start_search`` already removed it from this process.
    """
    env = {k: v for k, v in os.environ.items()
           if k.startswith("MLFLOW_") and k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
                                                     "MLFLOW_EXPERIMENT_NAME")}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # keep relative paths in the spec meaning the same
    return env


class RayBackend:
    """Trials in parallel in Ray Tune workers (``runner``), each logged like a local trial."""

    def preflight(self, spec: SearchSpec) -> None:
        preflight(spec)

    def run(self, session: Any, space: Mapping[str, Any]) -> None:
        from mltune.backends.ray.runner import run_search

        run_search(session, space)


BACKENDS.add("ray", RayBackend())
