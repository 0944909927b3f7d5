"""Wall time of one fixed budget on the ray backend with parallelism 1 and 2, side by side.

The same random-search configs (algo rand, one seed: the samples do not depend on which trials
finished first, so both runs train the very same networks) run on a local Ray that each search
starts and stops itself, one CPU and one torch thread per trial. The local backend runs the
same budget as a baseline: Ray's fixed cost (start, worker processes) shows against it.

Run: python benchmarks/ray_parallel.py [--trials 8] [--epochs 2]
The last line is JSON.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per trial, inherited by workers

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import mlflow  # noqa: E402
import torch  # noqa: E402

import mltune  # noqa: E402

RUNS = {"local": {"backend": "local", "parallelism": 1},
        "ray p=1": {"backend": "ray", "parallelism": 1},
        "ray p=2": {"backend": "ray", "parallelism": 2}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'ray_parallel.db'}")
    rows = {}
    for name, backend in RUNS.items():
        spec = mltune.load_spec(None, {"max_evals": args.trials, "epochs": args.epochs,
                                       "algo": "rand", "seed": 0, "device": "cpu",
                                       "cpus_per_trial": 1, "name": f"ray-{name}",
                                       "registered_model": "bench-ray", **backend})
        started = time.perf_counter()
        result = mltune.tune(spec)
        wall = time.perf_counter() - started
        rows[name] = {"wall_s": round(wall, 1), "finished": result.finished,
                      "trial_s": round(sum(t.seconds for t in result.trials), 1),
                      "best_val_accuracy": round(result.best_value, 4)}
    ratio = rows["ray p=1"]["wall_s"] / rows["ray p=2"]["wall_s"]
    print(f"{args.trials} trials x {args.epochs} epochs, digits CNN, {os.cpu_count()} CPUs")
    print(f"{'run':10}{'wall s':>9}{'sum of trials s':>17}{'finished':>10}{'best val_acc':>14}")
    for name, row in rows.items():
        print(f"{name:10}{row['wall_s']:9.1f}{row['trial_s']:17.1f}{row['finished']:10d}"
              f"{row['best_val_accuracy']:14.4f}")
    print(f"speed-up of parallelism 2 over 1 on Ray: {ratio:.2f}x")
    print(json.dumps({"trials": args.trials, "epochs": args.epochs, "cpus": os.cpu_count(),
                      "runs": rows, "speedup_p2_over_p1": round(ratio, 2)}))


if __name__ == "__main__":
    main()
