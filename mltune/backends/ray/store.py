"""Where a Ray backend's trials write: the tracking store as workers on any node must see it.

Apart from the backend's entry point (``mltune.backends.ray``), so that ``runner`` and the entry
point both import it and neither imports the other at module level.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from mltune.core.errors import SpecError

LOCAL_SCHEMES = ("", "file", "sqlite")


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
