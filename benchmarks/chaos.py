"""Chaos: one search killed with SIGKILL at seeded random moments, resumed after each kill.

A packed digits CNN search (4 epochs a trial, into a registered model that already has a
champion) is killed ``--kills`` times at random moments of its attempts (start-up and data
loading, training, background model logging, registration, the gate, the report) and resumed
each time, then run to its end. Printed: when each kill landed and how many trials had
finished by then, what the record holds afterwards (trials finished, duplicate trial numbers,
runs left RUNNING, versions registered for the search, whether champion is the better model)
and the time the kills cost.

Run: python benchmarks/chaos.py [--kills 10] [--trials 16] [--seed 0]
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chaos import inspect, kill_and_resume  # noqa: E402  (the tests' chaos harness)

import mltune  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mltune-chaos-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    os.chdir(folder)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = "chaos"
    mltune.tune(mltune.load_spec(None, {"task": "image", "max_evals": 1, "epochs": 1,
                                        "registered_model": model, "name": "before"}))
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    search = ["--set", "task=image", "--max-evals", str(args.trials), "--epochs", "4",
              "--pack", "2", "--seed", str(args.seed), "--registered-model", model]
    client = MlflowClient(uri, uri)
    started = time.monotonic()
    chaos = kill_and_resume(client, search, "chaos", env, kills=args.kills, seed=args.seed,
                            window=(2.0, 14.0))
    total = time.monotonic() - started
    print(f"kills at (s into the attempt): {chaos.kills}")
    print(f"trials finished at each kill: {chaos.finished_at_kill}")
    print(f"final attempt: exit {chaos.returncode} in {chaos.seconds_final:.1f} s")
    if chaos.parent_run_id is None:
        print("no search run was ever created")
        return
    found = inspect(client, chaos.parent_run_id, model)
    print(f"trials finished {found.finished} of {args.trials}, duplicate numbers "
          f"{found.duplicates}, runs left RUNNING {found.running}, versions registered for "
          f"the search {found.versions}, champion the better model: {found.champion_is_better}")
    print(f"time lost to the {len(chaos.kills)} kills: {chaos.seconds_lost:.1f} s of "
          f"{total:.1f} s in all")
    print(json.dumps({"kills": len(chaos.kills), "trials": args.trials, **asdict(found),
                      "seconds_lost": round(chaos.seconds_lost, 1),
                      "seconds_total": round(total, 1), "exit": chaos.returncode}))


if __name__ == "__main__":
    main()
