"""The user's table: reading it, telling classification from regression, preprocessing it.

Kept apart from the task so each piece reads on its own: ``read_table`` turns a source into a
DataFrame (a built-in, or a file read by ``mltune.data.io``), ``resolve_problem`` decides the
problem type from the target, ``feature_columns`` splits the features into numeric and
categorical ones, and ``make_preprocessor`` builds the scikit-learn transformer that is fitted
on the train split and shipped inside every served model (a skops file that may name only the
``PREPROCESSOR_TYPES``: anything else in it is refused when the model loads).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from mltune.core.errors import DataError, SpecError
from mltune.data import io
from mltune.spec.model import DataSpec
from mltune.spec.options import column_list, prefixed, string

log = logging.getLogger(__name__)

PROBLEMS = ("auto", "classification", "regression")
MAX_INTEGER_CLASSES = 20  # whole-number targets with at most this many values are classes
MAX_CATEGORIES = 50  # one-hot columns per categorical feature; rarer values share one
MIN_ROWS = 20
MISSING = "<missing>"  # a missing categorical value is a category of its own


@dataclass(frozen=True)
class Builtin:
    """A bundled scikit-learn data set as a DataFrame with a readable target column."""

    loader: str
    target: str
    label_names: bool  # map the integer target to the data set's own class names
    kwargs: tuple[tuple[str, Any], ...] = ()


BUILTINS = {
    "sklearn:breast_cancer": Builtin("load_breast_cancer", "diagnosis", label_names=True),
    # scaled=False: the raw values (age in years, bmi...), as a user's own table has them
    "sklearn:diabetes": Builtin("load_diabetes", "progression", label_names=False,
                                kwargs=(("scaled", False),)),
}


def _read_builtin(source: str) -> pd.DataFrame:
    import sklearn.datasets

    builtin = BUILTINS[source]
    bunch = getattr(sklearn.datasets, builtin.loader)(as_frame=True, **dict(builtin.kwargs))
    frame = bunch.frame.rename(columns={"target": builtin.target})
    if builtin.label_names:
        frame[builtin.target] = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    return frame


def read_table(source: str, columns: list[str] | None = None,
               encoding: str = "utf-8") -> pd.DataFrame:
    """The table of ``source`` (all columns, or only ``columns``): a built-in or a file."""
    if source in BUILTINS:
        frame = _read_builtin(source)
        return frame[columns] if columns is not None else frame
    if source.startswith("sklearn:"):
        raise DataError(f"data.source: {source!r} is not a built-in tabular data set; "
                        f"available: {', '.join(BUILTINS)}")
    return io.read_table(source, encoding=encoding, columns=columns, builtins=list(BUILTINS))


def column_names(source: str, encoding: str = "utf-8") -> list[str]:
    """The table's column names, without reading its rows."""
    if source.startswith("sklearn:"):
        return list(read_table(source).columns)
    return io.column_names(source, encoding=encoding, builtins=list(BUILTINS))


def encoding(data: DataSpec) -> str:
    """``data.encoding``: how the text of a CSV file is decoded."""
    return string(prefixed(data.options, "data"), "data.encoding", "utf-8")


def target_name(data: DataSpec) -> str:
    """The target column: ``data.target``, or the built-in's own."""
    if data.target:
        return data.target
    if data.source in BUILTINS:
        return BUILTINS[data.source].target
    raise SpecError(f"data.target: required for {data.source!r}; name the column to predict")


def require_column(columns: list[Any], name: str, source: str, field: str) -> None:
    """A column the spec names must exist; the error lists the ones there are."""
    if name not in columns:
        shown = ", ".join(map(str, columns[:30])) + (", ..." if len(columns) > 30 else "")
        raise DataError(f"{field}: no column {name!r} in {source!r}; columns: {shown}")


def read_target(data: DataSpec) -> pd.Series:
    """Only the target column of the table."""
    target = target_name(data)
    require_column(column_names(data.source, encoding(data)), target, data.source, "data.target")
    return read_table(data.source, [target], encoding(data))[target]


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (so messages read ``3``, not ``np.int64(3)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _whole_numbers(values: pd.Series) -> bool:
    numbers = values.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))


def infer_problem(target: pd.Series) -> str:
    """Strings, booleans and small sets of whole numbers are classes; other numbers are values."""
    values = target.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "classification"
    if _whole_numbers(values) and values.nunique() <= MAX_INTEGER_CLASSES:
        return "classification"
    return "regression"


def _problem_option(data: DataSpec) -> str:
    return string(prefixed(data.options, "data"), "data.problem", "auto", PROBLEMS)


