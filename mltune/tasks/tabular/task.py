"""Tabular data with an MLP: classification or regression on the user's own table.

Sources: ``sklearn:breast_cancer`` (classes), ``sklearn:diabetes`` (values), or a CSV / parquet
file with ``data.target`` naming the column to predict. The problem type is inferred from the
target (see ``tables.infer_problem``) unless ``data.problem`` says it; it decides the default
metric, losses and space. Preprocessing (imputation, scaling, one-hot) is a scikit-learn
transformer fitted on the train split only and shipped inside every served model, which takes
the raw feature columns as they are in the file and answers in the target's own labels or units.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.model_selection import train_test_split
from torch import nn

from mltune.core.errors import DataError, SpecError
from mltune.core.terms import Direction
from mltune.data.splits import TaskData, fingerprint_arrays
from mltune.models.description import TabularData
from mltune.models.layers import Unstandardize
from mltune.spec.model import DataSpec
from mltune.spec.rules import OneOf, Rule
from mltune.spec.tasks import TASKS
from mltune.tasks.base import Params, Task, logged_metrics
from mltune.tasks.classification import (
    CLASSIFICATION_LOSSES,
    CLASSIFICATION_SCORES,
    ClassificationMixin,
    encode_labels,
    stratified_split,
)
from mltune.tasks.inputs import finite, not_empty
from mltune.tasks.tabular.tables import (
    MIN_ROWS,
    PREPROCESSOR_TYPES,
    classes_as_python,
    encoding,
    feature_columns,
    make_preprocessor,
    numeric_frame,
    read_table,
    require_column,
    resolve_problem,
    target_name,
)
from mltune.training.losses import LOSSES as LOSSES_CATALOG
from mltune.training.losses import make_loss
from mltune.training.metrics import binary_roc_auc, classification_metrics, regression_metrics

log = logging.getLogger(__name__)

REGRESSION_LOSSES = ["mse", "mae", "huber"]
LOSSES = {"classification": CLASSIFICATION_LOSSES, "regression": REGRESSION_LOSSES}
# what ``score`` returns for each problem, and which way each is better
SCORES = {"classification": CLASSIFICATION_SCORES,
          "regression": {"rmse": Direction.MIN, "mae": Direction.MIN, "r2": Direction.MAX}}
PREPROCESSOR = "preprocessor"  # the fitted transformer: a model artifact, in meta when served


def _random_split(n: int, data: DataSpec, seed: int) -> tuple[np.ndarray, ...]:
    rest, test = train_test_split(np.arange(n), test_size=data.test_size, random_state=seed)
    train, val = train_test_split(rest, test_size=data.val_size / (1 - data.test_size),
                                  random_state=seed)
    return train, val, test


def _regression_target(values: pd.Series, target: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_bool_dtype(
        values) else values.astype("float64")
    bad = numbers.isna() & values.notna()
    if bad.any():
        raise DataError(f"data.target: column {target!r} holds {values[bad].iloc[0]!r}; "
                        "regression needs numbers (or set data.problem: classification)")
    numbers = numbers.to_numpy(dtype=np.float64)
    if np.ptp(numbers) == 0:
        raise DataError(f"data.target: column {target!r} is constant ({numbers[0]:g}); "
                        "there is nothing to learn")
    return numbers


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A few rows as JSON-able records (NaN -> None), complete rows first."""
    complete = frame[frame.notna().all(axis=1)]
    rows = complete.head(2) if len(complete) >= 2 else frame.head(2)
    return [{k: (None if pd.isna(v) else v.item() if isinstance(v, np.generic) else v)
             for k, v in row.items()} for row in rows.to_dict(orient="records")]


class ScaledLoss(nn.Module):
    """A regression loss on values divided by the target's train-split spread.

    The network answers in the target's own units; the loss sees them standardised, so one
    learning rate (and huber's delta) suits a target in millimetres or in millions.
    """

    def __init__(self, loss: nn.Module, scale: float) -> None:
        super().__init__()
        self.loss, self.scale = loss, float(scale)

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs / self.scale, targets / self.scale)


def _input_frame(model_input: Any) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, (dict, list)):
        return pd.DataFrame(model_input)
    raise DataError(f"input: expected a DataFrame of the feature columns (or records), got "
                    f"{type(model_input).__name__}")


