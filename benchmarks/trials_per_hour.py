"""Trials per hour of the digits search, and the share of its wall time spent training.

The default digits search (TPE, the default space) with a fixed budget, on a local sqlite
store; then the same configs trained again with no tracking at all. The ratio training/wall
is the share of the search that went into training (1.0: tracking, registration and the
report cost nothing).

Run: python benchmarks/trials_per_hour.py [--trials 20] [--epochs 5] [--device auto]
The last line is JSON with trials_per_hour and training_share.
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
from tracking_overhead import pure_training

import mltune
from mltune.tasks import get_task
from mltune.training.device import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'tph.db'}")
    spec = mltune.load_spec(None, {"max_evals": args.trials, "epochs": args.epochs,
                                   "seed": 0, "device": args.device})
    mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 1,
                                        "device": args.device}))  # warm-up: imports, CUDA
    started = time.perf_counter()
    result = mltune.tune(spec)
    wall = time.perf_counter() - started
    data = get_task(spec.task).load(spec.data, spec.seed).to(resolve_device(spec.device))
    training = pure_training(spec, [(t.number, t.params) for t in result.trials], data)
    per_hour = len(result.trials) * 3600 / wall
    print(f"digits search: {len(result.trials)} trials x {args.epochs} epochs on "
          f"{resolve_device(spec.device)} in {wall:.1f} s -> {per_hour:.0f} trials/hour "
          f"(best val_accuracy {result.best_value:.4f})")
    print(f"training alone: {training:.1f} s; share of the wall time training: "
          f"{training / wall:.2f}")
    print(json.dumps({"trials_per_hour": round(per_hour),
                      "training_share": round(training / wall, 3), "wall_s": round(wall, 2),
                      "training_s": round(training, 2),
                      "trials": len(result.trials), "epochs": args.epochs}))


if __name__ == "__main__":
    main()
