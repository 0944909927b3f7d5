"""Real servers for the remote paths: ``mlflow server`` (sqlite or PostgreSQL behind it,
artifacts proxied, optionally basic-auth) and a throwaway PostgreSQL cluster.

Each runs as a subprocess on 127.0.0.1 and a free port, writes its log into its own folder and is
waited for until it answers, so a test starts against a server that is really up.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

ADMIN, ADMIN_PASSWORD = "admin", "admin-password-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (with SO_REUSEADDR, as uvicorn does:
    connections of the server that ended may linger in TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_RUN", "MLFLOW_EXPERIMENT"))}
    # the GenAI job runner: 7 more processes the tests never use
    return {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **extra}


def wait_until(check, what: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer in {timeout:g} s:\n"
                               f"{log.read_text()[-3000:]}")
        time.sleep(0.25)


class MlflowServer:
    """``mlflow server`` with a backend store and ``--artifacts-destination`` (proxied artifacts).

    ``stop()`` then ``start()`` brings the same server back on the same port, store and
    artifacts: what a team sees when its server restarts.
    """

    def __init__(self, root: Path, backend_store_uri: str | None = None,
                 auth: bool = False) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.root / 'mlflow.db'}"
        self.auth = auth
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.root / "server.log"
        self.process: subprocess.Popen | None = None
        self.database: str | None = None  # a PostgreSQL store's URI (libpq form), if any

    def start(self, timeout: float = 180.0) -> MlflowServer:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", "1",
                   "--backend-store-uri", self.backend_store_uri,
                   "--artifacts-destination", str(self.root / "artifacts")]
        extra = {}
        if self.auth:
            config = self.root / "basic_auth.ini"
            config.write_text(
                "[mlflow]\ndefault_permission = READ\n"
                f"database_uri = sqlite:///{self.root / 'auth.db'}\n"
                f"admin_username = {ADMIN}\n"
                # checking a password costs ~0.5 s of PBKDF2 on a busy core: without the
                # cache, each of the ~60 files of a logged model pays it
                "auth_cache_ttl_seconds = 300\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
            command += ["--app-name", "basic-auth"]
            extra = {"MLFLOW_AUTH_CONFIG_PATH": str(config),
                     "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
                     "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-for-tests"}
        with open(self.log, "a") as log:
            # its own process group: `mlflow server` runs uvicorn as a child process
            self.process = subprocess.Popen(command, env=_server_env(extra), stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.root,
                                            start_new_session=True)
        wait_until(self._healthy, f"mlflow server on {self.url}", self.process, self.log,
                   timeout)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self, kill: bool = False) -> None:
        """End the server and its workers: SIGKILL (a crash) or SIGTERM (a clean stop)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 20  # uvicorn may outlive `mlflow server` by a moment
        while not _port_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def add_user(self, username: str, password: str) -> None:
        """A user (basic-auth servers): may create experiments, reads others' (READ default)."""
        body = json.dumps({"username": username, "password": password}).encode()
        request = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/users/create", data=body, method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": "Basic " + b64encode(
                         f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (Debian keeps them off the PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    """A throwaway PostgreSQL cluster in a temporary folder, on 127.0.0.1 and a free port.

    PostgreSQL refuses to run as root; as root (CI) the cluster belongs to the ``postgres``
    user that Debian's package creates.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mltune-pg-"))
        self.data = self.root / "data"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self, database: str = "mlflow") -> str:
        """initdb, start, create ``database``; return its URI (libpq's form; SQLAlchemy's is
        ``sqlalchemy_uri``, which names the driver: SQLAlchemy 2.1 defaults to psycopg 3)."""
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -h 127.0.0.1 -c fsync=off", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  database)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @staticmethod
    def sqlalchemy_uri(uri: str) -> str:
        return uri.replace("postgresql://", "postgresql+psycopg2://", 1)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
