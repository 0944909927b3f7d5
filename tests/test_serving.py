"""The champion answers over HTTP, as the README shows."""

from __future__ import annotations

import pytest
from serving import invoke, served
from sklearn.datasets import load_digits

import mltune


@pytest.mark.slow
def test_mlflow_models_serve_answers_raw_digit_rows(tracking_uri):
    mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 3, "space.learning_rate": 3e-3,
                                        "space.optimizer": "adam"}))
    digits = load_digits()
    rows = digits.data[:8].astype(int).tolist()
    with served("models:/mltune-image@champion", tracking_uri) as url:
        answer = invoke(url, {"inputs": rows})
        split = invoke(url, {"dataframe_split": {"data": rows}})
    predictions = answer["predictions"]
    assert len(predictions) == 8
    assert {p["label"] for p in predictions} <= set(range(10))
    assert all(abs(sum(p[f"proba_{d}"] for d in range(10)) - 1) < 1e-4 for p in predictions)
    assert [p["label"] for p in split["predictions"]] == [p["label"] for p in predictions]
