"""Which hyperparameters mattered: a random forest fitted on the trials, impurity importance.

The forest regresses the search metric on the decoded params of the finished trials (the same
idea as Optuna's MeanDecreaseImpurity evaluator). Categorical params are ordinal-encoded —
a tree splits an ordinal code as well as one-hot columns, and one column per hyperparameter
keeps one importance per hyperparameter. A conditional param missing from a trial (momentum
when the optimizer is adam) gets a value below its range, i.e. its own branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.preprocessing import OrdinalEncoder

MIN_TRIALS = 3  # below this no estimate is shown, only the reason


@dataclass(frozen=True)
class Importance:
    """Importances summing to 1 (largest first), or the reason there are none."""

    values: pd.Series | None
    trials: int
    reason: str = ""


def encode(params: pd.DataFrame, categorical: list[str]) -> np.ndarray:
    """Params -> a numeric matrix: categoricals ordinal-encoded, missing values below range."""
    columns = []
    for name in params.columns:
        column = params[name]
        if name in categorical:
            encoder = OrdinalEncoder(encoded_missing_value=-1)
            values = encoder.fit_transform(column.astype(object).to_frame())[:, 0]
        else:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            present = values[~np.isnan(values)]
            below = present.min() - (np.ptp(present) + 1.0) if present.size else 0.0
            values = np.where(np.isnan(values), below, values)
        columns.append(values)
    return np.column_stack(columns) if columns else np.empty((len(params), 0))


def importance(params: pd.DataFrame, target: pd.Series, categorical: list[str],
               seed: int = 0) -> Importance:
    """Impurity importance of each param column for ``target`` (rows with a target only)."""
    keep = target.notna().to_numpy()
    params, target = params[keep], target[keep]
    trials = len(target)
    if trials < MIN_TRIALS:
        return Importance(None, trials, f"needs at least {MIN_TRIALS} finished trials, "
                                        f"this search has {trials}")
    if params.shape[1] == 0:
        return Importance(None, trials, "the search has no hyperparameters")
    if target.nunique() < 2:
        return Importance(None, trials, "every finished trial has the same metric value")
    forest = RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=1)
    forest.fit(encode(params, categorical), target.to_numpy(dtype=float))
    values = pd.Series(forest.feature_importances_, index=params.columns)
    if not values.sum() > 0:
        return Importance(None, trials, "no hyperparameter explains the metric's variation")
    return Importance((values / values.sum()).sort_values(ascending=False), trials)
