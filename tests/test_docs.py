"""The manual and the README say what mltune does: their commands run, their references are
generated.

Every shell command and Python block of the README's quickstart and of the manual's Getting
started runs here as written, in a fresh folder whose ``./mlflow.db`` is the store (what a
newcomer gets), on tiny budgets: ``--max-evals 2 --epochs 1`` appended to each ``mltune tune``
(click keeps the last value of a flag). Installing (``pip``, ``make``) is what the test
environment already did, so those lines are skipped; servers (``mlflow ui``, ``mlflow models
serve``) start in the background on free ports, replacing the ports the text names, and the
commands after them talk to them; ``<PARENT_RUN_ID>`` is the last search's parent run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SKIPPED = ("pip ", "make ")  # installation: done by `make install-test` before the tests
SERVERS = ("mlflow ui", "mlflow server", "mlflow models serve")
TINY = {"mltune tune": " --max-evals 2 --epochs 1", "mltune train": " --epochs 1"}
PORTS = ("5000", "5001")


def blocks(markdown: str, section: str | None = None) -> list[tuple[str, str]]:
    """The fenced code blocks (language, text) of ``markdown``, or of one ``## section``."""
    if section is not None:
        start = markdown.index(f"\n## {section}\n")
        end = markdown.find("\n## ", start + 1)
        markdown = markdown[start:end if end != -1 else None]
    found = re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", markdown, flags=re.M | re.S)
    return [(lang, text) for lang, text in found]


def commands(script: str) -> list[str]:
    """A bash block as commands: continuation lines joined, a here-document kept whole,
    blank and comment lines left out."""
    out, lines = [], script.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
        if heredoc:
            body = []
            while i < len(lines) and lines[i].strip() != heredoc.group(1):
                body.append(lines[i])
                i += 1
            body.append(lines[i] if i < len(lines) else heredoc.group(1))
            i += 1
            line = "\n".join([line, *body])
        out.append(line)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Session:
    """A newcomer's shell: one folder, the repository's examples, MLflow's default store."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "examples").symlink_to(REPO / "examples")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        self.env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no GenAI job runners
        self.ports = {port: str(free_port()) for port in PORTS}
        self.servers: list[subprocess.Popen] = []
        self.ran: list[str] = []

    def parent_run_id(self) -> str:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{self.folder / 'mlflow.db'}")
        experiments = [e.experiment_id for e in client.search_experiments()]
        (last, *_) = client.search_runs(experiments, "tags.`mltune.role` = 'search'",
                                        order_by=["attributes.start_time DESC"])
        return last.info.run_id

    def prepared(self, command: str) -> str:
        for port, free in self.ports.items():
            command = re.sub(rf"\b{port}\b", free, command)
        if "<PARENT_RUN_ID>" in command:
            command = command.replace("<PARENT_RUN_ID>", self.parent_run_id())
        for prefix, flags in TINY.items():
            if command.startswith(prefix):
                command += flags
        return command

    def shell(self, command: str) -> None:
        if command.startswith(SKIPPED):
            return
        command = self.prepared(command)
        self.ran.append(command)
        if command.startswith(SERVERS):
            self.serve(command)
            return
        done = subprocess.run(["bash", "-e", "-c", command], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        if command.startswith("curl"):
            assert "error_code" not in done.stdout, done.stdout
            assert done.stdout.strip(), f"{command}: no answer"

    def python(self, code: str) -> str:
        script = self.folder / f"block{len(self.ran)}.py"
        script.write_text(code)
        self.ran.append(f"python {script.name}")
        done = subprocess.run([sys.executable, str(script)], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{code}\n{done.stderr[-3000:]}"
        return done.stdout

    def serve(self, command: str) -> None:
        """Start a server and wait until it answers (``/health`` or a model server's
        ``/ping``) on the port the command names."""
        port = re.search(r"(?:--port|-p)\s+(\d+)", command)
        assert port, f"{command}: name the port (-p / --port), so the text says where to go"
        process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.folder,
                                   env=self.env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self.servers.append(process)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, f"{command} exited with {process.returncode}"
            for path in ("/health", "/ping"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}{path}",
                                                timeout=2):
                        return
                except OSError:
                    pass
            time.sleep(0.5)
        raise TimeoutError(f"{command} did not answer")

    def ui_runs(self, port: str) -> list[str]:
        """The names of the runs the UI server on ``port`` shows in the default experiment."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": ["0"]}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            runs = json.load(answer).get("runs", [])
        return [run["info"]["run_name"] for run in runs]

    def run(self, markdown: str, section: str | None = None) -> None:
        for lang, text in blocks(markdown, section):
            if lang in ("bash", "sh"):
                for command in commands(text):
                    self.shell(command)
            elif lang == "python":
                self.python(text)

    def close(self) -> None:
        for process in self.servers:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.servers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture()
def session(tmp_path: Path):
    shell = Session(tmp_path)
    yield shell
    shell.close()


README = (REPO / "README.md").read_text(encoding="utf-8")
GETTING_STARTED = (REPO / "docs" / "getting-started.md").read_text(encoding="utf-8")


