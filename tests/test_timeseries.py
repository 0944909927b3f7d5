"""Forecasting a user's series: real searches on a generated seasonal series with noise, real
sqlite stores, the served model as users call it, and every kind of bad input the CLI refuses."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import children_of
from mlflow.tracking import MlflowClient
from PIL import Image

import mltune
from mltune.cli import main
from mltune.tasks import get_task

HORIZON, ROWS, LEVEL, AMPLITUDE = 12, 420, 500.0, 40.0
METRICS = {"train_loss", "val_loss", "val_rmse", "val_mae", "val_smape", "val_mase",
           "val_naive_rmse", "val_skill"}
# a small, quick configuration; the search still chooses window and cell
SPACE = {"window": {"choice": [12, 24]}, "cell": {"choice": ["lstm", "gru"]},
         "hidden_size": 32, "num_layers": 1, "learning_rate": 5.0e-3, "optimizer": "adam",
         "loss": "mse", "dropout": 0.0, "batch_size": 32, "weight_init": "default",
         "activation": "relu", "weight_decay": 1.0e-6}


def seasonal(rows: int = ROWS + HORIZON, seed: int = 0) -> pd.DataFrame:
    """Daily sales around 500 with a 12-day season, a slow trend and noise; a noisy
    temperature covariate."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    sales = LEVEL + AMPLITUDE * np.sin(2 * np.pi * t / 12) + 0.05 * t + rng.normal(0, 4, rows)
    return pd.DataFrame({
        "date": pd.date_range("2020-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
        "sales": sales.round(2),
        "temperature": (15 + rng.normal(0, 3, rows)).round(1),
    })


def write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def spec_for(source: str, **overrides) -> mltune.SearchSpec:
    raw = {"task": "timeseries", "name": "sales", "registered_model": "sales-forecast",
           "data": {"source": source, "time": "date", "target": "sales", "horizon": HORIZON},
           "max_evals": 2, "epochs": 4, "seed": 0, "space": SPACE}
    return mltune.load_spec(None, {**raw, **overrides})


@dataclass(frozen=True)
class Searched:
    """One search shared by the tests that read its runs and serve its champion (creating
    an MLflow store and searching once keeps the module fast)."""

    uri: str
    result: mltune.SearchResult
    known: pd.DataFrame  # the rows the search saw
    future: pd.DataFrame  # the next HORIZON rows, never seen


def _use_store(uri: str, patch: pytest.MonkeyPatch) -> None:
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        patch.delenv(name, raising=False)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searched]:
    root = tmp_path_factory.mktemp("timeseries")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    full = seasonal()
    known, future = full.iloc[:ROWS], full.iloc[ROWS:]
    with pytest.MonkeyPatch.context() as patch:
        _use_store(uri, patch)
        patch.chdir(root)
        result = mltune.tune(spec_for(write(known, root / "sales.csv")))
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    yield Searched(uri, result, known, future)


@pytest.fixture()
def store(searched: Searched, monkeypatch: pytest.MonkeyPatch,
          tmp_path: Path) -> Iterator[MlflowClient]:
    """The shared search's store as the current tracking and registry store."""
    _use_store(searched.uri, monkeypatch)
    monkeypatch.chdir(tmp_path)
    yield MlflowClient(searched.uri, searched.uri)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)




def test_search_beats_the_naive_forecast_and_logs_the_forecast_plot(searched, store,
                                                                     tmp_path):
    client, result = store, searched.result
    children = children_of(client, result.parent_run_id)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    for child in children:
        assert METRICS <= set(child.data.metrics)
        assert child.data.params["window"] in {"12", "24"}
        assert child.data.params["cell"] in {"lstm", "gru"}
        assert sorted(m.step for m in client.get_metric_history(child.info.run_id,
                                                                  "val_skill")) == [1, 2, 3, 4]
        metrics = child.data.metrics
        assert metrics["val_skill"] == pytest.approx(
            1 - metrics["val_rmse"] / metrics["val_naive_rmse"])
    # every trial is scored on the same validation windows, so the baseline is one number
    assert len({c.data.metrics["val_naive_rmse"] for c in children}) == 1

    best = client.get_run(result.best.run_id)
    assert best.data.metrics["val_skill"] > 0.3  # tuning beat the last-value forecast
    assert best.data.metrics["val_rmse"] == min(c.data.metrics["val_rmse"] for c in children)
    champion = client.get_model_version_by_alias("sales-forecast", "champion")
    assert champion.run_id == best.info.run_id

    # the forecast plot is on the best trial's run, and only there
    for child in children:
        paths = [a.path for a in client.list_artifacts(child.info.run_id)]
        assert ("forecast.png" in paths) == (child.info.run_id == best.info.run_id)
    image = Image.open(client.download_artifacts(best.info.run_id, "forecast.png", tmp_path))
    assert image.size[0] > 600 and image.size[1] > 200


