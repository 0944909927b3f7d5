"""Where a user looks: the MLflow UI's addresses for an experiment's runs and for one run.

MLflow 3's UI opens an experiment on its GenAI overview unless told otherwise; the runs page of
Model training is ``#/experiments/<id>/runs?workflowType=machine_learning``. Against a tracking
server the UI is the server's own address; against a local store it is what ``mlflow ui``
serves (``LOCAL_UI``), started with the command ``ui_command`` gives.
"""

from __future__ import annotations

from urllib.parse import urlparse

import mlflow

LOCAL_UI = "http://127.0.0.1:5000"  # `mlflow ui`'s default address
RUNS_PAGE = "#/experiments/{experiment}/runs?workflowType=machine_learning"
RUN_PAGE = "#/experiments/{experiment}/runs/{run}"


def server_address(uri: str | None = None) -> str | None:
    """The tracking server's address (``http(s)://host[:port][/path]``), None for a local
    store. Credentials in the URI are never part of it."""
    uri = uri or mlflow.get_tracking_uri()
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return None
    host = parsed.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parsed.port:
        netloc += f":{parsed.port}"
    return f"{parsed.scheme}://{netloc}{parsed.path.rstrip('/')}"


def ui_address(uri: str | None = None) -> str:
    """The UI's address: the server's, or ``mlflow ui``'s for a local store."""
    return server_address(uri) or LOCAL_UI


def experiment_url(experiment_id: str, uri: str | None = None) -> str:
    """The page that lists the experiment's runs (Model training -> Runs)."""
    return f"{ui_address(uri)}/{RUNS_PAGE.format(experiment=experiment_id)}"


def run_url(experiment_id: str, run_id: str, base: str | None = None) -> str:
    """A run's page; ``base``: the UI's address (default: this store's), "" for a link
    relative to the UI page it is shown on."""
    base = ui_address() if base is None else base
    path = RUN_PAGE.format(experiment=experiment_id, run=run_id)
    return f"{base}/{path}" if base else path


def ui_command(uri: str | None = None) -> str | None:
    """The command that serves the UI for a local store (None: a server already does)."""
    uri = uri or mlflow.get_tracking_uri()
    if server_address(uri) is not None:
        return None
    return f"mlflow ui --backend-store-uri {uri}"
