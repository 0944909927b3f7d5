"""The tabular task on real tables: built-in searches end to end, a user's CSV / parquet file,
the served model on raw rows, and every bad input a user can give it."""

from __future__ import annotations

import json
import logging
import urllib.error
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, children_of
from sklearn.datasets import load_breast_cancer, load_diabetes

import mltune
from mltune.cli import main
from mltune.core.errors import DataError, SpecError
from mltune.tasks import get_task

TINY = {"task": "tabular", "max_evals": 2, "epochs": 2, "seed": 0}
STEADY = {"space.learning_rate": 1.0e-2, "space.optimizer": "adam", "space.dropout": 0.0,
          "space.batch_size": 32}


def churn_table(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """A small customer table as users have them: text, numbers, booleans, gaps."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "standard", "premium"], rows)
    region = rng.choice(["north", "south", "east", "west"], rows).astype(object)
    region[rng.random(rows) < 0.1] = None
    tenure = rng.integers(1, 72, rows)
    monthly = rng.normal(60, 15, rows).round(2)
    monthly[rng.random(rows) < 0.05] = np.nan
    paperless = rng.random(rows) < 0.5
    score = -0.05 * tenure + 1.5 * (plan == "basic") + 0.5 * paperless + rng.normal(0, .5, rows)
    return pd.DataFrame({
        "plan": plan, "region": region, "tenure": tenure, "monthly": monthly,
        "paperless": paperless, "stars": rng.integers(1, 6, rows),
        "country": "NL", "notes": np.nan,
        "churned": np.where(score > np.median(score), "yes", "no"),
    })


@pytest.fixture()
def churn_csv(tmp_path: Path) -> str:
    path = tmp_path / "churn.csv"
    churn_table().to_csv(path, index=False)
    return str(path)


def search(**overrides) -> mltune.SearchResult:
    return mltune.tune(mltune.load_spec(None, {**TINY, **overrides}))


# --- searches end to end on the built-ins ---------------------------------------------------

def test_classification_search_on_breast_cancer(client):
    result = search(epochs=3, **STEADY)
    assert (result.spec.metric, result.spec.mode) == ("val_accuracy", "max")

    children = children_of(client, result.parent_run_id)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    for child in children:
        assert child.data.params["loss"] in {"cross_entropy", "label_smoothing"}
        assert child.data.params["norm"] in {"none", "batch", "layer"}
        assert child.data.params["num_layers"] in {"1", "2", "3", "4"}
        for metric in ("val_accuracy", "val_f1_macro", "val_roc_auc", "train_loss"):
            history = client.get_metric_history(child.info.run_id, metric)
            assert sorted(m.step for m in history) == [1, 2, 3]
        assert 0.5 <= child.data.metrics["val_roc_auc"] <= 1.0

    best_child = max(children, key=lambda c: c.data.metrics["val_accuracy"])
    champion = client.get_model_version_by_alias("mltune-tabular", "champion")
    assert champion.run_id == best_child.info.run_id

    # the served model takes the raw columns and answers with the data set's own class names
    table = load_breast_cancer(as_frame=True)
    features = table.frame.drop(columns="target")
    truth = np.asarray(table.target_names)[table.target]
    answer = mlflow.pyfunc.load_model("models:/mltune-tabular@champion").predict(features)
    assert list(answer.columns) == ["label", "proba_benign", "proba_malignant"]
    assert set(answer["label"]) <= {"benign", "malignant"}
    np.testing.assert_allclose(answer[["proba_benign", "proba_malignant"]].sum(axis=1), 1.0,
                               rtol=1e-5)
    assert np.mean(answer["label"].to_numpy() == truth) > 0.85


def test_regression_search_on_diabetes(client):
    result = search(epochs=4, **{"data.source": "sklearn:diabetes", **STEADY})
    assert (result.spec.metric, result.spec.mode) == ("val_rmse", "min")

    children = children_of(client, result.parent_run_id)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    for child in children:
        assert child.data.params["loss"] in {"mse", "mae", "huber"}
        for metric in ("val_rmse", "val_mae", "val_r2"):
            assert len(client.get_metric_history(child.info.run_id, metric)) == 4
        # errors are in the target's own units (disease progression, std ~77), not scaled ones
        assert 20 < child.data.metrics["val_rmse"] < 150
    best_child = min(children, key=lambda c: c.data.metrics["val_rmse"])
    assert result.best.run_id == best_child.info.run_id

    frame = load_diabetes(as_frame=True, scaled=False).frame
    model = mlflow.pyfunc.load_model(result.best.model_uri)
    answer = model.predict(frame.drop(columns="target"))
    assert list(answer.columns) == ["prediction"]
    rmse = float(np.sqrt(np.mean((answer["prediction"] - frame["target"]) ** 2)))
    assert rmse < frame["target"].std()  # better than always answering the mean

    # `mltune train` on the same table: the regression defaults, mse loss included
    run_id, metrics = mltune.train_once(result.spec, {})
    assert {"val_rmse", "val_mae", "val_r2"} <= set(metrics)
    assert client.get_run(run_id).data.params["loss"] == "mse"


# --- the user's own file, served from raw columns -------------------------------------------

def test_csv_search_serves_raw_rows_with_an_unseen_category(client, churn_csv, caplog):
    with caplog.at_level(logging.WARNING, logger="mltune"):
        result = search(**{"data.source": churn_csv, "data.target": "churned", **STEADY})
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any("'country'" in m and "constant" in m for m in dropped)
    assert any("'notes'" in m and "all values missing" in m for m in dropped)
    assert "val_roc_auc" in result.best.metrics

    model = mlflow.pyfunc.load_model(result.best.model_uri)
    rows = pd.DataFrame({
        "plan": ["enterprise", "basic", "premium"],   # 'enterprise' never seen in training
        "region": ["north", None, "atlantis"],        # a gap and another unseen value
        "tenure": [12, 3, 70],                        # ints, as in the file
        "monthly": ["70.5", None, 55],                # numbers as text, a gap
        "paperless": [True, False, True],
        "stars": [5, 1, 3],
        "customer_id": ["a", "b", "c"],               # extra columns are ignored
    })                                                # no 'country' / 'notes': dropped ones
    answer = model.predict(rows)
    assert len(answer) == 3
    assert set(answer["label"]) <= {"yes", "no"}
    np.testing.assert_allclose(answer[["proba_no", "proba_yes"]].sum(axis=1), 1.0, rtol=1e-5)

    with pytest.raises(DataError, match=r"missing column\(s\) 'plan', 'stars'") as missing:
        model.predict(rows.drop(columns=["plan", "stars"]))
    assert "\n" not in str(missing.value)
    with pytest.raises(DataError, match="column 'tenure' must hold numbers; got 'twelve'"):
        model.predict(rows.assign(tenure=["twelve", 3, 70]))


@pytest.mark.slow
def test_served_over_http_from_json_rows(client, churn_csv):
    from serving import invoke, send_mixed, served

    result = search(max_evals=1, **{"data.source": churn_csv, "data.target": "churned"})
    rows = {"columns": ["plan", "region", "tenure", "monthly", "paperless", "stars"],
            "data": [["enterprise", None, 12, 70.5, True, 5], ["basic", "south", 3, None, False,
                                                                1]]}
    def split(*data: str) -> str:  # raw JSON text: 1e309 is what a client sends for inf
        return ('{"dataframe_split": {"columns": ' + json.dumps(rows["columns"])
                + ', "data": [' + ", ".join(data) + "]}}")

    good_row = '["basic", "south", 3, 20.0, false, 1]'
    bad = {
        "infinite feature": (split(good_row, '["basic", "north", 12, 1e309, true, 4]'),
                             "input: row 1, column 'monthly': inf is not a finite number"),
        "negative infinity": (split('["basic", "north", -1e309, 10, true, 4]'),
                              "row 0, column 'tenure': -inf is not a finite"),
        "text in a number": (split('["basic", "north", "twelve", 10, true, 4]'),
                             "column 'tenure' must hold numbers; got 'twelve'"),
        "no rows": (split(), "input: the request holds no rows"),
    }
    with served(result.best.model_uri, client.tracking_uri) as url:
        answer = invoke(url, {"dataframe_split": rows})["predictions"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            invoke(url, {"dataframe_split": {"columns": ["plan"], "data": [["basic"]]}})
        labels = [row["label"] for row in answer]
        good = {"gaps imputed": (json.dumps({"dataframe_split": rows}),
                                 lambda got: [row["label"] for row in got] == labels),
                "one row": (split(good_row), lambda got: got[0]["label"] in {"yes", "no"})}
        send_mixed(url, good, bad, requests=120, seed=5)
    assert [row["label"] in {"yes", "no"} for row in answer] == [True, True]
    assert all(abs(row["proba_yes"] + row["proba_no"] - 1) < 1e-5 for row in answer)
    assert refused.value.code == 400
    message = json.loads(refused.value.read())["message"]  # MLflow prefixes the input
    assert message.endswith("Error: input: missing column(s) 'region', 'tenure', 'monthly', "
                            "'paperless', 'stars' that the model needs; expected columns: plan, "
                            "region, tenure, monthly, paperless, stars")


def test_preprocessing_is_fitted_on_the_train_split_only(churn_csv, tmp_path, caplog):
    task = get_task("tabular")
    spec = mltune.load_spec(None, {"task": "tabular", "data.source": churn_csv,
                                   "data.target": "churned"})
    with caplog.at_level(logging.WARNING, logger="mltune"):
        data = task.load(spec.data, seed=0)
    assert data.meta["columns"] == ["plan", "region", "tenure", "monthly", "paperless", "stars"]
    assert set(data.meta["dropped"]) == {"country", "notes"}
    # numeric features come first: standardised with the train split's statistics exactly
    numeric = len(data.meta["numeric"])
    train = data.x_train[:, :numeric].double()
    np.testing.assert_allclose(train.mean(dim=0).numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(train.std(dim=0, unbiased=False).numpy(), 1.0, atol=1e-5)
    assert data.x_val[:, :numeric].double().mean(dim=0).abs().max() > 1e-3

    # the same table as parquet gives the same tensors
    parquet = tmp_path / "churn.parquet"
    pd.read_csv(churn_csv).to_parquet(parquet)
    again = task.load(mltune.load_spec(None, {"task": "tabular", "data.source": str(parquet),
                                              "data.target": "churned"}).data, seed=0)
    assert np.array_equal(again.x_train.numpy(), data.x_train.numpy())
    assert np.array_equal(again.y_val.numpy(), data.y_val.numpy())


# --- the promotion gate: every model judged with its own fitted preprocessing ---------------

def test_gate_scores_the_champion_with_its_own_preprocessing(client):
    tuned = {"max_evals": 1, "data.source": "sklearn:diabetes", "registered_model": "diabetes",
             **STEADY}
    search(seed=0, **tuned)
    second = search(seed=1, **tuned)  # another split: another fitted scaler, other target stats
    v2 = client.get_model_version("diabetes", "2")
    assert v2.tags["mltune.compared_with"] == "1"

    # what the gate reported for the champion is what serving it on v2's raw holdout gives
    data = get_task("tabular").load(second.spec.data, second.spec.seed)
    champion = mlflow.pyfunc.load_model("models:/diabetes/1")
    predicted = champion.predict(data.x_test_raw)["prediction"].to_numpy()
    rmse = float(np.sqrt(np.mean((predicted - data.y_test[:, 0].numpy()) ** 2)))
    assert float(v2.tags["mltune.champion_holdout_score"]) == pytest.approx(rmse, rel=1e-4)


def test_gate_refuses_a_model_of_other_classes():
    task = get_task("tabular")
    data = task.load(mltune.load_spec(None, {"task": "tabular"}).data, seed=0)
    other = {**data.meta, **data.artifacts, "classes": ["no", "yes"]}
    with pytest.raises(DataError, match=r"holdout: the model was trained for classes "
                                        r"\['no', 'yes'\], this data has \['benign', "):
        task.holdout_inputs(data, other)
    same = task.holdout_inputs(data, {**data.meta, **data.artifacts})
    assert np.array_equal(same.numpy(), data.x_test.numpy())


# --- problem type: inferred from the target, overridable ------------------------------------

@pytest.mark.parametrize(("target", "problem", "metric", "mode", "roc_auc"), [
    ("churned", "auto", "val_accuracy", "max", True),   # text, two classes
    ("plan", "auto", "val_accuracy", "max", False),     # text, three classes: no ROC AUC
    ("paperless", "auto", "val_accuracy", "max", True),  # booleans
    ("stars", "auto", "val_accuracy", "max", False),    # 5 whole numbers
    ("monthly", "auto", "val_rmse", "min", False),      # floats
    ("tenure", "auto", "val_rmse", "min", False),       # 71 whole numbers: a quantity
    ("stars", "regression", "val_rmse", "min", False),  # overridden
    ("monthly", "classification", "val_accuracy", "max", False),
])
def test_problem_follows_the_target(churn_csv, target, problem, metric, mode, roc_auc):
    spec = mltune.load_spec(None, {"task": "tabular", "data.source": churn_csv,
                                   "data.target": target, "data.problem": problem})
    assert (spec.metric, spec.mode) == (metric, mode)
    losses = spec.space["loss"]["choice"]
    assert losses == (["mse", "mae", "huber"] if metric == "val_rmse"
                      else ["cross_entropy", "label_smoothing"])
    names = get_task("tabular").metrics(spec.data)
    assert ("val_roc_auc" in names) == roc_auc


def test_a_metric_of_the_other_problem_is_refused(churn_csv):
    with pytest.raises(SpecError, match="metric: 'val_rmse' is not logged by task 'tabular'; "
                                        "available: .*val_accuracy"):
        mltune.load_spec(None, {"task": "tabular", "data.source": churn_csv,
                                "data.target": "churned", "metric": "val_rmse"})


def test_a_loss_of_the_other_problem_fails_the_trial_with_a_clear_line():
    task = get_task("tabular")
    data = task.load(mltune.load_spec(None, {"task": "tabular"}).data, seed=0)
    with pytest.raises(SpecError, match="loss: 'mse' does not suit a classification target; "
                                        "allowed: cross_entropy, label_smoothing"):
        task.make_loss({"loss": "mse"}, data)


# --- bad input: one clear line each ---------------------------------------------------------

def write(tmp_path: Path, name: str, frame: pd.DataFrame) -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(("case", "error", "message"), [
    ("missing target", DataError,
     r"data.target: no column 'churn' in '.*churn.csv'; columns: plan, region, tenure"),
    ("one class", DataError,
     r"data.target: column 'churned' has only one class \('yes'\); classification needs"),
    ("no file", DataError, r"data.source: file '.*nowhere.csv' does not exist"),
    ("not a table", DataError, r"data.source: '.*churn.xlsx' is neither a built-in nor a "
                               r"\.csv / \.parquet file"),
    ("unknown built-in", DataError, r"data.source: 'sklearn:iris' is not a built-in tabular "
                                    r"data set; available: sklearn:breast_cancer"),
    ("bad problem", SpecError, r"data.problem: 'maybe' is not allowed; expected one of: auto, "
                               r"classification, regression"),
    ("no target", SpecError, r"data.target: required for '.*churn.csv'"),
    ("unknown option", SpecError, r"data.features: unknown key for task 'tabular'"),
    ("drop unknown", DataError, r"data.drop: no column 'id' in"),
])
def test_bad_spec_is_one_clear_line(tmp_path, churn_csv, case, error, message):
    overrides = {"task": "tabular", "data.source": churn_csv, "data.target": "churned"}
    overrides.update({
        "missing target": {"data.target": "churn"},
        "one class": {"data.source": write(tmp_path, "one.csv",
                                           churn_table().assign(churned="yes"))},
        "no file": {"data.source": str(tmp_path / "nowhere.csv")},
        "not a table": {"data.source": str(tmp_path / "churn.xlsx")},
        "unknown built-in": {"data.source": "sklearn:iris"},
        "bad problem": {"data.problem": "maybe"},
        "no target": {"data.target": None},
        "unknown option": {"data.features": ["plan"]},
        "drop unknown": {"data.drop": ["id"]},
    }[case])
    with pytest.raises(error, match=message) as caught:
        task = get_task("tabular")
        task.load(mltune.load_spec(None, overrides).data, seed=0)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("frame", "overrides", "message"), [
    (churn_table(), {"data.target": "plan", "data.problem": "regression"},
     r"data.target: column 'plan' holds 'premium'; regression needs numbers"),
    (churn_table().assign(score=3.5), {"data.target": "score"},
     r"data.target: column 'score' is constant \(3.5\); there is nothing to learn"),
    (churn_table(rows=12), {"data.target": "churned"},
     r"data.source: '.*' has 12 rows with a target value; at least 20 are needed"),
    (churn_table()[["churned", "country", "notes"]], {"data.target": "churned"},
     r"has no usable feature column besides the target 'churned' \(dropped: country, notes\)"),
])
def test_bad_table_fails_before_anything_is_logged(tracking_uri, tmp_path, frame, overrides,
                                                   message):
    source = write(tmp_path, "table.csv", frame)
    with pytest.raises(DataError, match=message) as caught:
        search(**{"data.source": source, **overrides})
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "mlflow.db").exists()  # no run opened, none left RUNNING


def test_rows_without_a_target_are_dropped_with_a_warning(tmp_path, caplog):
    frame = churn_table()
    frame.loc[:9, "churned"] = None
    source = write(tmp_path, "gaps.csv", frame)
    spec = mltune.load_spec(None, {"task": "tabular", "data.source": source,
                                   "data.target": "churned"})
    with caplog.at_level(logging.WARNING, logger="mltune"):
        data = get_task("tabular").load(spec.data, seed=0)
    assert "10 rows without a 'churned' value dropped" in caplog.text
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == len(frame) - 10
    assert data.meta["classes"] == ["no", "yes"]


def test_cli_bad_table_exits_2_with_one_line(tracking_uri, churn_csv, tmp_path, capsys):
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump({"task": "tabular", "data": {
        "source": churn_csv, "target": "churn"}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--config", str(config), "--max-evals", "1", "--epochs", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mltune: error: data.target: no column 'churn' in")
    assert "columns: plan, region, tenure" in err and "\n" not in err
    assert not (tmp_path / "mlflow.db").exists()

    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--config", str(config), "--set", "data.target=churned",
              "--set", "data.problem=maybe"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "mltune: error: data.problem: 'maybe' is not allowed; expected one of: auto, "
        "classification, regression")


def test_example_spec_is_valid():
    spec = mltune.load_spec(REPO / "examples" / "tabular.yaml")
    assert (spec.task, spec.data.source, spec.metric, spec.mode) == (
        "tabular", "sklearn:breast_cancer", "val_accuracy", "max")
    diabetes = mltune.load_spec(REPO / "examples" / "tabular.yaml",
                                {"data.source": "sklearn:diabetes", "data.target": "progression"})
    assert (diabetes.metric, diabetes.mode) == ("val_rmse", "min")