def test_parent_holds_the_holdout_error_its_naive_error_and_the_skill(searched, store):
    result = searched.result
    parent = store.get_run(result.parent_run_id).data.metrics
    best = store.get_run(result.best.run_id).data.metrics
    assert {"test_rmse", "test_naive_rmse", "test_skill", "test_mae"} <= set(parent)
    # the skill is against the naive forecast of the holdout windows, not the validation ones
    assert parent["test_skill"] == pytest.approx(1 - parent["test_rmse"]
                                                 / parent["test_naive_rmse"])
    assert parent["test_naive_rmse"] != best["val_naive_rmse"]
    version = store.get_model_version_by_alias("sales-forecast", "challenger")
    assert float(version.tags["mltune.holdout_score"]) == pytest.approx(parent["test_rmse"])


def test_served_model_forecasts_the_next_horizon_in_original_units(searched, store):
    known, future = searched.known, searched.future
    model = mlflow.pyfunc.load_model("models:/sales-forecast@champion")
    # the latest rows (more than the window: older rows are fine) -> the next 12 days
    answer = model.predict(known.iloc[-100:])
    assert list(answer.columns) == ["step", "date", "forecast"]
    assert list(answer["step"]) == list(range(1, HORIZON + 1))
    assert list(answer["date"].dt.strftime("%Y-%m-%d")) == list(future["date"])
    truth = future["sales"].to_numpy()
    error = np.abs(answer["forecast"].to_numpy() - truth).mean()
    naive_error = np.abs(known["sales"].iloc[-1] - truth).mean()
    assert error < 0.6 * naive_error  # in sales units, close to what happened next
    # only the model's own window is read: fewer rows, timestamps typed, the same forecast
    window = int(searched.result.best.params["window"])
    typed = known.iloc[-window:].assign(date=lambda f: pd.to_datetime(f["date"]))
    np.testing.assert_allclose(model.predict(typed)["forecast"], answer["forecast"], rtol=1e-6)
    with pytest.raises(mltune.DataError, match=f"input: {window - 1} row.*latest {window} rows"):
        model.predict(known.iloc[-(window - 1):])
    with pytest.raises(mltune.DataError, match="input: column 'date' has a gap"):
        model.predict(known.iloc[-100:].drop(index=known.index[-5]))


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_the_next_horizon(searched, store):
    from serving import invoke, send_mixed, served

    latest = searched.known.iloc[-30:]
    expected = mlflow.pyfunc.load_model("models:/sales-forecast@champion").predict(latest)
    def split(frame: pd.DataFrame, cell: str | None = None) -> str:
        """Raw JSON text; ``cell`` replaces the last row's sales (1e309 is how a client
        sends infinity)."""
        text = json.dumps({"dataframe_split": frame.to_dict(orient="split")})
        if cell is not None:
            last = repr(float(frame["sales"].iloc[-1]))
            head, tail = text.rsplit(last, 1)
            text = head + cell + tail
        return text

    bad = {
        "infinite value": (split(latest, "1e309"), "column 'sales' is infinite at row 30"),
        "text for a value": (split(latest, '"lots"'), "column 'sales' has 'lots' at row 30"),
        "too few rows": (split(latest.iloc[-2:]), "input: 2 row(s) given"),
        "no rows": (split(latest.iloc[:0]), "input: the request holds no rows"),
    }
    with served("models:/sales-forecast@champion", searched.uri) as url:
        answer = invoke(url, {"dataframe_split": latest.to_dict(orient="split")})
        forecast = [row["forecast"] for row in answer["predictions"]]
        good = {"latest rows": (split(latest), lambda got: np.allclose(
            [row["forecast"] for row in got], forecast, rtol=1e-6))}
        send_mixed(url, good, bad, requests=120, seed=9)
    rows = answer["predictions"]
    assert [row["step"] for row in rows] == list(range(1, HORIZON + 1))
    assert [row["date"][:10] for row in rows] == list(searched.future["date"])
    np.testing.assert_allclose([row["forecast"] for row in rows], expected["forecast"],
                               rtol=1e-5)


