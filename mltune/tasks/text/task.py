"""Text classification with recurrent networks, on the user's own CSV or parquet file.

``data: {source: reviews.csv, text: review, target: label}``. The file is read and checked,
split (stratified, seeded), tokenised with a vocabulary fitted on the train split only, and
encoded once per search. Vocabulary and label list travel in the model's metadata, so the served
model takes raw strings and answers with the user's own labels.

Rows with a missing or empty text or label are refused by default (the message names the count
and the first rows); ``data.drop_missing: true`` drops them instead and logs how many.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from torch import nn

from mltune.core.errors import DataError, SpecError
from mltune.data.io import read_table
from mltune.data.splits import TaskData
from mltune.models.description import TextData
from mltune.models.rnn import CELLS
from mltune.models.text_rnn import PAD, UNK
from mltune.spec.model import DataSpec
from mltune.spec.options import boolean, integer, prefixed, string
from mltune.spec.rules import OneOf, Rule
from mltune.spec.tasks import TASKS
from mltune.tasks.base import Params, Task
from mltune.tasks.classification import (
    CLASSIFICATION_LOSSES,
    ClassificationMixin,
    encode_labels,
    stratified_split,
)
from mltune.tasks.confusion import confusion_artifacts
from mltune.tasks.inputs import not_empty
from mltune.tasks.text.vocab import RESERVED, EmptyVocabularyError, Vocabulary
from mltune.training.fit import predict_batches
from mltune.training.losses import make_loss

log = logging.getLogger(__name__)

CLASS_WEIGHTS = ("none", "balanced")
DEFAULT_TEXT, DEFAULT_TARGET = "text", "label"
SHOWN_ROWS = 5  # row numbers quoted in a message about bad rows


# -- reading and checking ----------------------------------------------------------------------

def _column(frame: pd.DataFrame, name: str, field: str, source: str) -> pd.Series:
    if name not in frame.columns:
        columns = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(f"{field}: column {name!r} is not in {source!r}; columns: {columns}")
    column = frame[name]
    if isinstance(column, pd.DataFrame):
        raise DataError(f"{field}: {source!r} has {column.shape[1]} columns named {name!r}")
    return column


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:SHOWN_ROWS]) + (", ..." if len(rows) > SHOWN_ROWS
                                                            else "")
    return f"rows {shown} (counting from 0 after the header)"


def clean_rows(frame: pd.DataFrame, text: str, target: str, source: str,
               drop_missing: bool) -> tuple[list[str], np.ndarray, int]:
    """(texts, labels, rows dropped) after checking both columns; DataError on bad values."""
    texts, labels = _column(frame, text, "data.text", source), _column(frame, target,
                                                                       "data.target", source)
    if len(frame) == 0:
        raise DataError(f"data.source: {source!r} has a header but no rows")
    if texts.isna().all():
        raise DataError(f"data.text: column {text!r} of {source!r} is empty "
                        f"(all {len(frame)} values missing)")
    if (pd.api.types.is_numeric_dtype(texts) or pd.api.types.is_bool_dtype(texts)
            or pd.api.types.is_datetime64_any_dtype(texts)):
        raise DataError(f"data.text: column {text!r} holds {texts.dtype} values, not text; "
                        "expected a column of strings (is data.text the right column?)")
    blank = texts.isna().to_numpy() | (texts.astype(str).str.strip() == "").to_numpy()
    unlabelled = labels.isna().to_numpy()
    for mask, field, what in ((blank, "data.text", "a missing or empty text"),
                              (unlabelled, "data.target", "no label")):
        if mask.any() and not drop_missing:
            raise DataError(f"{field}: {mask.sum()} of {len(frame)} rows have {what}, at "
                            f"{_rows(mask)}; fix or remove them, or set "
                            "data.drop_missing: true to drop them")
    keep = ~(blank | unlabelled)
    dropped = int((~keep).sum())
    if dropped:
        log.warning("data: dropped %d of %d rows with a missing or empty text or label",
                    dropped, len(frame))
    if not keep.any():
        raise DataError(f"data.source: no row of {source!r} has both a text and a label")
    labels = labels[keep]
    if pd.api.types.is_float_dtype(labels) and np.all(np.mod(labels.to_numpy(), 1) == 0):
        labels = labels.astype(np.int64)  # 1.0/2.0 came from an int column with gaps
    values = labels.to_numpy(dtype=object)
    if len({type(v) for v in values}) > 1:  # mixed ints and strings: compare them as text
        values = np.array([str(v) for v in values], dtype=object)
    return [str(t) for t in texts[keep]], values, dropped


def text_fingerprint(texts: Sequence[str], codes: np.ndarray, classes: Sequence[Any]) -> str:
    """A short hash of the rows used: same texts and labels, same fingerprint."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    digest.update(np.ascontiguousarray(codes).tobytes())
    digest.update(repr(list(classes)).encode())
    return digest.hexdigest()[:16]