def _stamp(source: str) -> tuple[str, int, int]:
    """(absolute path, mtime, size) of a file source: a changed file is not served from cache."""
    try:
        stat = os.stat(source)
    except OSError:
        return (source, 0, 0)
    return (os.path.abspath(source), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _resolve(source: str, target: str | None, problem: str, text_encoding: str,
             stamp: tuple[str, int, int]) -> tuple[str, int]:
    data = DataSpec(source=source, target=target, options={"encoding": text_encoding})
    values = read_target(data).dropna()
    if problem == "auto":
        problem = infer_problem(values)
    if problem == "regression":
        return problem, 0
    classes = int(values.nunique())
    if classes < 2:
        only = plain(values.iloc[0]) if len(values) else None
        raise DataError(f"data.target: column {target_name(data)!r} has only one class "
                        f"({only!r}); classification needs at least 2")
    return problem, classes


def resolve_problem(data: DataSpec) -> tuple[str, int]:
    """(problem type, number of classes — 0 for regression) of the spec's data.

    Reads the target column only, and caches the answer per file version: the spec is
    validated (default metric, metric names) before the search loads the whole table.
    """
    return _resolve(data.source, data.target, _problem_option(data), encoding(data),
                    _stamp(data.source))


def classes_as_python(values: pd.Series) -> pd.Series:
    """Whole-number float labels (an integer column that pandas widened for NaN) as ints."""
    if pd.api.types.is_float_dtype(values) and _whole_numbers(values):
        return values.astype("int64")
    return values


def as_text(frame: Any) -> np.ndarray:
    """Categorical features as strings, whatever the input typed them as.

    ``1``, ``1.0`` and ``"1"`` are one category; a missing value is the category ``<missing>``.
    Used inside the fitted transformer, so training and serving agree by construction.
    """

    def text(value: Any) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return MISSING
        if isinstance(value, (float, np.floating)) and math.isfinite(value) \
                and float(value).is_integer():
            return str(int(value))
        return str(value)

    return np.vectorize(text, otypes=[object])(pd.DataFrame(frame).to_numpy(dtype=object))


def feature_columns(frame: pd.DataFrame, target: str, data: DataSpec
                    ) -> tuple[list[str], list[str], dict[str, str]]:
    """(numeric, categorical, dropped -> why) feature columns of the table.

    All-missing and constant columns carry nothing to learn from: they are dropped with a
    warning, and the served model does not ask for them.
    """
    drop = _column_list(data, "drop", frame)
    forced = _column_list(data, "categorical", frame)
    numeric, categorical, dropped = [], [], {}
    for name in frame.columns:
        if name == target or name in drop:
            continue
        column = frame[name]
        if column.isna().all():
            dropped[name] = "all values missing"
        elif column.nunique(dropna=False) == 1:
            dropped[name] = f"constant ({plain(column.iloc[0])!r})"
        elif name in forced or pd.api.types.is_bool_dtype(column) \
                or not pd.api.types.is_numeric_dtype(column):
            categorical.append(name)
        else:
            numeric.append(name)
    for name, why in dropped.items():
        log.warning("data: column %r dropped: %s", name, why)
    if not numeric and not categorical:
        raise DataError(f"data.source: {data.source!r} has no usable feature column besides "
                        f"the target {target!r}" + (f" (dropped: {', '.join(dropped)})"
                                                    if dropped else ""))
    return numeric, categorical, dropped


def _column_list(data: DataSpec, key: str, frame: pd.DataFrame) -> list[str]:
    value = column_list(prefixed(data.options, "data"), f"data.{key}")
    for name in value:
        require_column(list(frame.columns), name, data.source, f"data.{key}")
    return value


def make_preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Impute + scale numbers; one-hot encode categories, unseen ones handled at serving.

    A category never seen in training joins the "infrequent" column when the feature has one
    (more than ``MAX_CATEGORIES`` values), and is otherwise all zeros.
    """
    parts = []
    if numeric:
        parts.append(("numeric", make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric))
    if categorical:
        parts.append(("categorical", make_pipeline(
            FunctionTransformer(as_text, feature_names_out="one-to-one"),
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=MAX_CATEGORIES,
                          sparse_output=False, dtype=np.float32)), categorical))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


# Every type a fitted ``make_preprocessor`` is made of: what its skops file may name
PREPROCESSOR_TYPES = (ColumnTransformer, Pipeline, SimpleImputer, MissingIndicator,
                      StandardScaler, FunctionTransformer, OneHotEncoder, as_text)


def numeric_frame(frame: pd.DataFrame, numeric: list[str], where: str) -> pd.DataFrame:
    """``frame`` with its numeric columns as floats; text that is not a number is refused."""
    frame = frame.copy()
    for name in numeric:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            frame[name] = column.astype("float64")
            continue
        converted = pd.to_numeric(column, errors="coerce")
        bad = converted.isna() & column.notna()
        if bad.any():
            raise DataError(f"{where}: column {name!r} must hold numbers; got "
                            f"{column[bad].iloc[0]!r}")
        frame[name] = converted.astype("float64")
    return frame
