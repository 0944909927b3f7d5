"""mltune: hyperparameter tuning of PyTorch models with Hyperopt, every trial on record in MLflow.

    import mltune
    result = mltune.tune(mltune.load_spec("examples/digits.yaml", {"max_evals": 10}))
"""

from __future__ import annotations

__version__ = "0.1.0"

from mltune.errors import (  # noqa: E402
    DataError,
    MltuneError,
    SearchError,
    SearchInterrupted,
    SpecError,
)
from mltune.outcome import SearchResult, TrialOutcome  # noqa: E402
from mltune.promote import promote, rollback  # noqa: E402
from mltune.search import train_once, tune  # noqa: E402
from mltune.spec import DataSpec, SearchSpec, load_spec  # noqa: E402

__all__ = [
    "DataError",
    "DataSpec",
    "MltuneError",
    "SearchError",
    "SearchInterrupted",
    "SearchResult",
    "SearchSpec",
    "SpecError",
    "TrialOutcome",
    "__version__",
    "load_spec",
    "promote",
    "rollback",
    "train_once",
    "tune",
]
