"""Records outlive code: a store written by mltune 0.1.0 as it was before the package was reshaped
(``tests/fixtures/legacy``: a tabular and an image search, two trials each, best models
registered as champions) must keep working with the code as it is now.

The fixture holds absolute artifact paths (MLflow stores them so); the copy in ``tmp_path`` gets
them rewritten to where it lies.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from conftest import children_of, run_cli
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer, load_digits

import mltune

FIXTURE = Path(__file__).parent / "fixtures" / "legacy"
WRITTEN_AT = "/tmp/fx/legacy"  # where make_fixture.py wrote the store


def _relocate(database: Path, old: str, new: str) -> None:
    """Every text value that names ``old`` (artifact roots, model locations) names ``new``."""
    with sqlite3.connect(database) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for column in db.execute(f"pragma table_info('{table}')").fetchall():
                name, kind = column[1], (column[2] or "").upper()
                if "CHAR" in kind or "TEXT" in kind:
                    db.execute(f'update "{table}" set "{name}" = replace("{name}", ?, ?) '
                               f'where "{name}" like ?', (old, new, f"%{old}%"))


@pytest.fixture()
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    store = tmp_path / "legacy"
    shutil.copytree(FIXTURE, store)
    _relocate(store / "mlflow.db", WRITTEN_AT, str(store))
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "legacy")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(store)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield MlflowClient(uri, uri)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _search(client: MlflowClient, name: str):
    runs = client.search_runs([client.get_experiment_by_name("legacy").experiment_id],
                              f"tags.`mltune.role` = 'search' and attributes.run_name = '{name}'")
    assert len(runs) == 1
    return runs[0]


def test_legacy_champions_load_and_answer(legacy: MlflowClient) -> None:
    """Models pickled with ``mltune.pyfunc.ServedModel`` by the old code load with the new one
    (in this process: the network is rebuilt by today's tasks) and answer raw input."""
    tabular = mlflow.pyfunc.load_model("models:/legacy-tabular@champion")
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(20)
    answer = tabular.predict(rows)
    assert set(answer["label"]) <= {"malignant", "benign"}
    probabilities = answer[["proba_benign", "proba_malignant"]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)

    image = mlflow.pyfunc.load_model("models:/legacy-image@champion")
    digits = load_digits()
    answer = image.predict(digits.images[:10].astype(np.float64))
    assert len(answer) == 10 and set(answer["label"]) <= set(range(10))


def test_with_pickle_off_a_legacy_champion_fails_with_mlflow_s_message(
        legacy: MlflowClient, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A server hardened with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` refuses the old
    cloudpickled models, in MLflow's words (docs/operations.md says how to re-register them),
    from Python and from ``mltune promote``."""
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(MlflowException, match="Deserializing model using pickle is disallowed"):
        mlflow.pyfunc.load_model("models:/legacy-tabular@champion")
    code, out, err = run_cli(["promote", "--model", "legacy-tabular", "--version", "1",
                              "--dry-run"], capsys)
    assert code == 1 and "Traceback" not in out + err
    assert err.strip().startswith("mltune: error: MLflow: Deserializing model using pickle is "
                                  "disallowed, but this model is saved in cloudpickle format.")


def test_re_registered_as_the_docs_say_the_champion_serves_with_pickle_off(
        legacy: MlflowClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    """docs/operations.md, "Models without pickle": the search's spec run again by today's
    mltune where pickle is allowed, the new version promoted by hand; then the champion loads
    with the switch off."""
    version = legacy.get_model_version_by_alias("legacy-tabular", "champion")
    spec_file = Path(mlflow.artifacts.download_artifacts(
        f"runs:/{version.tags['mltune.parent_run_id']}/spec.yaml", dst_path=str(tmp_path)))
    code, out, err = run_cli(["tune", "--config", str(spec_file)], capsys)
    assert code == 0, err
    new = legacy.get_model_version_by_alias("legacy-tabular", "challenger").version
    assert str(new) == "2"
    code, out, err = run_cli(["promote", "--model", "legacy-tabular", "--version", str(new),
                              "--force"], capsys)
    assert code == 0, err
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    champion = mlflow.pyfunc.load_model("models:/legacy-tabular@champion")
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(5)
    assert set(champion.predict(rows)["label"]) <= {"malignant", "benign"}


def test_gate_compares_a_new_version_with_the_legacy_champion(legacy: MlflowClient) -> None:
    """A new search registers into the legacy model: the gate scores the old champion on the
    new search's holdout, and the decision names both."""
    spec = mltune.load_spec(None, {"task": "tabular", "name": "new-tabular", "max_evals": 2,
                                   "epochs": 2, "registered_model": "legacy-tabular",
                                   "space": {"hidden_size": 16, "num_layers": 1}})
    result = mltune.tune(spec)
    assert str(result.registered_version) == "2"
    decision = result.decision
    assert decision is not None and str(decision.champion) == "1"
    assert decision.champion_score is not None and 0.0 <= decision.champion_score <= 1.0
    version = legacy.get_model_version("legacy-tabular", "2")
    assert version.tags["mltune.compared_with"] == "1"
    assert float(version.tags["mltune.champion_holdout_score"]) == pytest.approx(
        decision.champion_score, abs=1e-5)
    champion = legacy.get_model_version_by_alias("legacy-tabular", "champion").version
    assert str(champion) == ("2" if decision.moved else "1")


def test_resume_continues_a_legacy_search(legacy: MlflowClient, tmp_path: Path) -> None:
    """``--resume`` on a search the old code logged: its two trials are kept, the third runs."""
    parent = _search(legacy, "legacy-tabular")
    text = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/spec.yaml")
    raw = yaml.safe_load(text)  # every rule's pruning options, as the old mltune wrote them
    raw["max_evals"] = 3
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    result = mltune.tune(mltune.load_spec(spec_file), resume=parent.info.run_id)
    trials = children_of(legacy, parent.info.run_id)
    assert [int(t.data.tags["mltune.trial"]) for t in trials] == [1, 2, 3]
    assert all(t.info.status == "FINISHED" for t in trials)
    assert len(result.trials) == 3
    assert legacy.get_run(parent.info.run_id).info.status == "FINISHED"
