"""The tabular task's two network families at equal wall time: ``model: mlp`` against
``model: tabm`` (TabM, an ensemble of k MLPs inside one network).

For each table, each seed and each family (interleaved: the families of one seed run one after
the other, so a busy machine slows both alike), one search through the public API
(``mltune.tune``, full tracking, its own sqlite store in a temporary folder) with the family's
default space, ``--epochs`` per trial and ``stop: {time_budget_s: --budget-s}`` (``max_evals``
out of reach): the budget is checked when a trial ends, and a trial still training at the
deadline stops at the end of its epoch, so a search ends at most one epoch past it (``search
s`` shows how far). A seed fixes the split, the sampler's draws and the initial weights: both
families see the same splits (paired seeds).

Tables (``--tables``):

- ``breast_cancer``: scikit-learn's bundled table (569 rows, 30 numbers, 2 classes);
- ``synthetic``: the seeded ``make_classification`` table of ``anytime.py`` (``--rows``
  rows, 20 features, 5% of the labels flipped);
- ``classes``: a larger generated classification table (``--large-rows`` rows): 3 classes of
  3 clusters each over 20 numbers, plus two text columns (one a binned informative number,
  one noise), 3% of the labels flipped;
- ``values``: a larger generated regression table (``--large-rows`` rows): Friedman's #1
  (sines, squares and interactions of 5 of 10 numbers, noise 1.0) plus a text column that
  switches in two more terms; scored by R² (``metric: val_r2``) so that its points read like
  accuracy's.

Modes (``--modes``): ``mlp`` and ``tabm``, each with the task's defaults for the family;
``tabm-small``: TabM with a space for a small CPU budget (``n_blocks`` 1-3, ``d_block``
64-256, k = 16; its first trial 2 x 128 rather than the task's default 3 x 512), to see
whether a cheaper TabM pays where the paper's sizes are too slow.

Reported per table and mode, as the mean over seeds with the min..max beside it: ``best val``
(the best finished trial's validation metric), ``test`` (the registered best on the holdout
split, as the promotion gate scores the served model: ``decision.challenger_score``),
``trials`` (ended: finished, pruned or failed), ``epochs/trial`` (epochs trained over trials
ended: below ``--epochs``, trials were pruned or cut by the budget), ``s/trial`` (search
seconds over trials ended) and ``search s`` (from the clock's start, when the data has
loaded, to the last trial's end). Then, per table, TabM's holdout minus the MLP's, paired by
seed, in points (x100), beside the MLP's own spread over the seeds (max - min, points).

Run: python benchmarks/tabular_families.py [--budget-s 90] [--seeds 3] [--epochs 20]
     [--tables breast_cancer,synthetic,classes,values] [--modes mlp,tabm] [--rows 5000]
     [--large-rows 20000] [--threads 0] [--markdown PATH]
The tables print as text (and as markdown to PATH when given); the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from search_common import markdown_table, quiet, spread, synthetic_csv, text_table, warm_up

MAX_EVALS = 10_000  # out of reach: the time budget ends each search
TABLES = ("breast_cancer", "synthetic", "classes", "values")
MODES: dict[str, dict[str, Any]] = {
    "mlp": {"model": "mlp"},
    "tabm": {"model": "tabm"},
    # its first trial inside its space (the task's defaults, 3 x 512, are not)
    "tabm-small": {"model": "tabm", "space": {"k": 16, "n_blocks": {"quniform": [1, 3, 1]},
                                              "d_block": {"quniform": [64, 256, 16]}},
                   "start": [{"n_blocks": 2, "d_block": 128}]},
}


@dataclass
class Run:
    """One search of one mode, table and seed."""

    table: str
    mode: str
    seed: int
    metric: str
    val: float = math.nan
    test: float = math.nan
    trials: int = 0
    finished: int = 0
    epochs: int = 0  # epochs trained, all trials together
    search_s: float = 0.0
    error: str | None = None


def classes_csv(folder: Path, rows: int) -> str:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=20, n_informative=10, n_redundant=4,
                               n_classes=3, n_clusters_per_class=3, flip_y=0.03,
                               random_state=1)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    frame["segment"] = pd.cut(x[:, 0], 5, labels=list("abcde")).astype(str)
    frame["region"] = np.random.default_rng(1).choice(["north", "south", "east", "west"], rows)
    frame["label"] = np.array(["low", "mid", "high"])[y]
    path = folder / f"classes_{rows}.csv"
    frame.to_csv(path, index=False)
    return str(path)


def values_csv(folder: Path, rows: int) -> str:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=rows, n_features=10, noise=1.0, random_state=2)
    kind = np.random.default_rng(2).choice(["a", "b", "c"], rows)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    frame["kind"] = kind
    frame["target"] = y + np.select([kind == "b", kind == "c"], [2 * x[:, 5], -2 * x[:, 6]], 0.0)
    path = folder / f"values_{rows}.csv"
    frame.to_csv(path, index=False)
    return str(path)


def base_spec(table: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    if table == "breast_cancer":
        return {"task": "tabular", "data": {"source": "sklearn:breast_cancer"}}
    if table == "synthetic":
        return {"task": "tabular",
                "data": {"source": synthetic_csv(folder, args.rows, 0.05), "target": "label"}}
    if table == "classes":
        return {"task": "tabular",
                "data": {"source": classes_csv(folder, args.large_rows), "target": "label"}}
    return {"task": "tabular", "metric": "val_r2",
            "data": {"source": values_csv(folder, args.large_rows), "target": "target"}}


def run_search(table: str, mode: str, seed: int, base: dict[str, Any],
               args: argparse.Namespace, folder: Path) -> Run:
    import mlflow

    import mltune
    from mltune.core.terms import TrialStatus

    name = f"families-{table}-{mode}-{seed}"
    mlflow.set_tracking_uri(f"sqlite:///{folder / name}.db")
    spec = mltune.load_spec(None, {**base, **MODES[mode], "seed": seed, "epochs": args.epochs,
                                   "max_evals": MAX_EVALS,
                                   "stop": {"time_budget_s": args.budget_s},
                                   "name": name, "registered_model": name})
    run = Run(table, mode, seed, spec.metric)
    clock: dict[str, float] = {}

    def started() -> None:
        clock["t0"] = time.monotonic()

    def progress(outcome: Any, best: float | None) -> None:
        clock["last"] = time.monotonic()
        run.finished += outcome.status == TrialStatus.FINISHED

    try:
        result = mltune.tune(spec, progress=progress, on_start=started)
    except mltune.MltuneError as exc:
        run.error = str(exc)
        return run
    run.val = result.best_value
    run.test = result.decision.challenger_score if result.decision else math.nan
    run.error = result.gate_error
    run.trials = len(result.trials)
    run.epochs = result.epochs_trained
    run.search_s = clock.get("last", clock["t0"]) - clock["t0"]
    return run


def summary(runs: list[Run], table: str, mode: str) -> dict[str, Any]:
    done = [r for r in runs if r.table == table and r.mode == mode]
    ok = [r for r in done if r.error is None]
    per_trial = [r.search_s / r.trials for r in ok if r.trials]
    return {"table": table, "mode": mode, "metric": done[0].metric if done else "",
            "val": spread([r.val for r in ok]), "test": spread([r.test for r in ok]),
            "trials": spread([float(r.trials) for r in ok], 1),
            "per_trial": spread(per_trial, 2),
            "epochs": spread([r.epochs / r.trials for r in ok if r.trials], 1),
            "search_s": spread([r.search_s for r in ok], 1),
            "errors": len(done) - len(ok)}


def versus(runs: list[Run], table: str, mode: str, base: str = "mlp") -> dict[str, Any]:
    """``mode``'s holdout minus ``base``'s, paired by seed, in points; ``base``'s own spread."""
    ours = {r.seed: r.test for r in runs if r.table == table and r.mode == mode}
    theirs = {r.seed: r.test for r in runs if r.table == table and r.mode == base}
    seeds = sorted(s for s in ours if s in theirs and not math.isnan(ours[s] + theirs[s]))
    if not seeds:
        return {"table": table, "mode": mode, "metric": "", "diff": "n/a", "wins": "n/a",
                "base_spread": "n/a", "mean": math.nan}
    diffs = [100 * (ours[s] - theirs[s]) for s in seeds]
    base_values = [100 * theirs[s] for s in seeds]
    metric = next(r.metric for r in runs if r.table == table)
    sign = -1 if metric in ("val_rmse", "val_mae", "val_loss") else 1
    return {"table": table, "mode": mode, "metric": metric,
            "diff": spread([sign * d for d in diffs], 2),
            "base_spread": f"{max(base_values) - min(base_values):.2f}",
            "wins": f"{sum(sign * d > 0 for d in diffs)}/{len(diffs)}",
            "mean": statistics.fmean(sign * d for d in diffs)}


