"""Writers: how many searches at once the default local sqlite store takes.

For each count N (``--writers 2 4 8``), N ``mltune tune`` processes start together on one fresh
sqlite file, each a tabular search (``--trials`` trials of ``--epochs`` epochs, unpacked so
every trial is its own run and its own stream of writes). Printed per N: searches that
finished, trials finished of those expected, metric points stored of those expected, "database
is locked" lines in the processes' output, runs left RUNNING, and the wall time against one
search alone (N searches on 2 cores cannot be N times faster: the figure shows where the store,
not the CPU, becomes the limit).

Run: python benchmarks/writers.py [--writers 2 4 8] [--trials 6] [--epochs 10]
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

METRICS = ("train_loss", "val_loss", "val_accuracy", "val_f1_macro", "val_roc_auc")


def run_writers(count: int, trials: int, epochs: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"mltune-writers-{count}-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "mltune", "tune", "--set", "task=tabular",
             "--max-evals", str(trials), "--epochs", str(epochs), "--pack", "1",
             "--seed", str(i), "--name", f"writer-{i}", "--registered-model", f"writer-{i}"],
            env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in range(count)]
    errors = [p.communicate(timeout=3600)[1] for p in processes]
    seconds = time.monotonic() - started
    client = MlflowClient(uri, uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=50000)
    trial_runs = [r for r in runs if r.data.tags.get("mltune.role") == "trial"]
    points = sum(len(client.get_metric_history(r.info.run_id, m))
                 for r in trial_runs for m in METRICS)
    return {
        "writers": count,
        "searches_ok": sum(p.returncode == 0 for p in processes),
        "trials_finished": sum(r.info.status == "FINISHED" for r in trial_runs),
        "trials_expected": count * trials,
        "metric_points": points,
        "metric_points_expected": count * trials * epochs * len(METRICS),
        "locked_lines": sum(e.count("database is locked") for e in errors),
        "running_left": sum(r.info.status == "RUNNING" for r in runs),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    alone = run_writers(1, args.trials, args.epochs)
    rows = [alone] + [run_writers(n, args.trials, args.epochs) for n in args.writers]
    print(f"{'writers':>7} {'ok':>4} {'trials':>9} {'metric points':>15} {'locked':>6} "
          f"{'running':>7} {'seconds':>8} {'x one search':>12}")
    for row in rows:
        print(f"{row['writers']:>7} {row['searches_ok']:>4} "
              f"{row['trials_finished']:>4}/{row['trials_expected']:<4} "
              f"{row['metric_points']:>7}/{row['metric_points_expected']:<7} "
              f"{row['locked_lines']:>6} {row['running_left']:>7} {row['seconds']:>8} "
              f"{row['seconds'] / alone['seconds']:>12.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
