"""Models that load without pickle: what a team that sets ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``
to false sees. Every model mltune logs (each task's, an ensemble, a refit, a user's network) is
a model from code whose files are JSON, safetensors and skops; a fresh process in another
folder, with pickle off and every unpickler of the process made to fail, loads each champion
and answers raw input as the network did before it was saved; ``mlflow models serve`` answers;
a preprocessor holding a type off mltune's list is refused; the trials' models are LoggedModels
a user queries by metric and dataset.

One store for the module: models logged directly from networks in memory (so "before it was
saved" is known exactly), and two real searches (an ensemble, a refit).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import env_for_subprocess, run_cli, tracking_store
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer
from test_tasks_contract import SPECS
from test_user_model import NETS

import mltune
from mltune.models.ensemble import Averaged
from mltune.models.network import load
from mltune.spec.build import build_spec
from mltune.spec.space import first_point
from mltune.tasks import task_for
from mltune.tracking.model import log_ensemble_model, log_model

PICKLE_OFF = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
ENSEMBLE_SEARCH = {"task": "tabular", "max_evals": 6, "epochs": 2, "seed": 1, "pack": 1,
                   "pruning": {"rule": "none"}, "metric": "val_loss", "ensemble": 3,
                   "registered_model": "searched-ensemble"}  # seed 1: two members chosen
REFIT_SEARCH = {"task": "tabular", "max_evals": 2, "epochs": 1, "seed": 0, "pack": 1,
                "refit": True, "registered_model": "searched-refit",
                "space": {"hidden_size": 16, "num_layers": 1}}


@dataclass
class Store:
    uri: str
    folder: Path
    client: MlflowClient
    inputs: dict[str, Any] = field(default_factory=dict)  # champion name -> raw input
    expected: dict[str, pd.DataFrame] = field(default_factory=dict)  # before it was saved
    model_uris: list[str] = field(default_factory=list)  # every model logged
    ensemble: Any = None  # the searches' results
    refit: Any = None


def _raw_rows() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame.drop(columns="target").head(6)


def _log_direct(store: Store, case: str, raw: dict[str, Any], members: int = 1) -> None:
    """A network (or ``members`` averaged) of ``raw``'s task built in memory, its answer to
    the task's raw input example noted, then logged and registered as ``case``@champion."""
    spec = build_spec({**raw, "epochs": 1})
    task = task_for(spec)
    if task.network is not None:
        task = task.with_network(load(task.network), spec.space)
    data = task.load(spec.data, seed=0)
    params = task.with_defaults(first_point(spec.space))
    networks = []
    for seed in range(members):
        torch.manual_seed(seed)
        networks.append(task.build_model(params, data.meta).eval())
    weights = [1 / members] * members
    served = networks[0] if members == 1 else Averaged(
        networks, weights, task.outputs_are_logits(data.meta)).eval()
    example = task.input_example(data)
    store.inputs[case] = example
    store.expected[case] = task.predict(served, {**data.meta, **data.artifacts}, example)
    experiment = store.client.create_experiment(f"direct-{case}")
    run = store.client.create_run(experiment).info.run_id
    if members == 1:
        info = log_model(run, experiment, task, networks[0], params, data, name=case)
    else:
        info = log_ensemble_model(run, experiment, task, networks, [params] * members,
                                  weights, task.outputs_are_logits(data.meta), data, name=case)
    store.client.set_terminated(run)
    version = mlflow.register_model(info.model_uri, case)
    store.client.set_registered_model_alias(case, "champion", version.version)
    store.model_uris.append(info.model_uri)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("pickle-free")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with tracking_store(uri), pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        made = Store(uri, folder, MlflowClient(uri, uri))
        for name in sorted(SPECS):  # image, tabular, text, timeseries
            _log_direct(made, name, SPECS[name](folder))
        _log_direct(made, "ensemble", SPECS["tabular"](folder), members=2)
        (folder / "nets").mkdir()
        (folder / "nets" / "tiny.py").write_text(NETS)
        _log_direct(made, "own-network", {"task": "tabular", "model": "nets/tiny.py:table",
                                          "space": {"width": 6}})
        shutil.rmtree(folder / "nets")  # the user's repository is gone
        patch.setenv("MLFLOW_EXPERIMENT_NAME", "ensemble-search")
        made.ensemble = mltune.tune(mltune.load_spec(None, ENSEMBLE_SEARCH))
        patch.setenv("MLFLOW_EXPERIMENT_NAME", "refit-search")
        made.refit = mltune.tune(mltune.load_spec(None, REFIT_SEARCH))
        for result in (made.ensemble, made.refit):
            made.model_uris += [t.model_uri for t in result.trials if t.model_uri]
        made.model_uris += [made.ensemble.ensemble.model_uri, made.refit.refit.model_uri]
        yield made