COLUMNS = [("table", "table"), ("mode", "model"), ("metric", "metric"), ("val", "best val"),
           ("test", "holdout"),
           ("trials", "trials"), ("epochs", "epochs/trial"), ("per_trial", "s/trial"),
           ("search_s", "search s")]
VERSUS = [("table", "table"), ("mode", "model"), ("metric", "metric"),
          ("diff", "holdout vs mlp, points"),
          ("wins", "seeds ahead"), ("base_spread", "mlp's spread over seeds, points")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=90.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--modes", default="mlp,tabm")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--large-rows", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    quiet()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tables = [t for t in args.tables.split(",") if t]
    modes = [m for m in args.modes.split(",") if m]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="mltune-families-") as tmp:
        folder = Path(tmp)
        warm_up(folder, "cpu")
        for table in tables:
            base = base_spec(table, folder, args)
            for seed in range(args.seeds):
                for mode in modes:
                    run = run_search(table, mode, seed, base, args, folder)
                    runs.append(run)
                    print(f"  {table} {mode} seed {seed}: val {run.val:.4f} test {run.test:.4f} "
                          f"trials {run.trials} ({run.finished} finished, {run.epochs} "
                          f"epochs) in "
                          f"{run.search_s:.0f} s{' ERROR ' + run.error if run.error else ''}",
                          flush=True)
    rows = [summary(runs, t, m) for t in tables for m in modes]
    print(f"\n{args.budget_s:g} s per search, {args.epochs} epochs a trial, {args.seeds} seeds, "
          f"torch threads {torch.get_num_threads()}\n")
    print(text_table(rows, COLUMNS))
    pairs = [versus(runs, t, m) for t in tables for m in modes if m != "mlp"]
    if "mlp" in modes and pairs:
        print()
        print(text_table(pairs, VERSUS))
    if args.markdown:
        text = markdown_table(rows, COLUMNS)
        if "mlp" in modes and pairs:
            text += "\n\n" + markdown_table(pairs, VERSUS)
        Path(args.markdown).write_text(text + "\n")
    print(json.dumps({"args": vars(args), "runs": [asdict(r) for r in runs]}))


if __name__ == "__main__":
    main()