def test_series_without_timestamps_forecasts_steps(store, tmp_path):
    base = seasonal().iloc[:300].drop(columns="date")
    stepped = base.copy()
    stepped.insert(0, "period", np.arange(10, 10 * len(base) + 1, 10))  # 10, 20, 30, ...
    for time, frame in ((None, base), ("period", stepped)):
        source = write(frame, tmp_path / f"series-{time}.csv")
        spec = spec_for(source, **{"data.time": time, "data.covariates": ["temperature"],
                                   "epochs": 1})
        run_id, metrics = mltune.train_once(spec, {"window": 12})
        assert metrics["val_naive_rmse"] > 0
        model = mlflow.pyfunc.load_model(store.get_run(run_id).data.tags["mltune.model_uri"])
        answer = model.predict(frame.iloc[-20:])
        if time:
            assert list(answer.columns) == ["step", "period", "forecast"]
            assert list(answer["period"]) == [10 * (300 + k) for k in range(1, HORIZON + 1)]
        else:
            assert list(answer.columns) == ["step", "forecast"]
        assert answer["forecast"].between(LEVEL - 3 * AMPLITUDE, LEVEL + 3 * AMPLITUDE).all()
        with pytest.raises(mltune.DataError,
                           match="input: column 'temperature' is not in the input"):
            model.predict(frame.iloc[-20:].drop(columns="temperature"))


def test_another_seed_cuts_the_same_splits_so_resume_and_gate_accept_it(store, tmp_path):
    source = write(seasonal(), tmp_path / "sales.csv")
    spec = {"max_evals": 1, "epochs": 1, "registered_model": "sales-seeds"}  # this test's own
    first = mltune.tune(spec_for(source, **spec))
    # a series is cut by time: seed 1 splits it as seed 0 did, so the trials already scored
    # stand (a drawn split would refuse this resume) and v1 is not said to be flattered
    more = mltune.tune(spec_for(source, **{**spec, "max_evals": 2, "seed": 1}),
                       resume=first.parent_run_id)
    assert [t.number for t in more.trials] == [1, 2]
    other = mltune.tune(spec_for(source, **spec, seed=1, name="again"))
    assert other.decision.champion is not None, other.decision
    assert "flatters" not in other.decision.reason, other.decision.reason


def test_split_is_chronological_and_scaling_sees_only_the_train_segment(tmp_path):
    frame = seasonal().iloc[:400]
    frame.loc[280:, "sales"] += 1000.0  # validation and test sit far above training
    spec = spec_for(write(frame, tmp_path / "s.csv"), **{"data.val_size": 0.15,
                                                         "data.test_size": 0.15})
    task = get_task("timeseries")
    data = task.load(spec.data, seed=0)
    meta = data.meta
    assert meta["mean"][0] == pytest.approx(frame["sales"].iloc[:280].mean())
    assert meta["val_start"] == "2020-10-07"  # row 280: train is rows 0..279
    sales = frame["sales"].to_numpy()

    def actual(y):
        return y.numpy() * meta["scale"][0] + meta["mean"][0]

    # each split's targets are its own segment, in order: no window crosses into the future
    np.testing.assert_allclose(actual(data.y_val)[:, 0], sales[280:340 - HORIZON + 1], rtol=1e-5)
    np.testing.assert_allclose(actual(data.y_test)[-1], sales[-HORIZON:], rtol=1e-5)
    np.testing.assert_allclose(actual(data.y_train)[-1], sales[280 - HORIZON:280], rtol=1e-5)
    assert data.x_train.shape[1] == 24  # the longest window of the space


def test_fill_interpolate_fills_gaps_and_empty_cells_linearly(tmp_path):
    frame = seasonal().iloc[:300].copy()
    frame.loc[10, "sales"] = np.nan  # an empty cell on 2020-01-11
    frame = frame.drop(index=20)  # no row for 2020-01-21
    spec = spec_for(write(frame, tmp_path / "gappy.csv"), **{"data.fill": "interpolate"})
    data = get_task("timeseries").load(spec.data, seed=0)
    # back on the daily grid: 300 rows, 210 for training, windows of 24 + 12
    assert len(data.y_train) == 210 - 24 - HORIZON + 1
    meta = data.meta
    first_window = data.x_train[0, :, 0].numpy() * meta["scale"][0] + meta["mean"][0]
    sales = frame["sales"].to_numpy()  # row 20 is gone, so rows 21.. sit one place earlier
    assert first_window[10] == pytest.approx((sales[9] + sales[11]) / 2, rel=1e-5)
    assert first_window[20] == pytest.approx((sales[19] + sales[20]) / 2, rel=1e-5)
    assert first_window[21] == pytest.approx(sales[20], rel=1e-5)