def test_the_readme_quickstart_runs_as_written(session):
    session.run(README, "Quickstart")
    assert any(c.startswith("mltune tune --config my-search.yaml") for c in session.ran)
    assert any(c.startswith("mlflow ui") for c in session.ran)
    assert (session.folder / "mlflow.db").is_file()  # MLflow's default store, as the text says
    names = session.ui_runs(session.ports["5000"])  # and `mlflow ui` shows what it holds
    assert "my-first-search" in names and "trial-0001" in names, names


@pytest.mark.slow
def test_getting_started_runs_as_written(session):
    session.run(GETTING_STARTED)
    ran = "\n".join(session.ran)
    for expected in ("mltune tune --config examples/digits.yaml", "mlflow ui",
                     "mlflow models serve", "curl", "mltune check my-spec.yaml",
                     "mltune tune --config my-spec.yaml", "mltune report", "python block"):
        assert expected in ran, ran
    assert (session.folder / "site" / "report.html").is_file()  # mltune report --out site


def test_the_tested_pages_hold_what_the_test_runs():
    """The runner sees the blocks it should: a fence whose language changed would silently
    drop a command from the runs above."""
    readme = [c for lang, text in blocks(README, "Quickstart") if lang == "bash"
              for c in commands(text)]
    assert readme[0].startswith("cat > my-search.yaml <<'SPEC'") and readme[0].endswith("SPEC")
    assert [lang for lang, _ in blocks(README, "Quickstart")] == ["bash", "python"]
    started = [c for lang, text in blocks(GETTING_STARTED) if lang == "bash"
               for c in commands(text)]
    assert sum(c.startswith(("mltune", "mlflow", "curl")) for c in started) == 7, started


def test_generated_reference_covers_every_key_task_and_catalog_name():
    """Nothing the reference lists is written by hand: it is made from the code, and holds
    every spec key (and no internal field), every task's default space and every catalog
    name, in the committed pages (what the repository's web view shows)."""
    from mltune.spec.build import TOP_LEVEL_KEYS
    from mltune.spec.catalogs import SAMPLERS, SCHEDULERS
    from mltune.spec.model import NOT_A_KEY, SearchSpec
    from mltune.spec.tasks import TASKS

    docs = REPO / "docs"
    keys = (docs / "spec.md").read_text()
    for key in TOP_LEVEL_KEYS:
        assert f"| `{key}" in keys, key
    for name, field in SearchSpec.__dataclass_fields__.items():
        if field.metadata == NOT_A_KEY:  # space_given, origin: no spec file sets them
            assert f"`{name}`" not in keys, name
    catalogs = (docs / "reference" / "catalogs.md").read_text()
    for name in [*SAMPLERS.names(), *SCHEDULERS.names(), *TASKS.names()]:
        assert f"`{name}`" in catalogs, name
    for name in TASKS.names():
        page = (docs / "tasks" / f"{name}.md").read_text()
        for key in TASKS.get(name).default_space():
            assert f"  {key}: " in page, (name, key)
    mlproject = (docs / "reference" / "mlproject.md").read_text()
    project = yaml.safe_load((REPO / "MLproject").read_text())
    for entry, point in project["entry_points"].items():
        assert f"## `{entry}`" in mlproject, entry
        for parameter in point.get("parameters") or {}:
            assert f"| `{parameter}` |" in mlproject, (entry, parameter)
    api = (docs / "reference" / "api.md").read_text()
    assert "tune(\n    spec: SearchSpec," in api  # signatures, not just names


def test_the_committed_generated_pages_are_current():
    """The generated sections are committed as Markdown: each is what the code makes now
    (``make docs`` rewrites them; nothing here writes)."""
    done = subprocess.run([sys.executable, "-m", "docs.gen.generate", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "stale: none" in done.stdout


@pytest.mark.slow
def test_the_manual_builds_strictly(tmp_path):
    """``mkdocs build --strict``: a broken link, a missing page or anchor fails; the hook
    only checks the generated sections here (a build must not edit the repository)."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO),
                                            "MLTUNE_DOCS_CHECK": "1",
                                            "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "mlproject" / "index.html").is_file()


def test_the_hand_written_tables_of_names_match_the_code():
    """The prose pages explain each distribution and sampler in a table of their own; the
    names in those tables are the code's, no more, no fewer."""
    from mltune.spec.catalogs import SAMPLERS
    from mltune.spec.space import DISTRIBUTIONS

    spaces = (REPO / "docs" / "search-spaces.md").read_text(encoding="utf-8")
    named = set(re.findall(r"^\| `(\w+)`(?: / `(\w+)`)? \|", spaces, flags=re.M))
    assert {n for pair in named for n in pair if n} == set(DISTRIBUTIONS)
    samplers = (REPO / "docs" / "samplers.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (`[^|]+) \|", samplers, flags=re.M)[1:]  # below the header
    assert {n for row in rows for n in re.findall(r"`([\w-]+)`", row)} == set(SAMPLERS.names())
