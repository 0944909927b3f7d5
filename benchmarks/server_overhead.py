"""Tracking overhead per trial against a real ``mlflow server`` on 127.0.0.1, side by side.

The same measurement as ``tracking_overhead.py`` (search wall time minus the pure training time
of the same configs, per trial), but every call goes over HTTP to a server this script starts
(sqlite backend, proxied artifacts), as it does for a team. mltune against MLflow's example
pattern (one ``log_metric`` per metric per epoch, ``mlflow.pytorch.log_model`` with inferred
requirements).

Run: python benchmarks/server_overhead.py [--trials 4] [--epochs 2] [--repeat 2]
(the fastest of ``--repeat`` searches and of as many pure trainings)
The last line is JSON with mltune_s_per_trial and baseline_s_per_trial.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import mlflow
from tracking_overhead import baseline_search, pure_training, setup

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import MlflowServer  # noqa: E402  (the tests' real-server helper)

import mltune


def main() -> None:
    args, workdir, spec, data = setup(__doc__, repeat=2)
    server = MlflowServer(workdir).start()
    try:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("mltune")
        mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 1}))  # warm imports
        walls, in_trial = [], []  # the fastest of --repeat searches (same seed, same configs)
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = mltune.tune(spec)
            walls.append(time.perf_counter() - started)
            in_trial.append(sum(t.seconds for t in result.trials))
        mltune_wall, in_trials = min(walls), min(in_trial)
        configs = [(t.number, t.params) for t in result.trials]
        mlflow.set_experiment("baseline")
        baseline_wall = baseline_search(spec, configs, data)
    finally:
        server.stop()
    pure = min(pure_training(spec, configs, data) for _ in range(args.repeat))

    trials = len(configs)
    fixed = mltune_wall - in_trials  # once per search: registration, gate, report, drain
    mltune_trial = (in_trials - pure) / trials
    mltune_per = (mltune_wall - pure) / trials
    baseline_per = (baseline_wall - pure) / trials
    print(f"trials={trials} epochs={args.epochs} store=mlflow server on 127.0.0.1 "
          "(sqlite backend, proxied artifacts)")
    print(f"{'':10}{'wall s':>10}{'training s':>12}{'overhead s/trial':>18}")
    print(f"{'mltune':10}{mltune_wall:10.2f}{pure:12.2f}{mltune_per:18.3f}")
    print(f"{'baseline':10}{baseline_wall:10.2f}{pure:12.2f}{baseline_per:18.3f}")
    print(f"ratio mltune/baseline = {mltune_per / baseline_per:.3f}")
    print(f"mltune inside the trials: {mltune_trial:.3f} s/trial of tracking; once per search "
          f"(registration, promotion gate, report, last model upload): {fixed:.2f} s")
    print(json.dumps({"mltune_s_per_trial": round(mltune_per, 4),
                      "mltune_in_trial_s": round(mltune_trial, 4),
                      "mltune_search_fixed_s": round(fixed, 2),
                      "baseline_s_per_trial": round(baseline_per, 4),
                      "ratio": round(mltune_per / baseline_per, 4), "trials": trials}))


if __name__ == "__main__":
    main()
