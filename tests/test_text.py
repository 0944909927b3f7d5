"""The text task on generated labelled texts: a real search, the served model, bad input."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import children_of, client_of, tracking_store
from mlflow.tracking import MlflowClient

import mltune
from mltune.cli import main
from mltune.core.errors import DataError
from mltune.models.rnn import CELLS, POOLINGS
from mltune.models.text_rnn import UNK
from mltune.search.history.result import SearchResult
from mltune.spec.build import load_spec
from mltune.spec.model import DataSpec
from mltune.tasks import get_task

TASK = get_task("text")
KEYWORDS = {
    "sports": ["goal", "match", "team", "coach", "stadium", "score"],
    "cooking": ["recipe", "oven", "flour", "garlic", "simmer", "spoon"],
    "travel": ["flight", "hotel", "passport", "beach", "luggage", "museum"],
}
FILLER = ["the", "a", "we", "really", "it", "was", "and", "very", "today", "then", "there",
          "quite", "so", "after", "before", "with"]


def make_texts(n: int, seed: int, filler: list[str] = FILLER) -> tuple[list[str], list[str]]:
    """Texts of 3..14 words; each holds two words of its class among shared filler words."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = list(KEYWORDS)[i % len(KEYWORDS)]
        words = list(rng.choice(filler, size=rng.integers(1, 13)))
        for keyword in rng.choice(KEYWORDS[label], size=2, replace=False):
            words.insert(int(rng.integers(0, len(words) + 1)), str(keyword))
        texts.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
        labels.append(label)
    return texts, labels


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def topics_csv(path: Path, n: int = 240, seed: int = 0) -> Path:
    texts, labels = make_texts(n, seed)
    return write_csv(path, ["body", "topic", "id"],
                     [[t, lab, i] for i, (t, lab) in enumerate(zip(texts, labels, strict=True))])


SEARCH = {"task": "text", "data.text": "body", "data.target": "topic", "max_evals": 2,
          "epochs": 3, "seed": 1, "registered_model": "mltune-text",
          # a space where both trials learn: what is asserted is the plumbing, not TPE's luck
          "space.learning_rate": {"loguniform": [3.0e-3, 1.0e-2]},
          "space.optimizer": "adam", "space.cell": {"choice": ["lstm", "gru"]},
          "space.batch_size": 32}


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SearchResult, str]]:
    """One 2-trial search shared by the tests that read its runs and serve its model."""
    folder = tmp_path_factory.mktemp("text-search")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with tracking_store(uri):
        source = topics_csv(folder / "topics.csv")
        result = mltune.tune(load_spec(None, {**SEARCH, "data.source": str(source)}))
        yield result, uri


@pytest.fixture()
def store(search: tuple[SearchResult, str]) -> Iterator[MlflowClient]:
    with client_of(search[1]) as client:
        yield client


def test_two_trial_search_logs_metrics_confusion_matrix_and_registers(search, store):
    result, _ = search
    parent = store.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.task"] == "text"
    children = children_of(store, result.parent_run_id)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    for child in children:
        assert child.data.params["cell"] in {"lstm", "gru"}
        assert child.data.params["bidirectional"] in {"true", "false"}  # as JSON
        assert child.data.params["pool"] in POOLINGS
        assert child.data.params["class_weight"] in {"none", "balanced"}
        for metric in ("train_loss", "val_loss", "val_accuracy", "val_f1_macro"):
            history = store.get_metric_history(child.info.run_id, metric)
            assert sorted(m.step for m in history) == [1, 2, 3], metric

    best = max(children, key=lambda c: c.data.metrics["val_accuracy"])
    assert store.get_model_version_by_alias("mltune-text", "champion").run_id == best.info.run_id
    artifacts = {a.path for a in store.list_artifacts(best.info.run_id)}
    assert {"confusion_matrix.json", "confusion_matrix.png"} <= artifacts
    matrix = mlflow.artifacts.load_dict(f"runs:/{best.info.run_id}/confusion_matrix.json")
    assert matrix["labels"] == sorted(KEYWORDS)  # the user's labels, in class order
    cells = np.array(matrix["matrix"])
    assert cells.shape == (3, 3)
    assert cells.sum() == round(240 * 0.15)  # every validation text counted once
    assert np.trace(cells) / cells.sum() == pytest.approx(best.data.metrics["val_accuracy"])


