"""The champion answers over HTTP, as the README shows, and refuses what it cannot read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
from serving import invoke, send_mixed, served
from sklearn.datasets import load_digits

import mltune


@pytest.mark.slow
def test_mlflow_models_serve_answers_raw_digit_rows(tracking_uri):
    mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 3, "space.learning_rate": 3e-3,
                                        "space.optimizer": "adam"}))
    digits = load_digits()
    rows = digits.data[:8].astype(int).tolist()
    def row(values: str) -> str:  # raw JSON text: 1e309 is what a client sends for inf
        return '{"inputs": [' + json.dumps(rows[0]) + ", [" + values + "]]}"

    zeros = ", ".join(["0"] * 63)
    bad = {
        "infinite pixel": (row(f"{zeros}, 1e309"), "row 1, pixel 63: inf is not a finite"),
        "NaN pixel": (row(f"NaN, {zeros}"), "row 1, pixel 0: nan is not a finite number"),
        "text in a pixel": (row(f'"dark", {zeros}'), "row 1: pixel 'dark' is not a number"),
        "negative pixel": (row(f"-40, {zeros}"), "pixels from 0 to 16; it takes 0 to 48"),
        "another scale": (row(", ".join(["255"] * 64)), "row 1, pixel 0: 255 is outside"),
        "a short row": (row("1, 2, 3"), "inhomogeneous shape"),  # MLflow's own parser's
        "short rows": ('{"inputs": [[1, 2, 3], [4, 5, 6]]}', "rows of 64 pixels, got an array "
                                                             "of shape (2, 3)"),
        "empty": ('{"inputs": []}', "no images"),
    }
    with served("models:/mltune-image@champion", tracking_uri) as url:
        answer = invoke(url, {"inputs": rows})
        split = invoke(url, {"dataframe_split": {"data": rows}})
        labels = [p["label"] for p in answer["predictions"]]
        good = {"rows": (json.dumps({"inputs": rows}),
                         lambda got: [p["label"] for p in got] == labels)}
        sent = send_mixed(url, good, bad, requests=150, seed=3)
    assert sum(sent.values()) == 150
    predictions = answer["predictions"]
    assert len(predictions) == 8
    assert {p["label"] for p in predictions} <= set(range(10))
    assert all(abs(sum(p[f"proba_{d}"] for d in range(10)) - 1) < 1e-4 for p in predictions)
    assert [p["label"] for p in split["predictions"]] == [p["label"] for p in predictions]


# A fresh process in which no installed mltune can be imported: the model's own code must do.
LOAD_WITHOUT_MLTUNE = textwrap.dedent("""
    import importlib.util, json, sys
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f)]
    sys.path = [p for p in sys.path if p not in ("", ".")]
    assert importlib.util.find_spec("mltune") is None, "mltune is installed here"
    import mlflow.pyfunc
    model = mlflow.pyfunc.load_model(sys.argv[1])
    import mltune
    rows = json.loads(sys.argv[2])
    print(json.dumps({"labels": model.predict(rows)["label"].tolist(),
                      "mltune": mltune.__file__}))
""")


def test_a_model_carries_mltune_zipped_and_loads_where_mltune_is_not_installed(tracking_uri,
                                                                                tmp_path):
    result = mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 1}))
    uri = result.best.model_uri
    local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model"))
    code = sorted(p.relative_to(local).as_posix() for p in (Path(local) / "code").rglob("*"))
    assert code == ["code/mltune", "code/mltune.zip", "code/mltune/__init__.py"]
    rows = load_digits().data[:5].tolist()
    here = mlflow.pyfunc.load_model(uri).predict(rows)["label"].tolist()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_RUN_ID")}
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_MLTUNE, local, json.dumps(rows)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["labels"] == here
    assert answer["mltune"].startswith(str(Path(local) / "code" / "mltune.zip"))
