"""The seams: every backend with every feature, end to end through the command, on a bundled
table. Backends: one local lane, two local lanes (``device: [cpu, cpu]``), Ray workers.
Features, three searches a backend: cv + ensemble (members refit) with Hyperband and start
points; PBT; a time budget. Each search exits 0, leaves no run RUNNING, registers a
champion that serves, and shows each of its features in its record."""

from __future__ import annotations

import json

import mlflow
import pytest
import yaml
from conftest import all_runs, run_cli
from sklearn.datasets import load_breast_cancer

BASE = {"task": "tabular", "data": {"source": "sklearn:breast_cancer"}, "seed": 1,
        "space": {"hidden_size": 16, "num_layers": 1, "batch_size": 64,
                  "learning_rate": {"loguniform": [1.0e-3, 3.0e-2]}}}
BACKENDS = {
    "local": {},
    "two lanes": {"device": ["cpu", "cpu"]},
    "ray": {"backend": "ray", "parallelism": 2, "device": "cpu"},
}
FEATURES = {
    "cv + ensemble, hyperband + start": {
        "cv": 3, "ensemble": 3, "max_evals": 6, "epochs": 4, "pack": 2,
        "pruning": {"rule": "hyperband", "min_epochs": 1, "eta": 2},
        "start": [{}, {"learning_rate": 0.01}]},
    "pbt": {"pruning": {"rule": "pbt", "every": 1}, "epochs": 3, "pack": 2, "max_evals": 4},
    "time budget": {"stop": {"time_budget_s": 5}, "max_evals": None, "epochs": 1},
}


def shows_its_features(feature: str, client, parent, children) -> None:
    tags = parent.data.tags
    if feature.startswith("cv"):
        assert all("fold_2/val_accuracy" in c.data.metrics for c in children
                   if c.info.status == "FINISHED")
        ensemble = [r for r in all_runs(client) if r.data.tags.get("mltune.role") == "ensemble"]
        refits = [r for r in all_runs(client) if r.data.tags.get("mltune.role") == "refit"]
        assert ensemble or "Ensemble:** no trial added" in tags["mlflow.note.content"]
        assert refits  # the ensemble's members, or else the best trial, refit
        first = [c for c in children if c.data.tags["mltune.trial"] in ("1", "2")]
        assert sorted(float(c.data.params["learning_rate"]) for c in first) == [0.003, 0.01]
        pruned = [c for c in children if c.data.tags.get("mltune.pruned") == "true"]
        assert all(c.info.status == "KILLED" for c in pruned)
    elif feature == "pbt":
        assert {c.data.tags.get("mltune.pack") for c in children} != {None}
        copied = [c for c in children if "mltune.pbt.parent" in c.data.tags]
        assert copied and all(any(k.startswith("hp/") for k in c.data.metrics) for c in copied)
    else:
        assert tags["mltune.stop_reason"] == "time budget of 5 s spent"


@pytest.mark.slow
@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_with_every_feature(backend, feature, tmp_path, client, capsys, request):
    if backend == "ray":
        request.getfixturevalue("local_ray")
    name = f"matrix-{abs(hash((backend, feature))) % 10**6}"
    spec = {**BASE, **BACKENDS[backend], **FEATURES[feature], "registered_model": name}
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(spec))
    code, out, err = run_cli(["tune", "--config", str(config)], capsys)
    assert code == 0, err[-2000:]
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
    parent = next(r for r in all_runs(client) if r.data.tags.get("mltune.role") == "search")
    assert parent.info.status == "FINISHED"
    children = [r for r in all_runs(client) if r.data.tags.get("mltune.role") == "trial"]
    if spec["max_evals"] is not None:
        assert len(children) == spec["max_evals"]
        if backend != "local":  # both lanes (workers) trained
            assert len(json.loads(parent.data.tags["mltune.devices"])) == 2
    champion = client.get_model_version_by_alias(name, "champion")
    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(4)
    served = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(frame)
    assert len(served) == 4 and str(champion.version) == "1"
    shows_its_features(feature, client, parent, children)