def encode(frame: pd.DataFrame, meta: Mapping[str, Any], where: str) -> torch.Tensor:
    """Raw feature columns -> the network's input, through the model's fitted preprocessing."""
    columns = meta["columns"]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(map(repr, missing))} that the "
                        f"model needs; expected columns: {', '.join(map(str, columns))}")
    features = numeric_frame(frame[columns], meta["numeric"], where)
    numeric = list(meta["numeric"])
    if numeric:  # gaps are imputed as in training; an infinity cannot be
        finite(features[numeric].to_numpy(), numeric, allow_nan=True, where=where)
    with warnings.catch_warnings():  # unseen categories are expected, and handled
        warnings.filterwarnings("ignore", message="Found unknown categories")
        x = meta[PREPROCESSOR].transform(features)
    return torch.from_numpy(np.asarray(x, dtype=np.float32))


class TabularTask(ClassificationMixin, Task):
    """One table, one target column; an MLP predicts it from the other columns."""

    name = "tabular"
    default_source = "sklearn:breast_cancer"
    data_options = ("problem", "drop", "categorical", "encoding")
    family = "mlp"
    artifact_types = frozenset(f"{t.__module__}.{t.__qualname__}" for t in PREPROCESSOR_TYPES)

    def __init__(self, problem: str | None = None, n_classes: int = 0) -> None:
        self.problem = problem or "classification"  # unresolved: the default source's
        self.n_classes = n_classes

    @property
    def default_metric(self) -> str:  # type: ignore[override]
        return "val_" + next(iter(SCORES[self.problem]))

    def for_data(self, data: DataSpec) -> TabularTask:
        return TabularTask(*resolve_problem(data))

    def metrics(self, data: DataSpec) -> dict[str, Direction]:
        problem, n_classes = resolve_problem(data)
        extra = {"roc_auc": Direction.MAX} if problem == "classification" and n_classes == 2 else {}
        return logged_metrics({**SCORES[problem], **extra})

    def builtin_space(self) -> dict[str, Any]:
        return {
            "num_layers": {"quniform": [1, 4, 1]},
            "hidden_size": {"choice": [32, 64, 128, 256]},
            "activation": {"choice": ["relu", "gelu", "silu", "tanh", "leaky_relu"]},
            "dropout": {"uniform": [0.0, 0.5]},
            "norm": {"choice": ["none", "batch", "layer"]},
            "weight_init": {"choice": ["default", "xavier_uniform", "kaiming_uniform",
                                       "orthogonal"]},
            "learning_rate": {"loguniform": [1.0e-4, 3.0e-2]},
            "weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
            "optimizer": {"choice": [{"name": "adam"}, {"name": "adamw"},
                                     {"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
            "batch_size": {"choice": [32, 64, 128, 256]},
            "loss": {"choice": list(LOSSES[self.problem])},
        }

    def builtin_params(self) -> dict[str, Any]:
        return {"num_layers": 2, "hidden_size": 64, "activation": "relu", "dropout": 0.1,
                "norm": "batch", "weight_init": "default", "learning_rate": 3e-3,
                "weight_decay": 1e-4, "optimizer": "adam", "batch_size": 64,
                "loss": LOSSES[self.problem][0]}

    def load(self, data: DataSpec, seed: int) -> TaskData:
        problem, _ = resolve_problem(data)
        target = target_name(data)
        frame = read_table(data.source, encoding=encoding(data))
        require_column(list(frame.columns), target, data.source, "data.target")
        unlabelled = frame[target].isna()
        if unlabelled.any():
            log.warning("data.target: %d rows without a %r value dropped", unlabelled.sum(),
                        target)
            frame = frame[~unlabelled].reset_index(drop=True)
        if len(frame) < MIN_ROWS:
            raise DataError(f"data.source: {data.source!r} has {len(frame)} rows with a target "
                            f"value; at least {MIN_ROWS} are needed to train and validate")
        numeric, categorical, dropped = feature_columns(frame, target, data)
        columns = [c for c in frame.columns if c in numeric or c in categorical]
        features = numeric_frame(frame[columns], numeric, "data.source")
        meta: dict[str, Any] = {"problem": problem, "target": target, "columns": columns,
                                "numeric": numeric, "categorical": categorical,
                                "dropped": dropped, "source": data.source}
        if problem == "classification":
            codes, classes = encode_labels(classes_as_python(frame[target]), "data.target")
            try:
                train, val, test = stratified_split(len(frame), codes, data, seed)
            except ValueError:  # a class too rare to appear in every split
                train, val, test = _random_split(len(frame), data, seed)
            y = torch.from_numpy(codes)
            meta["classes"] = classes
        else:
            values = _regression_target(frame[target], target)
            train, val, test = _random_split(len(frame), data, seed)
            mean, std = float(values[train].mean()), float(values[train].std()) or 1.0
            y = torch.from_numpy(values.astype(np.float32)).unsqueeze(1)
            meta.update(target_mean=mean, target_std=std)
        preprocessor = make_preprocessor(numeric, categorical).fit(features.iloc[train])
        x = torch.from_numpy(np.asarray(preprocessor.transform(features), dtype=np.float32))
        meta["n_features"] = int(x.shape[1])
        meta["example"] = _records(frame.iloc[val][columns])
        digest = fingerprint_arrays(pd.util.hash_pandas_object(frame, index=False).to_numpy(),
                                    np.asarray([str(c) for c in frame.columns]))
        return TaskData(x[train], y[train], x[val], y[val], x[test], y[test], meta=meta,
                        fingerprint=digest, artifacts={PREPROCESSOR: preprocessor},
                        x_test_raw=frame.iloc[test][columns].reset_index(drop=True))

    def loss_rule(self) -> Rule:
        return OneOf.catalog(LOSSES_CATALOG, only=LOSSES[self.problem],
                             suits=f"a {self.problem} target")

    def describe_data(self, meta: Mapping[str, Any],
                      params: Params | None = None) -> TabularData:
        regression = meta["problem"] == "regression"
        return TabularData(features=int(meta["n_features"]),
                           classes=None if regression else len(meta["classes"]))

    def build_model(self, params: Params, meta: Mapping[str, Any]) -> nn.Module:
        """The family's network; a regression one answers in the target's units (it learns
        on standardised ones)."""
        model = super().build_model(params, meta)
        if meta["problem"] == "regression":
            model = nn.Sequential(model, Unstandardize(meta["target_mean"], meta["target_std"]))
        return model

    def make_loss(self, params: Params, data: TaskData) -> Callable[..., torch.Tensor]:
        problem = data.meta["problem"]
        name = params.get("loss", LOSSES[problem][0])
        if name not in LOSSES[problem]:
            raise SpecError(f"loss: {name!r} does not suit a {problem} target; allowed: "
                            f"{', '.join(LOSSES[problem])}")
        if problem == "regression":
            return ScaledLoss(make_loss(name), data.meta["target_std"])
        return make_loss(name)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor,
              meta: Mapping[str, Any]) -> dict[str, float]:
        if meta["problem"] == "classification":
            metrics = classification_metrics(outputs, targets)
            if len(meta["classes"]) == 2:
                metrics["roc_auc"] = binary_roc_auc(outputs, targets)
            return metrics
        return regression_metrics(outputs.detach().double().cpu().numpy(),
                                  targets.double().cpu().numpy())

    def input_example(self, data: TaskData) -> Any:
        return pd.DataFrame(data.meta["example"], columns=data.meta["columns"])

    def signature(self, data: TaskData) -> ModelSignature:
        # No input schema: MLflow's enforcement refuses ints for a double column and missing
        # values for a long one, which a user's table routinely has; predict checks columns.
        if data.meta["problem"] == "classification":
            return self.signature_for(None, data.meta)
        return ModelSignature(inputs=None, outputs=Schema([ColSpec("double", "prediction")]))

    def predict(self, model: nn.Module, meta: Mapping[str, Any], model_input: Any) -> pd.DataFrame:
        frame = _input_frame(model_input)
        not_empty(len(frame))
        with torch.no_grad():
            outputs = model(encode(frame, meta, "input"))
        if meta["problem"] == "classification":
            return self.labelled(outputs, meta)
        return pd.DataFrame({"prediction": outputs[:, 0].double().numpy()})

    def outputs_are_logits(self, meta: Mapping[str, Any]) -> bool:
        return bool(meta["problem"] == "classification")

    def holdout_inputs(self, data: TaskData, meta: Mapping[str, Any]) -> torch.Tensor:
        """The raw holdout rows encoded by ``meta``'s own fitted preprocessing (the champion
        of another search has its own); a model of another target or classes is refused."""
        if data.x_test_raw is None:
            return data.x_test
        for key in ("target", "problem", "classes"):
            if meta.get(key) != data.meta.get(key):
                raise DataError(f"holdout: the model was trained for {key} {meta.get(key)!r}, "
                                f"this data has {data.meta.get(key)!r}; they cannot be compared")
        return encode(data.x_test_raw, meta, "holdout")


TASKS.add("tabular", TabularTask())
