"""mltune: hyperparameter tuning of PyTorch models with Hyperopt, every trial on record in MLflow.

    import mltune
    result = mltune.tune(mltune.load_spec("examples/digits.yaml", {"max_evals": 10}))

The package root is the public API; importing it also registers the built-in tasks, model
families, samplers, schedulers and backends in their catalogs. No module of the package imports
the root.
"""

from __future__ import annotations

from mltune import backends, tasks  # noqa: F401  (register the built-in tasks and backends)
from mltune.core._version import __version__
from mltune.core.errors import (
    DataError,
    MltuneError,
    SearchError,
    SearchInterrupted,
    SpecError,
    TrackingLost,
    TrackingServerError,
)
from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.models.description import (
    DataDescription,
    ImageData,
    TabularData,
    TextData,
    TimeseriesData,
)
from mltune.registry.gate import Decision, promote, rollback
from mltune.search import samplers, schedulers  # noqa: F401  (register the built-ins)
from mltune.search.history.result import SearchResult
from mltune.search.loop import train_once, tune
from mltune.spec.build import build_spec, load_spec
from mltune.spec.model import DataSpec, SearchSpec

__all__ = [
    "DataDescription",
    "DataError",
    "DataSpec",
    "Decision",
    "Direction",
    "ImageData",
    "MltuneError",
    "SearchError",
    "SearchInterrupted",
    "SearchResult",
    "SearchSpec",
    "SpecError",
    "TabularData",
    "TextData",
    "TimeseriesData",
    "TrackingLost",
    "TrackingServerError",
    "TrialOutcome",
    "TrialStatus",
    "__version__",
    "build_spec",
    "load_spec",
    "promote",
    "rollback",
    "train_once",
    "tune",
]