def test_served_model_predicts_original_labels_from_raw_strings(search, store):
    model = mlflow.pyfunc.load_model("models:/mltune-text@champion")
    # fresh texts, with filler words the model never saw (out of vocabulary)
    texts, truth = make_texts(90, seed=99, filler=["lorem", "ipsum", "dolor", "sit", "amet"])
    answer = model.predict(texts)  # a plain list of strings
    assert set(answer["label"]) <= set(KEYWORDS)
    assert all(isinstance(label, str) for label in answer["label"])
    accuracy = float(np.mean(answer["label"].to_numpy() == np.array(truth)))
    majority = max(truth.count(c) for c in KEYWORDS) / len(truth)
    assert accuracy > 0.9 > majority
    probabilities = answer[[f"proba_{c}" for c in sorted(KEYWORDS)]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    # a DataFrame with the text column among others, and a single string, give the same answer
    frame = pd.DataFrame({"id": range(len(texts)), "body": texts})
    assert list(model.predict(frame)["label"]) == list(answer["label"])
    assert model.predict(texts[0])["label"].tolist() == [answer["label"][0]]


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_json_request_of_raw_text(search, store):
    from serving import invoke, send_mixed, served

    _, uri = search
    texts = ["We booked a hotel near the beach", "Simmer the garlic, then the flour!",
             "The coach was happy with the team after the match"]
    expected = mlflow.pyfunc.load_model("models:/mltune-text@champion").predict(texts)
    bad = {
        # (in "inputs" MLflow's parser turns ["a", 42] into strings: a table keeps the 42)
        "a number for a text": ('{"dataframe_split": {"columns": ["body"], '
                                '"data": [["a hotel by the sea"], [42]]}}',
                                "input: row 1 is 42 (int); expected a string of text"),
        "nothing": ('{"inputs": []}', "input: the request holds no texts"),
        "wrong column": ('{"dataframe_split": {"columns": ["id", "title"], "data": [[1, "x"]]}}',
                         "input: no column 'body' among id, title"),
    }
    with served("models:/mltune-text@champion", uri) as url:
        listed = invoke(url, {"inputs": texts})["predictions"]
        split = invoke(url, {"dataframe_split": {"columns": ["body"],
                                                 "data": [[t] for t in texts]}})["predictions"]
        labels = [row["label"] for row in listed]
        good = {"texts": (json.dumps({"inputs": texts}),
                          lambda got: [row["label"] for row in got] == labels)}
        send_mixed(url, good, bad, requests=120, seed=7)
    assert [row["label"] for row in listed] == list(expected["label"])
    assert [row["label"] for row in split] == list(expected["label"])
    assert listed[0]["proba_travel"] == pytest.approx(expected["proba_travel"][0], rel=1e-5)


def test_served_model_names_what_is_wrong_with_its_input(search, store):
    model = mlflow.pyfunc.load_model("models:/mltune-text@champion")
    with pytest.raises(DataError, match="input: no column 'body' among id, text"):
        model.predict(pd.DataFrame({"id": [1], "text": ["hotel"]}))
    with pytest.raises(DataError, match="input: row 1 is None"):
        model.predict(["a hotel", None])
    with pytest.raises(DataError, match="input: the request holds no texts; send at least one"):
        model.predict([])


# -- bad input: one clear line, exit 2, nothing logged ---------------------------------------

def _bad_files(tmp: Path) -> dict[str, tuple[Path, dict[str, object], str]]:
    texts, labels = make_texts(60, seed=3)
    rows = [[t, lab, i] for i, (t, lab) in enumerate(zip(texts, labels, strict=True))]
    blank = [list(r) for r in rows]
    blank[4][0], blank[9][0] = "", "   "
    no_label = [list(r) for r in rows]
    no_label[7][1] = ""
    latin = tmp / "latin.csv"
    latin.write_bytes("body,topic\ncaf\xe9 au lait,cooking\n".encode("latin-1") * 20)
    empty = tmp / "empty.csv"
    empty.write_bytes(b"")
    return {
        "missing text column": (topics_csv(tmp / "a.csv"), {"data.text": "review"},
                                "data.text: column 'review' is not in"),
        "missing label column": (topics_csv(tmp / "b.csv"), {"data.target": "label"},
                                 "data.target: column 'label' is not in"),
        "empty file": (empty, {}, "is empty (0 bytes)"),
        "header only": (write_csv(tmp / "h.csv", ["body", "topic"], []), {},
                        "has a header but no rows"),
        "single class": (write_csv(tmp / "s.csv", ["body", "topic"],
                                   [[t, "sports"] for t in texts]), {},
                         "data.target (column 'topic'): only one class ('sports')"),
        "numeric text column": (topics_csv(tmp / "n.csv"), {"data.text": "id"},
                                "data.text: column 'id' holds int64 values, not text"),
        "empty texts": (write_csv(tmp / "e.csv", ["body", "topic", "id"], blank), {},
                        "data.text: 2 of 60 rows have a missing or empty text, at rows 4, 9"),
        "missing labels": (write_csv(tmp / "m.csv", ["body", "topic", "id"], no_label), {},
                           "data.target: 1 of 60 rows have no label, at rows 7"),
        "not utf-8": (latin, {}, "is not utf-8 text (byte 0xe9 on line 2)"),
        "no such file": (tmp / "nowhere.csv", {}, "'nowhere.csv' does not exist"),
        "bad option": (topics_csv(tmp / "o.csv"), {"data.max_length": 0},
                       "data.max_length: 0 is not allowed; expected a whole number >= 1"),
    }


BAD_CASES = [
    "missing text column", "missing label column", "empty file", "header only", "single class",
    "numeric text column", "empty texts", "missing labels", "not utf-8", "no such file",
    "bad option"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    path, overrides, message = _bad_files(tmp_path)[case]
    sets = {"data.text": "body", "data.target": "topic", **overrides}
    args = ["tune", "--set", "task=text", "--set", f"data.source={path.name}", "--max-evals", "1"]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mltune: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run was opened


def test_drop_missing_drops_the_rows_and_logs_how_many(tmp_path, caplog):
    texts, labels = make_texts(60, seed=4)
    rows = [[t, lab] for t, lab in zip(texts, labels, strict=True)]
    rows[2][0], rows[5][1], rows[8][0] = "", "", " "
    source = write_csv(tmp_path / "gaps.csv", ["body", "topic"], rows)
    spec = DataSpec(source=str(source), text="body", target="topic",
                    options={"drop_missing": True})
    with caplog.at_level(logging.WARNING, logger="mltune.tasks.text"):
        data = TASK.load(spec, seed=0)
    assert "dropped 3 of 60 rows" in caplog.text
    assert data.meta["rows_dropped"] == 3
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 57


def test_integer_labels_with_gaps_stay_integers(tmp_path):
    texts, labels = make_texts(60, seed=5)
    codes = {name: i * 10 for i, name in enumerate(KEYWORDS)}
    rows = [[t, codes[lab]] for t, lab in zip(texts, labels, strict=True)]
    rows[3][1] = ""  # a gap makes pandas read the column as floats
    source = write_csv(tmp_path / "ints.csv", ["body", "topic"], rows)
    spec = DataSpec(source=str(source), text="body", target="topic",
                    options={"drop_missing": True})
    data = TASK.load(spec, seed=0)
    assert data.meta["classes"] == [0, 10, 20]
    assert all(type(c) is int for c in data.meta["classes"])


def test_parquet_and_csv_of_the_same_rows_give_the_same_data(tmp_path):
    csv_path = topics_csv(tmp_path / "topics.csv", n=90)
    parquet_path = tmp_path / "topics.parquet"
    pd.read_csv(csv_path).to_parquet(parquet_path)
    loaded = [TASK.load(DataSpec(source=str(path), text="body", target="topic"), seed=0)
              for path in (csv_path, parquet_path)]
    assert loaded[0].fingerprint == loaded[1].fingerprint
    assert loaded[0].meta["vocabulary"] == loaded[1].meta["vocabulary"]
    assert torch.equal(loaded[0].x_train, loaded[1].x_train)


# -- tokenising and the network --------------------------------------------------------------

def test_vocabulary_is_fitted_on_the_train_split_only(tmp_path):
    texts, labels = make_texts(120, seed=6)
    rows = [[f"{t} unique{i}", lab] for i, (t, lab) in enumerate(zip(texts, labels,
                                                                      strict=True))]
    source = write_csv(tmp_path / "u.csv", ["body", "topic"], rows)
    spec = DataSpec(source=str(source), text="body", target="topic", options={"min_freq": 1})
    data = TASK.load(spec, seed=0)
    vocabulary = data.meta["vocabulary"]["tokens"]
    assert sum(token.startswith("unique") for token in vocabulary) == len(data.x_train)

    def unknown(x: torch.Tensor) -> int:
        return int((x[:, 1:] == UNK).sum())

    assert unknown(data.x_train) == 0
    assert unknown(data.x_val) == len(data.x_val)  # each one's own word is out of vocabulary
    assert unknown(data.x_test) == len(data.x_test)


@pytest.mark.parametrize("cell", CELLS.names())
@pytest.mark.parametrize("pool", POOLINGS)
def test_prediction_does_not_depend_on_padding_or_batch(cell, pool, tmp_path):
    meta = {"classes": ["a", "b"], "text_column": "text",
            "vocabulary": {"tokens": ["x", "y", "z"], "lowercase": True,
                           "token_pattern": r"(?u)\b\w+\b|[^\w\s]", "max_length": 8}}
    params = {**TASK.default_params(), "cell": cell, "pool": pool, "bidirectional": True,
              "num_layers": 2}
    torch.manual_seed(0)
    model = TASK.build_model(params, meta).eval()
    alone = TASK.predict(model, meta, ["x y"])
    batched = TASK.predict(model, meta, ["x y", "z " * 30, "y"])
    np.testing.assert_allclose(alone.iloc[0, 1:].to_numpy(float),
                               batched.iloc[0, 1:].to_numpy(float), rtol=1e-5, atol=1e-6)
    # texts are cut at max_length tokens: what follows the 8th token changes nothing
    long = TASK.predict(model, meta, ["x y z x y z x y", "x y z x y z x y z z z y"])
    np.testing.assert_allclose(long.iloc[0, 1:].to_numpy(float),
                               long.iloc[1, 1:].to_numpy(float), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS.names())
def test_orthogonal_init_makes_each_recurrent_gate_orthogonal(cell):
    meta = {"classes": [0, 1], "vocabulary": {"tokens": ["x"]}}
    model = TASK.build_model({**TASK.default_params(), "cell": cell, "hidden_size": 16,
                              "weight_init": "orthogonal"}, meta)
    weight = model.encoder.rnn.weight_hh_l0.detach()
    for block in weight.split(16):
        torch.testing.assert_close(block.T @ block, torch.eye(16), atol=1e-5, rtol=0)
    assert model.embedding.weight[0].abs().sum() == 0  # padding stays zero


def test_balanced_class_weights_make_every_class_weigh_the_same(tmp_path):
    texts, labels = make_texts(300, seed=7)
    keep = [i for i, lab in enumerate(labels) if lab != "travel" or i % 5 == 0]
    rows = [[texts[i], labels[i]] for i in keep]  # travel is 5x rarer than the others
    source = write_csv(tmp_path / "imbalanced.csv", ["body", "topic"], rows)
    data = TASK.load(DataSpec(source=str(source), text="body", target="topic"), seed=0)
    loss = TASK.make_loss({"loss": "label_smoothing", "class_weight": "balanced"}, data)
    counts = torch.bincount(data.y_train, minlength=3).float()
    total_weight = loss.weight * counts
    torch.testing.assert_close(total_weight, total_weight.mean().expand(3))
    assert loss.label_smoothing == pytest.approx(0.1)
    assert TASK.make_loss({"loss": "cross_entropy"}, data).weight is None
