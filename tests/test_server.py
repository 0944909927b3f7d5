"""mltune against a team's tracking server: a real ``mlflow server`` with basic-auth and proxied
artifacts (the session's), then one that goes away mid-search, then PostgreSQL behind it.

What a user sees: the whole path (search, registration, gate, served model) works unchanged;
wrong credentials, no permission and an unreachable server cost one line and seconds; no
secret reaches the server; an outage stops the search with the command that resumes it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import (
    READER,
    READER_PASSWORD,
    TEAM_PASSWORD,
    all_runs,
    children_of,
    env_for_subprocess,
    team_login,
    tracking_store,
)
from mlflow.tracking import MlflowClient
from servers import MlflowServer, free_port, postgres_bin
from test_cli import run_cli
from test_tabular import churn_table

import mltune
from mltune.core.errors import SpecError

SECRET = f"tok-{uuid.uuid4().hex}"  # a secret-looking value the spec refers to as ${VAR}
EXPERIMENT = f"team-churn-{uuid.uuid4().hex[:8]}"
MODEL = f"team-churn-{uuid.uuid4().hex[:8]}"
TINY = ["--max-evals", "1", "--epochs", "1"]


@pytest.fixture(scope="module")
def team_search(team_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory):
    """A search as a team member runs it: logged in as alice, into her own experiment, on a
    CSV whose folder comes from the environment (and looks like a token)."""
    folder = tmp_path_factory.mktemp("data") / SECRET
    folder.mkdir()
    churn_table().to_csv(folder / "churn.csv", index=False)
    config = folder.parent / "team.yaml"
    config.write_text(yaml.safe_dump({
        "name": "team-churn", "task": "tabular", "max_evals": 1, "epochs": 1, "seed": 0,
        "registered_model": MODEL,
        "data": {"source": "${MLTUNE_DATA_DIR}/churn.csv", "target": "churned"}}))
    with team_login(team_server, EXPERIMENT, MLTUNE_DATA_DIR=str(folder)):
        return mltune.tune(mltune.load_spec(config))


@pytest.mark.slow
def test_whole_path_through_an_authenticated_server(team_server, team_search, tmp_path):
    from serving import invoke, served

    result = team_search
    with team_login(team_server, EXPERIMENT):
        client = MlflowClient()
        parent = client.get_run(result.parent_run_id)
        children = children_of(client, result.parent_run_id)
        version = client.get_model_version_by_alias(MODEL, "champion")
        rows = churn_table(rows=3, seed=1).drop(columns="churned")
        experiment = client.get_experiment(parent.info.experiment_id)
        with served(f"models:/{MODEL}@champion", team_server.url) as url:
            answer = invoke(url, {"dataframe_split": rows.to_dict(orient="split")})
    assert experiment.name == EXPERIMENT
    assert parent.info.status == "FINISHED"
    assert [c.info.status for c in children] == ["FINISHED"]
    assert all(c.data.tags["mltune.model_uri"].startswith("models:/") for c in children)
    assert result.registered_version == version.version == "1"
    assert result.aliases == ["challenger", "champion"]
    assert version.run_id == result.best.run_id
    assert result.decision is not None and result.decision.moved
    assert {p["label"] for p in answer["predictions"]} <= {"yes", "no"}
    assert len(answer["predictions"]) == 3


def test_environment_references_are_expanded_for_use_and_logged_as_written(monkeypatch,
                                                                           tmp_path):
    (tmp_path / "tok-1234").mkdir()
    churn_table(rows=40).to_csv(tmp_path / "tok-1234" / "t.csv", index=False)
    monkeypatch.setenv("MLTUNE_ROOT", str(tmp_path / "tok-1234"))
    spec = mltune.load_spec(None, {"task": "tabular", "data.source": "${MLTUNE_ROOT}/t.csv",
                                   "data.target": "churned"})
    assert spec.data.source == str(tmp_path / "tok-1234" / "t.csv")  # what the task reads
    assert spec.to_dict()["data"]["source"] == "${MLTUNE_ROOT}/t.csv"  # what MLflow gets
    assert spec.data.shown(spec.data.source) == "${MLTUNE_ROOT}/t.csv"
    assert "tok-1234" not in yaml.safe_dump(spec.to_dict())
    assert mltune.load_spec(None, spec.to_dict()) == spec  # spec.yaml reads back (resume)

    monkeypatch.delenv("MLTUNE_ROOT")
    with pytest.raises(SpecError) as missing:
        mltune.load_spec(None, {"task": "tabular", "data.source": "${MLTUNE_ROOT}/t.csv"})
    assert str(missing.value) == ("data.source: environment variable MLTUNE_ROOT is not set "
                                  "(referenced as ${MLTUNE_ROOT} in '${MLTUNE_ROOT}/t.csv')")
    with pytest.raises(SpecError, match=r"^registered_model: '\$\{TEAM\}-m': environment "
                       r"references \(\$\{VAR\}\) are expanded only in data: values"):
        mltune.load_spec(None, {"registered_model": "${TEAM}-m"})


def _files_holding(root: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            found += [f"{path.relative_to(root)} holds {s!r}" for s in secrets
                      if s.encode() in content]
    return found


@pytest.mark.slow
def test_no_secret_reaches_the_server(team_server, team_search, tmp_path):
    secrets = [SECRET, TEAM_PASSWORD]
    with team_login(team_server, EXPERIMENT):
        client = MlflowClient()
        experiment = client.get_experiment_by_name(EXPERIMENT)
        runs = all_runs(client)
        ours = [r for r in runs if r.info.experiment_id == experiment.experiment_id]
        for run in ours:  # every artifact a user can download
            mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                dst_path=str(tmp_path / run.info.run_id))
        for model in client.search_logged_models([experiment.experiment_id]):
            mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location,
                                                dst_path=str(tmp_path / model.model_id))
        versions = client.search_model_versions(f"name='{MODEL}'")
        parent = client.get_run(team_search.parent_run_id)
    assert len(ours) == 2 and len(versions) == 1
    # the reference is what the search logged ...
    assert parent.data.params["spec.data.source"] == "${MLTUNE_DATA_DIR}/churn.csv"
    assert "${MLTUNE_DATA_DIR}/churn.csv" in (tmp_path / parent.info.run_id /
                                              "spec.yaml").read_text()
    # ... and neither its value nor the password is anywhere: params, tags, names, artifacts
    texts = [experiment.name, *experiment.tags.values()]
    for run in ours:
        texts += [run.info.run_name, *run.data.params.values(), *run.data.tags.values()]
    for version in versions:
        texts += [version.description or "", *version.tags.values()]
    assert not [t for t in texts if any(s in str(t) for s in secrets)]
    assert len(list(tmp_path.rglob("*"))) > 20  # spec, report, models were downloaded
    assert _files_holding(tmp_path, secrets) == []
    assert _files_holding(team_server.root / "artifacts", secrets) == []


@pytest.mark.slow
@pytest.mark.parametrize("case", ["wrong password", "no permission", "unreachable"])
def test_a_refused_or_missing_server_costs_one_line_and_seconds(
        case, team_server, team_search, tmp_path, monkeypatch, capsys):
    uri, user, password = team_server.url, "alice", "not-her-password"
    if case == "no permission":  # reader may read alice's experiment, not write to it
        user, password = READER, READER_PASSWORD
    if case == "unreachable":
        uri = f"http://127.0.0.1:{free_port()}"
    with team_login(team_server, EXPERIMENT):
        before = len(all_runs(MlflowClient(team_server.url)))
    monkeypatch.chdir(tmp_path)
    with tracking_store(uri, {"MLFLOW_TRACKING_USERNAME": user,
                              "MLFLOW_TRACKING_PASSWORD": password,
                              "MLFLOW_EXPERIMENT_NAME": EXPERIMENT}):
        started = time.monotonic()
        code, out, err = run_cli(["tune", *TINY], capsys)
        seconds = time.monotonic() - started
    expected = {
        "wrong password": f"mltune: error: tracking server {uri} refused the credentials of "
                          "user 'alice' (401 Unauthorized); set MLFLOW_TRACKING_USERNAME and "
                          "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)",
        "no permission": f"mltune: error: tracking server {uri}: user 'reader' may not write "
                         "to experiment",
        "unreachable": f"mltune: error: tracking server {uri} cannot be reached "
                       "(ConnectionError); is it running, and is MLFLOW_TRACKING_URI right?",
    }[case]
    assert code == 2
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1, err
    assert password not in err and out == ""
    # seconds, not MLflow's minutes of retries; nothing was logged
    assert seconds < 60
    with team_login(team_server, EXPERIMENT):
        assert len(all_runs(MlflowClient(team_server.url))) == before


@pytest.mark.slow
@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed (no initdb); "
                    "CI installs it: apt-get install postgresql")
def test_the_team_server_keeps_its_runs_in_postgresql(team_server, team_search):
    assert team_server.database is not None
    assert _run_statuses(team_server.database, team_search.parent_run_id) == ["FINISHED"] * 2


OUTAGE = f"team-outage-{uuid.uuid4().hex[:8]}"
OUTAGE_ARGS = ["--max-evals", "3", "--epochs", "1", "--seed", "3",
               "--registered-model", OUTAGE]


@pytest.mark.slow
def test_server_lost_mid_search_then_back_then_resume(team_server, tmp_path, capsys,
                                                      monkeypatch):
    """The team's server crashes mid-search: the search stops with the resume command; the
    server comes back (same port, store, artifacts); the resume completes the search."""
    monkeypatch.chdir(tmp_path)
    with team_login(team_server, OUTAGE):
        client = MlflowClient()
        stopped_after, parent_id, kept, code = _lose_server_mid_search(team_server, tmp_path,
                                                                       client)
        stderr = (tmp_path / "search.err").read_text()
        team_server.start()  # back on the same port, store and artifacts
        resumed, out, err = run_cli(["tune", *OUTAGE_ARGS, "--resume", parent_id], capsys)
        children = children_of(client, parent_id)
        ours = [r for r in all_runs(client) if r.info.experiment_id ==
                children[0].info.experiment_id]
        parent = client.get_run(parent_id)
    assert code == 75, stderr[-3000:]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "mltune: error: the tracking server stopped answering (ConnectionError); finished "
        "trials are kept on it, the trial in flight will run again. Once the server is "
        f"back, resume with: mltune tune {' '.join(OUTAGE_ARGS)} --resume {parent_id}")
    assert stopped_after < 60  # MLflow's (shortened) retries, then one line

    assert resumed == 0, err
    finished = [c for c in children if c.info.status == "FINISHED"]
    statuses = [(c.info.status, c.data.tags.get("mltune.interrupted")) for c in children]
    assert len(finished) == 3, (statuses, out[-1500:])
    assert kept <= {c.info.run_id for c in finished}  # nothing lost
    assert not [r for r in ours if r.info.status == "RUNNING"]
    for child in children:
        if child.info.status != "FINISHED":  # the trial in flight, run again on resume
            assert child.info.status == "KILLED"
            assert child.data.tags["mltune.interrupted"] == "true"
    assert parent.info.status == "FINISHED" and parent.data.tags["mltune.resumed"] == "1"
    assert f"Registered: {OUTAGE} version 1 (aliases: challenger, champion)" in out


def _lose_server_mid_search(server: MlflowServer, tmp_path: Path, client: MlflowClient):
    """Start a search in a subprocess, SIGKILL the server after its first finished trial."""
    env = {**env_for_subprocess(server.url), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
           "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    with open(tmp_path / "search.err", "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "mltune", "tune", *OUTAGE_ARGS],
                                   env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "search.err").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial finished in time"
            experiment = client.get_experiment_by_name(OUTAGE)
            runs = client.search_runs([experiment.experiment_id]) if experiment else []
            kept = {r.info.run_id for r in runs if r.info.status == "FINISHED"
                    and r.data.tags.get("mltune.role") == "trial"}
            if kept:
                break
            time.sleep(0.5)
        parent_id = next(r.info.run_id for r in runs if r.data.tags.get("mltune.role") ==
                         "search")
        server.stop(kill=True)  # the server crashes mid-search
        lost_at = time.monotonic()
        process.wait(timeout=180)
        return time.monotonic() - lost_at, parent_id, kept, process.returncode
    finally:
        if process.poll() is None:
            process.kill()


def _run_statuses(uri: str, parent_id: str) -> list[str]:
    """Straight from PostgreSQL: the statuses of a search's runs (parent and trials)."""
    import psycopg2

    with psycopg2.connect(uri) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_uuid = %s OR run_uuid IN (SELECT "
                       "run_uuid FROM tags WHERE key = 'mlflow.parentRunId' AND value = %s)",
                       (parent_id, parent_id))
        return sorted(row[0] for row in cursor.fetchall())