# -- a fresh process, another folder, pickle off ------------------------------------------------

LOAD = """
import json, pickle, sys
from pathlib import Path

import cloudpickle, joblib, mlflow, numpy as np, pandas as pd, torch


def refused(*args, **kwargs):
    raise AssertionError("a pickle was read")


for owner, name in [(pickle, "load"), (pickle, "loads"), (cloudpickle, "load"),
                    (cloudpickle, "loads"), (torch, "load"), (joblib, "load")]:
    setattr(owner, name, refused)
out = Path(sys.argv[2])
for case, uri in json.loads(Path(sys.argv[1]).read_text()).items():
    model = mlflow.pyfunc.load_model(uri)
    source = out / f"{case}.in.parquet"
    raw = pd.read_parquet(source) if source.exists() else np.load(out / f"{case}.in.npy")
    model.predict(raw).to_parquet(out / f"{case}.out.parquet")
print("loaded", len(list(out.glob("*.out.parquet"))))
"""


def _answers_elsewhere(store: Store, uris: dict[str, str], raws: dict[str, Any]
                       ) -> dict[str, pd.DataFrame]:
    """Each model's answer to its raw input, from one fresh process in another folder with
    pickle off (and every unpickler made to raise)."""
    folder = store.folder / "elsewhere"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for case, raw in raws.items():
        if isinstance(raw, pd.DataFrame):
            raw.to_parquet(folder / f"{case}.in.parquet")
        else:
            np.save(folder / f"{case}.in.npy", np.asarray(raw), allow_pickle=False)
    (folder / "models.json").write_text(json.dumps(uris))
    done = subprocess.run([sys.executable, "-c", LOAD, "models.json", str(folder)], cwd=folder,
                          capture_output=True, text=True, timeout=300,
                          env={**env_for_subprocess(store.uri), **PICKLE_OFF})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["loaded", str(len(uris))]
    return {case: pd.read_parquet(folder / f"{case}.out.parquet") for case in uris}


def test_every_kind_of_champion_answers_as_before_it_was_saved_with_pickle_off(store):
    """Each task's model, an ensemble and a user's network whose file is gone: the same labels
    and numbers as the network in memory gave, from a process where nothing can unpickle; the
    searches' ensemble and refit answer there as they do here."""
    searched = {"searched-ensemble": store.ensemble.ensemble.model_uri,
                "searched-refit": store.refit.refit.model_uri}
    assert all(searched.values())
    uris = {case: f"models:/{case}@champion" for case in store.expected} | searched
    raws = {**store.inputs, **{case: _raw_rows() for case in searched}}
    answers = _answers_elsewhere(store, uris, raws)
    for case, expected in store.expected.items():
        pd.testing.assert_frame_equal(answers[case], expected, check_dtype=False,
                                      rtol=1e-6, atol=1e-7, obj=case)
    for case, uri in searched.items():
        here = mlflow.pyfunc.load_model(uri).predict(_raw_rows())
        pd.testing.assert_frame_equal(answers[case], here, rtol=1e-6, atol=1e-7, obj=case)
        assert set(here["label"]) <= {"malignant", "benign"}
    champion = store.client.get_model_version_by_alias("searched-ensemble", "champion")
    assert champion.source == store.ensemble.ensemble.model_uri  # the ensemble is the champion


@pytest.mark.slow
def test_mlflow_models_serve_answers_an_ensemble_and_a_refit_with_pickle_off(store):
    from serving import invoke, served  # started with pickle off

    rows = _raw_rows()
    for uri in (store.ensemble.ensemble.model_uri, store.refit.refit.model_uri):
        with served(uri, store.uri) as url:
            answer = invoke(url, {"dataframe_split": rows.to_dict(orient="split")})
        assert [p["label"] for p in answer["predictions"]] == list(
            mlflow.pyfunc.load_model(uri).predict(rows)["label"])


def test_the_gate_loads_both_versions_with_pickle_off(store, monkeypatch, capsys):
    """``mltune promote`` in a process with the switch off: the challenger (a trial's single
    network) and the champion (the ensemble) both load and are scored on the holdout."""
    client, name = store.client, "searched-ensemble"
    champion = client.get_model_version_by_alias(name, "champion")
    trial = min(store.ensemble.trials, key=lambda t: t.number)
    version = mlflow.register_model(trial.model_uri, name).version
    for key, value in champion.tags.items():  # its search, task and metric: comparable
        client.set_model_version_tag(name, version, key, value)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    capsys.readouterr()
    code, out, err = run_cli(["promote", "--model", name, "--version", str(version),
                              "--dry-run"], capsys)
    assert code == 0, err
    assert f"(v{version}) vs " in out and f"(v{champion.version})" in out


