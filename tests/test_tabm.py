"""``model: tabm`` as a user runs it, against a real sqlite store: folds and refit, the members'
spread on every trial, and a registered model that answers raw columns with labels and
probabilities."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

import mltune

SPACE = {"k": 4, "n_blocks": 1, "d_block": 32}


def test_a_tabm_search_with_folds_and_refit_registers_a_model_that_serves(client):
    result = mltune.tune(mltune.load_spec(None, {
        "task": "tabular", "model": "tabm", "max_evals": 3, "epochs": 2, "seed": 0, "cv": 2,
        "pruning": {"rule": "none"}, "registered_model": "tabm-cancer", "space": SPACE}))
    assert result.spec.refit
    finished = [t for t in result.trials if t.status == "FINISHED"]
    assert len(finished) == 3
    run = client.get_run(finished[0].run_id)
    assert run.data.params["k"] == "4" and run.data.params["n_blocks"] == "1"
    # trained as the paper trains TabM, and the run says so: AdamW, batches of 256
    assert run.data.params["optimizer"] == "adamw" and run.data.params["batch_size"] == "256"
    # the averaged scores under the usual names, the members' spread beside them (fold means)
    for name in ("val_accuracy", "val_accuracy_members_std", "fold_1/val_roc_auc_members_std"):
        assert name in run.data.metrics, name
    assert 0 <= run.data.metrics["val_accuracy_members_std"] < 0.5

    version = client.get_model_version_by_alias("tabm-cancer", "challenger")
    assert version.run_id == result.refit.run_id
    table = load_breast_cancer(as_frame=True)
    rows = table.frame.drop(columns="target")[:40]
    answer = mlflow.pyfunc.load_model("models:/tabm-cancer@challenger").predict(rows)
    assert list(answer.columns) == ["label", "proba_benign", "proba_malignant"]
    assert answer[["proba_benign", "proba_malignant"]].sum(axis=1).to_numpy() == pytest.approx(
        np.ones(40), abs=1e-5)
    truth = table.target_names[table.target[:40]]
    assert (answer["label"].to_numpy() == truth).mean() > 0.8
