"""Tracking fixtures: a real MLflow sqlite store per test, helpers to read runs back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from servers import MlflowServer, Postgres, postgres_bin

REPO = Path(__file__).resolve().parents[1]

# The test models are tiny: one intra-op thread is several times faster than two fighting over
# two cores (and over the servers the tests start). Subprocesses inherit it through the env.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

# Under pytest-xdist (``make test``: two workers, ``--dist loadgroup``) a module's tests stay in
# one worker (its module-scoped searches and servers are made once), and the modules that start
# Ray share a worker, so that two Rays never run at once on two cores.
RAY_MODULES = {"test_ray", "test_lanes", "test_matrix", "test_writers"}



@pytest.fixture()
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh sqlite tracking + registry store in tmp_path, also for subprocesses."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    monkeypatch.chdir(tmp_path)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture()
def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """``ray.init(num_cpus=2)`` in this process, as a notebook user starts it: searches join
    it (and leave it running) until the module's tests are done."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'mltune[ray]')")
    import logging

    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}})
        try:
            yield
        finally:
            ray.shutdown()


def all_runs(client: MlflowClient) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, max_results=1000) if experiments else []


def children_of(client: MlflowClient, parent_id: str) -> list:
    runs = [r for r in all_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent_id]
    return sorted(runs, key=lambda r: int(r.data.tags["mltune.trial"]))


def env_for_subprocess(uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_RUN")}
    env["MLFLOW_TRACKING_URI"] = uri
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``mltune ARGS`` in this process: (exit code, stdout, stderr)."""
    from mltune.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@contextmanager
def tracking_store(uri: str, env: dict[str, str] | None = None) -> Iterator[None]:
    """Point MLflow (and subprocesses) at ``uri`` for a block: for module-scoped searches.

    ``env``: more variables for the block (credentials, ``MLFLOW_EXPERIMENT_NAME``...).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)



@contextmanager
def client_of(uri: str) -> Iterator[MlflowClient]:
    """A client of the store ``uri``, with MLflow pointed at it for the block (module-scoped
    searches: each test reads the one search's store)."""
    with tracking_store(uri):
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)

# --- a plain tracking server: sqlite behind it, artifacts proxied -----------------------------

@pytest.fixture(scope="session")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real ``mlflow server`` on 127.0.0.1 for the test session, no authentication: the
    MLflow UI a user browses (tests/test_ui.py)."""
    server = MlflowServer(tmp_path_factory.mktemp("plain-server")).start()
    try:
        yield server
    finally:
        server.stop()


# --- a team's tracking server: basic-auth, sqlite behind it, artifacts proxied ---------------

TEAM_USER, TEAM_PASSWORD = "alice", "alice-pw-5e1d7c0b9a"  # writes her own experiments
READER, READER_PASSWORD = "reader", "reader-pw-84f2a6"  # reads everything, writes nothing


@pytest.fixture(scope="session")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real ``mlflow server --app-name basic-auth`` for the test session (default
    permission READ), with the users ``alice`` and ``reader``; PostgreSQL behind it where it is
    installed (CI installs it), else sqlite. ``server.database``: the PostgreSQL URI or None."""
    bin_dir = postgres_bin()
    postgres = Postgres(bin_dir) if bin_dir is not None else None
    server = None
    try:
        database = postgres.start() if postgres is not None else None
        server = MlflowServer(tmp_path_factory.mktemp("team-server"), auth=True,
                              backend_store_uri=database and Postgres.sqlalchemy_uri(database))
        server.database = database
        server.start()
        server.add_user(TEAM_USER, TEAM_PASSWORD)
        server.add_user(READER, READER_PASSWORD)
        yield server
    finally:
        if server is not None:
            server.stop()
        if postgres is not None:
            postgres.stop()


def team_login(server: MlflowServer, experiment: str, user: str = TEAM_USER,
               password: str = TEAM_PASSWORD, **env: str):
    """Log in to ``server`` as ``user`` and log into ``experiment``, for a block."""
    return tracking_store(server.url, {"MLFLOW_TRACKING_USERNAME": user,
                                       "MLFLOW_TRACKING_PASSWORD": password,
                                       "MLFLOW_EXPERIMENT_NAME": experiment, **env})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test in its module's xdist group (``RAY_MODULES``: one group); ``gpu``-marked
    tests need CUDA: skipped, with the reason, on machines without it."""
    skip = pytest.mark.skip(reason="needs CUDA (run benchmarks/gpu_check.sh on a GPU machine)")
    for item in items:
        module = item.module.__name__ if item.module is not None else item.nodeid
        item.add_marker(pytest.mark.xdist_group("ray" if module in RAY_MODULES else module))
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip)