# -- no file of a model is a pickle --------------------------------------------------------------

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin")


def _starts_like_a_pickle(head: bytes) -> bool:
    return head[:1] == b"\x80"  # PROTO: every pickle of protocol 2 or later starts so


def test_no_file_of_any_model_is_a_pickle(store):
    assert len(store.model_uris) >= 6 + 6 + 2 + 2  # direct, trials, ensemble and refit
    for uri in store.model_uris:
        local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(
            store.folder / "downloaded" / uri.rsplit("/", 1)[-1])))
        for path in local.rglob("*"):
            if not path.is_file():
                continue
            assert not path.name.endswith(PICKLE_SUFFIXES), (uri, path)
            with open(path, "rb") as file:
                assert not _starts_like_a_pickle(file.read(2)), (uri, path)
            if zipfile.is_zipfile(path):  # mltune.zip, skops files
                with zipfile.ZipFile(path) as archive:
                    for member in archive.namelist():
                        assert not member.endswith(PICKLE_SUFFIXES), (uri, path, member)
                        with archive.open(member) as opened:
                            assert not _starts_like_a_pickle(opened.read(2)), (path, member)
        flavor = mlflow.models.Model.load(str(local)).flavors["python_function"]
        assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
        assert flavor["model_code_path"].endswith("served_model.py")
        assert "cloudpickle_version" not in flavor and "python_model" not in flavor
        requirements = (local / "requirements.txt").read_text().split()
        assert not [r for r in requirements if r.startswith(("cloudpickle", "joblib"))]
        assert any(r.startswith("safetensors==") for r in requirements)


# -- a tampered preprocessor ---------------------------------------------------------------------

def test_a_preprocessor_holding_a_type_off_the_list_is_refused_in_one_line(store, monkeypatch):
    """Someone with write access swaps the tabular model's preprocessor for one with an extra
    step, of a type skops itself would trust: the model refuses to load, naming the type."""
    import skops.io
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    local = Path(mlflow.artifacts.download_artifacts("models:/tabular@champion",
                                                     dst_path=str(store.folder / "tampered")))
    path = local / "artifacts" / "mltune" / "preprocessor.skops"
    original = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    rows = _raw_rows()
    swapped = make_pipeline(original, PCA(n_components=2)).fit(rows)
    skops.io.dump(swapped, path)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(Exception) as refused:
        mlflow.pyfunc.load_model(str(local))
    message = str(refused.value)
    assert message == ("preprocessor.skops: refused to load: it holds "
                       "sklearn.decomposition._pca.PCA, off mltune's trusted list for this "
                       "task; the file was not written by mltune (re-log the model from a "
                       "trusted run)")


# -- the trials' models, queried as MLflow 3 LoggedModels ----------------------------------------

def test_search_logged_models_finds_the_trials_above_a_threshold_on_the_validation_split(store):
    client, result = store.client, store.ensemble
    parent = client.get_run(result.parent_run_id)
    experiment = parent.info.experiment_id
    fingerprint = parent.data.tags["mltune.data_fingerprint"]
    trials = [t for t in result.trials if t.status == "FINISHED"]
    accuracy = {}  # each finished trial's val_accuracy at the epoch its model holds
    for trial in trials:
        run = client.get_run(trial.run_id)
        epoch = int(run.data.tags["mltune.best_epoch"])
        history = client.get_metric_history(trial.run_id, "val_accuracy")
        accuracy[run.data.tags["mltune.model_uri"]] = next(
            m.value for m in history if m.step == epoch)
    threshold = float(np.median(list(accuracy.values())))
    expected = {uri for uri, value in accuracy.items() if value > threshold}
    assert 0 < len(expected) < len(trials)

    models = mlflow.search_logged_models(
        experiment_ids=[experiment], filter_string=f"metrics.val_accuracy > {threshold}",
        datasets=[{"dataset_name": "breast_cancer-validation", "dataset_digest": fingerprint}],
        output_format="list")
    assert {f"models:/{m.model_id}" for m in models} == expected
    for model in models:
        assert model.model_type == "mltune-tabular"
        linked = {m.key: m for m in model.metrics}["val_accuracy"]
        assert linked.value > threshold
        assert (linked.dataset_name, linked.dataset_digest) == ("breast_cancer-validation",
                                                               fingerprint)
    other = mlflow.search_logged_models(
        experiment_ids=[experiment], filter_string=f"metrics.val_accuracy > {threshold}",
        datasets=[{"dataset_name": "breast_cancer-validation", "dataset_digest": "another"}],
        output_format="list")
    assert other == []  # another digest: other data, no model