def _bad_cases() -> dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], dict, list[str]]]:
    def set_cell(row: int, column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
        def change(frame: pd.DataFrame) -> pd.DataFrame:
            frame = frame.astype({column: object})
            frame.loc[row, column] = value
            return frame
        return change

    def swap(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[[7, 8]] = frame.loc[[8, 7]].to_numpy()
        return frame

    return {
        "too short": (lambda f: f.iloc[:60], {},
                      ["data.source", "60 rows", "horizon 12", "at least"]),
        "non-numeric target": (set_cell(41, "sales", "twelve"), {},
                               ["data.target", "'sales'", "'twelve'", "row 42 (2020-02-11)",
                                "not a number"]),
        "infinite covariate": (set_cell(5, "temperature", "inf"),
                               {"data.covariates": ["temperature"]},
                               ["data.covariates", "'temperature'", "infinite", "row 6"]),
        "duplicated timestamp": (set_cell(9, "date", "2020-01-09"), {},
                                 ["data.time", "repeats '2020-01-09': rows 9, 10",
                                  "once"]),
        "unsorted timestamps": (swap, {},
                                ["data.time", "not in time order", "row 9 ('2020-01-08')",
                                 "after row 8 ('2020-01-09')", "sort the rows by 'date'"]),
        "unparseable timestamp": (set_cell(30, "date", "31/01/2020"), {},
                                  ["data.time", "'31/01/2020'", "row 31", "not a timestamp"]),
        "empty timestamp": (set_cell(3, "date", None), {}, ["data.time", "empty at row 4"]),
        "gap": (lambda f: f.drop(index=[50, 51]), {},
                ["data.time", "gap", "2020-02-20", "2 missing step(s)", "data.fill"]),
        "empty target cell": (set_cell(12, "sales", None), {},
                              ["data.target", "'sales'", "empty at row 13 (2020-01-13)",
                               "data.fill: interpolate or ffill"]),
        "missing target column": (lambda f: f, {"data.target": "revenue"},
                                  ["data.target", "'revenue'", "its columns: date, sales"]),
        "off-grid timestamp": (lambda f: f, {"data.freq": "2D"},
                               ["data.time", "'2020-01-02' at row 2", "off the series' step of 2D",
                                "data.freq"]),
        "missing horizon": (lambda f: f, {"data.horizon": None},
                            ["data.horizon", "required"]),
        "window beyond max_window": (lambda f: f, {"data.max_window": 12},
                                     ["space.window", "24", "data.max_window=12"]),
        "unbounded window": (lambda f: f, {"space.window": {"normal": [24, 4]}},
                             ["space.window", "normal", "bounded distribution"]),
        "unknown fill": (lambda f: f, {"data.fill": "zero"},
                         ["data.fill", "'zero'", "none, interpolate, ffill"]),
        "classification loss": (lambda f: f, {"space.loss": {"choice": ["mse", "cross_entropy"]}},
                                ["space.loss", "'cross_entropy'", "available: mse, mae, huber"]),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_clear_line_and_exit_2(tracking_uri, tmp_path, capsys, case):
    change, overrides, fragments = BAD[case]
    source = write(change(seasonal().iloc[:300].copy()), tmp_path / "bad.csv")
    config = tmp_path / "spec.yaml"
    raw = {"task": "timeseries", "data": {"source": source, "time": "date", "target": "sales",
                                          "horizon": HORIZON}, "space": {"window": 24}}
    config.write_text(yaml.safe_dump(raw))
    sets = [f"--set={k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
            for k, v in overrides.items()]
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--config", str(config), *sets])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mltune: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0]
    # refused before MLflow was touched: no run opened, not even the store created
    assert not (tmp_path / "mlflow.db").exists()


def test_example_spec_loads_its_bundled_series(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # where `mlflow run .` runs
    spec = mltune.load_spec("examples/timeseries.yaml")
    data = get_task("timeseries").load(spec.data, spec.seed)
    assert spec.data.options["max_window"] == 56  # the largest window of its space
    assert data.x_train.shape[1:] == (56, 2)  # sales and temperature
    assert data.y_val.shape[1] == spec.data.horizon == 14
    assert data.meta["val_naive_rmse"] > 0


def test_timestamps_across_a_daylight_saving_change_are_read_on_one_clock():
    from mltune.tasks.timeseries.series import Columns, prepare

    local = pd.date_range("2021-03-27", periods=72, freq="h", tz="Europe/Berlin")
    frame = pd.DataFrame({"t": [t.isoformat() for t in local], "y": np.arange(72.0)})
    series = prepare(frame, Columns("y", (), "t"), fill="none", freq=None, training=True)
    assert series.freq == "h" and len(series.values) == 72  # no gap where clocks jumped
    assert str(series.times.tz) == "UTC"


def test_a_space_of_windows_all_below_the_default_window_is_searched(store, tmp_path):
    source = write(seasonal().iloc[:200], tmp_path / "short.csv")
    result = mltune.tune(spec_for(source, max_evals=1, epochs=1, name="short-windows",
                                  registered_model="short-windows",
                                  space={"window": {"choice": [6, 8]}}))
    assert result.best.params["window"] in (6, 8)
    assert result.best.status == "FINISHED"