# -- serving -----------------------------------------------------------------------------------

def raw_texts(model_input: Any, column: str) -> list[str]:
    """The strings of what a user sends: a DataFrame (text column, or its only column), a
    Series, a list or array of strings, or one string."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        if column in model_input.columns:
            model_input = model_input[column]
        elif model_input.shape[1] == 1:
            model_input = model_input.iloc[:, 0]
        else:
            columns = ", ".join(map(str, model_input.columns))
            raise DataError(f"input: no column {column!r} among {columns}; send a DataFrame "
                            f"with a {column!r} column or a list of strings")
    if isinstance(model_input, str):
        model_input = [model_input]
    values = list(np.asarray(model_input, dtype=object).reshape(-1))
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(f"input: row {i} is {value!r} ({type(value).__name__}); "
                            "expected a string of text")
    return values


# -- the task ----------------------------------------------------------------------------------

class TextTask(ClassificationMixin, Task):
    name = "text"
    default_metric = "val_accuracy"
    data_options = ("max_vocab", "min_freq", "max_length", "lowercase", "encoding",
                    "drop_missing")
    family = "text_rnn"

    def __init__(self) -> None:
        self._cached: tuple[Mapping[str, Any], Vocabulary] | None = None

    def _vocabulary(self, meta: Mapping[str, Any]) -> Vocabulary:
        """The served model's vocabulary, rebuilt once, not per request (~15 ms at 20k)."""
        cached = self._cached
        if cached is None or cached[0] is not meta:
            cached = self._cached = (meta, Vocabulary.from_meta(meta))
        return cached[1]

    def builtin_space(self) -> dict[str, Any]:
        return {
            "cell": {"choice": CELLS.names()},
            "num_layers": {"quniform": [1, 2, 1]},
            "hidden_size": {"choice": [32, 64, 128]},
            "bidirectional": {"choice": [True, False]},
            "dropout": {"uniform": [0.0, 0.5]},
            "word_dropout": {"uniform": [0.0, 0.2]},
            "embedding_dim": {"choice": [32, 64, 128]},
            "pool": {"choice": ["last", "mean", "max"]},
            "activation": {"choice": ["relu", "gelu", "tanh"]},
            "learning_rate": {"loguniform": [3.0e-4, 1.0e-2]},
            "weight_decay": {"loguniform": [1.0e-6, 1.0e-3]},
            "loss": {"choice": CLASSIFICATION_LOSSES},
            "class_weight": {"choice": list(CLASS_WEIGHTS)},
            "weight_init": {"choice": ["default", "orthogonal", "xavier_uniform"]},
            "optimizer": {"choice": [{"name": "adam"}, {"name": "adamw"},
                                     {"name": "sgd", "momentum": {"uniform": [0.8, 0.99]}}]},
            "batch_size": {"choice": [32, 64, 128]},
        }

    def builtin_params(self) -> dict[str, Any]:
        return {"cell": "gru", "num_layers": 1, "hidden_size": 64, "bidirectional": True,
                "dropout": 0.2, "word_dropout": 0.1, "embedding_dim": 64, "pool": "max",
                "activation": "relu",
                "learning_rate": 3e-3, "weight_decay": 1e-5, "loss": "cross_entropy",
                "class_weight": "none", "weight_init": "default", "optimizer": "adam",
                "batch_size": 64}

    def load(self, data: DataSpec, seed: int) -> TaskData:
        options = prefixed(data.options, "data")
        max_vocab = integer(options, "data.max_vocab", 20000, minimum=1)
        min_freq = integer(options, "data.min_freq", 2, minimum=1)
        max_length = integer(options, "data.max_length", 200, minimum=1)
        lowercase = boolean(options, "data.lowercase", True)
        encoding = string(options, "data.encoding", "utf-8")
        drop_missing = boolean(options, "data.drop_missing", False)
        text_column, target_column = data.text or DEFAULT_TEXT, data.target or DEFAULT_TARGET

        frame = read_table(data.source, encoding=encoding)
        texts, labels, dropped = clean_rows(frame, text_column, target_column, data.source,
                                            drop_missing)
        codes, classes = encode_labels(labels, f"data.target (column {target_column!r})")
        try:
            train, val, test = stratified_split(len(texts), codes, data, seed)
        except ValueError:
            raise DataError(f"data.source: {len(texts)} usable rows are too few to split into "
                            f"train/val/test with val_size={data.val_size:g} and "
                            f"test_size={data.test_size:g}") from None
        try:
            vocab = Vocabulary.fit([texts[i] for i in train], max_size=max_vocab,
                                   min_freq=min_freq, lowercase=lowercase,
                                   max_length=max_length)
        except EmptyVocabularyError:
            raise DataError(f"data.min_freq: no token appears in {min_freq} or more of the "
                            f"{len(train)} training texts; lower data.min_freq") from None
        x = vocab.encode(texts)
        y = torch.from_numpy(codes)
        meta = {"classes": classes, "text_column": text_column, "target_column": target_column,
                "vocabulary": vocab.to_meta(), "source": data.source, "rows": len(texts),
                "rows_dropped": dropped,
                "input_example": [texts[i][:300] for i in val[:2]]}
        return TaskData(x[train], y[train], x[val], y[val], x[test], y[test], meta=meta,
                        fingerprint=text_fingerprint(texts, codes, classes))

    def task_rules(self) -> dict[str, Rule]:
        return {"class_weight": OneOf.among(CLASS_WEIGHTS)}

    def describe_data(self, meta: Mapping[str, Any], params: Params | None = None) -> TextData:
        vocabulary = meta["vocabulary"]
        return TextData(vocab_size=len(vocabulary["tokens"]) + RESERVED, padding_idx=PAD,
                        unknown_idx=UNK, max_length=int(vocabulary.get("max_length", 200)),
                        classes=len(meta["classes"]))

    def make_loss(self, params: Params, data: TaskData) -> Callable[..., torch.Tensor]:
        """Cross entropy (optionally label-smoothed), optionally weighted against imbalance.

        ``class_weight: balanced`` weighs class c by n / (classes * n_c) on the train split, so
        every class carries the same total weight (scikit-learn's definition).
        """
        p = self.with_defaults(params)
        name = str(p["loss"])
        if name not in CLASSIFICATION_LOSSES:
            raise SpecError(f"loss: {name!r} does not suit classification; expected one of: "
                            f"{', '.join(CLASSIFICATION_LOSSES)}")
        loss = make_loss(name)
        weighting = str(p["class_weight"])
        if weighting not in CLASS_WEIGHTS:
            raise SpecError(f"class_weight: {weighting!r} is not allowed; expected one of: "
                            f"{', '.join(CLASS_WEIGHTS)}")
        if weighting == "balanced":
            classes = len(data.meta["classes"])
            counts = torch.bincount(data.y_train, minlength=classes).float()
            loss.weight = len(data.y_train) / (classes * counts.clamp(min=1))
        return loss

    def trial_artifacts(self, model: nn.Module, data: TaskData) -> dict[str, Any]:
        return confusion_artifacts(predict_batches(model, data.x_val), data.y_val,
                                   data.meta["classes"])

    def input_example(self, data: TaskData) -> Any:
        return pd.DataFrame({data.meta["text_column"]: data.meta["input_example"]})

    def signature(self, data: TaskData) -> ModelSignature:
        # No input schema: a named string column makes MLflow refuse a plain list of strings,
        # and an unnamed one picks a multi-column frame's columns by position (silently the
        # wrong one). predict() takes every form and names the problem when there is one.
        return self.signature_for(None, data.meta)

    def predict(self, model: nn.Module, meta: Mapping[str, Any], model_input: Any) -> pd.DataFrame:
        texts = raw_texts(model_input, meta["text_column"])
        not_empty(len(texts), "texts")
        ids = self._vocabulary(meta["vocabulary"]).encode(texts)
        device = next(model.parameters()).device
        return self.labelled(predict_batches(model, ids.to(device), batch_size=256), meta)


TASKS.add("text", TextTask())
