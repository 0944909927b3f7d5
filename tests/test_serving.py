"""The champion answers over HTTP, as the README shows, and refuses what it cannot read."""

from __future__ import annotations

import json

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
