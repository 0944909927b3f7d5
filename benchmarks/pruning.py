"""Epochs run, wall time and best metric with and without pruning, side by side, on digits.

The same search (the default sampler, one seed, the same number of trials, packs refilled as
members end) runs once per rule: none, median, ASHA and Hyperband. Pruning should run markedly
fewer epochs, and with refill take markedly less wall time, for (about) the same best metric.
The configs are not the same across rules: the sampler learns from what each rule measured.

Run: python benchmarks/pruning.py [--trials 20] [--epochs 8]
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path

import mlflow

import mltune

RULES = {
    "none": {"rule": "none"},
    "median": {"rule": "median", "warmup_trials": 3, "warmup_epochs": 1},
    "asha": {"rule": "asha", "min_epochs": 1, "eta": 3},
    "hyperband": {"rule": "hyperband", "min_epochs": 1, "eta": 3},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    folder = Path(tempfile.mkdtemp())
    rows = {}
    for name, pruning in RULES.items():
        # a store of its own: no rule's search warm-starts from another's (warm_start: auto)
        mlflow.set_tracking_uri(f"sqlite:///{folder / name}.db")
        client = mlflow.MlflowClient()
        spec = mltune.load_spec(None, {"max_evals": args.trials, "epochs": args.epochs,
                                       "seed": 0, "device": "cpu",
                                       "name": f"pruning-{name}", "pruning": pruning,
                                       "registered_model": f"bench-{name}"})
        started = time.perf_counter()
        result = mltune.tune(spec)
        wall = time.perf_counter() - started
        epochs = sum(len(client.get_metric_history(t.run_id, "val_accuracy"))
                     for t in result.trials)
        occupancy = client.get_run(result.parent_run_id).data.metrics.get("pack_occupancy")
        rows[name] = {"epochs": epochs, "best_val_accuracy": round(result.best_value, 4),
                      "pruned": result.pruned, "wall_s": round(wall, 1),
                      "occupancy": None if occupancy is None else round(occupancy, 2)}
    full = rows["none"]["epochs"]
    wall = rows["none"]["wall_s"]
    print(f"{'rule':10}{'epochs':>8}{'of full':>9}{'pruned':>8}{'best val_acc':>14}{'wall s':>8}"
          f"{'of full':>9}{'occupancy':>11}")
    for name, row in rows.items():
        print(f"{name:10}{row['epochs']:8d}{row['epochs'] / full:9.2f}{row['pruned']:8d}"
              f"{row['best_val_accuracy']:14.4f}{row['wall_s']:8.1f}{row['wall_s'] / wall:9.2f}"
              f"{row['occupancy'] if row['occupancy'] is not None else 'n/a':>11}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
