"""What the searches-in-a-budget benchmarks (``anytime.py``, ``selection.py``) share: quiet
logs, a warm-up search, the seeded synthetic table, ``mean [min..max]`` cells and the tables.

Imported by those scripts as a sibling module (``python benchmarks/anytime.py`` puts this
folder first on ``sys.path``).
"""

from __future__ import annotations

import logging
import math
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Columns = Sequence[tuple[str, str]]  # (row key, header; ``{val}``/``{test}``: the metrics)


def quiet() -> None:
    import mlflow  # noqa: F401  (its import sets its loggers' levels: quieten them after)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.ERROR)
    logging.getLogger("mltune").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")


def warm_up(folder: Path, device: str) -> None:
    """One tiny search first: imports and first-call costs are no mode's."""
    import mlflow

    import mltune

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'warm-up'}.db")
    mltune.tune(mltune.load_spec(None, {"task": "tabular", "max_evals": 1, "epochs": 1,
                                        "device": device, "name": "warm-up",
                                        "registered_model": "warm-up"}))


def synthetic_csv(folder: Path, rows: int, flip_y: float) -> str:
    """A seeded ``make_classification`` table (20 features, 10 informative, 2 classes;
    ``flip_y``: the share of labels drawn at random), written as a CSV with target
    ``label``."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=20, n_informative=10,
                               n_redundant=4, flip_y=flip_y, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["label"] = y
    path = folder / f"synthetic_{rows}.csv"
    frame.to_csv(path, index=False)
    return str(path)


def spread(values: list[float], digits: int = 4) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    mean = statistics.fmean(finite)
    if len(finite) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{min(finite):.{digits}f}..{max(finite):.{digits}f}]"


def headers(rows: list[dict[str, Any]], columns: Columns) -> list[str]:
    from mltune.core.terms import holdout_metric

    metric = rows[0]["metric"]
    return [h.format(val=metric, test=holdout_metric(metric)) for _, h in columns]


def text_table(rows: list[dict[str, Any]], columns: Columns) -> str:
    cells = [headers(rows, columns)] + [[str(r[k]) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     for row in cells)


def markdown_table(rows: list[dict[str, Any]], columns: Columns) -> str:
    lines = ["| " + " | ".join(headers(rows, columns)) + " |",
             "|---|" + "---:|" * (len(columns) - 1)]
    lines += ["| " + " | ".join(str(r[k]) for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines)
