"""Tracking overhead per trial: mltune vs MLflow's own example pattern, side by side.

overhead per trial = (search wall time - pure training time of the same configs) / trials

- mltune: ``mltune.tune`` on digits (random search, so the configs are known afterwards),
  the model logged every trial, on a local sqlite store.
- baseline: MLflow's example pattern (examples/hyperparam/search_hyperopt.py): fluent nested
  runs, one ``log_metric`` call per metric per epoch, ``mlflow.pytorch.log_model`` with inferred
  requirements, same model, data and configs, on its own sqlite store.
- pure: the same configs trained with no tracking at all.

Run: python benchmarks/tracking_overhead.py [--trials 6] [--epochs 2]
The last line is JSON with mltune_s_per_trial and baseline_s_per_trial.
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
import mlflow.pytorch

import mltune
from mltune.data.splits import TaskData
from mltune.spec.model import SearchSpec
from mltune.tasks import get_task
from mltune.training.device import resolve_device, seed_everything
from mltune.training.fit import fit


def pure_training(spec, configs, data) -> float:
    task = get_task(spec.task)
    started = time.perf_counter()
    for number, params in configs:
        seed_everything(spec.seed + number)
        network = task.build_model(params, data.meta)
        fit(network, data, params, loss_fn=task.make_loss(params, data),
            score=lambda out, y: task.score(out, y, data.meta), epochs=spec.epochs,
            seed=spec.seed + number)
    return time.perf_counter() - started


def baseline_search(spec, configs, data) -> float:
    """MLflow's example pattern, as users copy it."""
    task = get_task(spec.task)
    example = data.x_val[:2].cpu().numpy()
    started = time.perf_counter()
    with mlflow.start_run(run_name="baseline"):
        for number, params in configs:
            with mlflow.start_run(nested=True):
                mlflow.log_params(params)
                seed_everything(spec.seed + number)
                network = task.build_model(params, data.meta)

                def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                    for key, value in metrics.items():
                        mlflow.log_metric(key, value, step=epoch)

                fit(network, data, params, loss_fn=task.make_loss(params, data),
                    score=lambda out, y: task.score(out, y, data.meta), epochs=spec.epochs,
                    seed=spec.seed + number, on_epoch=on_epoch)
                mlflow.pytorch.log_model(network, name="model", input_example=example)
    return time.perf_counter() - started


def setup(description: str) -> tuple[argparse.Namespace, Path, SearchSpec, TaskData]:
    """The overhead benchmarks' common start: arguments, a work folder, the random search's
    spec (so its configs can be trained again untracked) and its data."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    workdir = Path(tempfile.mkdtemp(prefix="mltune-bench-"))
    spec = mltune.load_spec(None, {"max_evals": args.trials, "epochs": args.epochs,
                                   "algo": "rand", "seed": 0, "device": "cpu"})
    data = get_task(spec.task).load(spec.data, spec.seed).to(resolve_device(spec.device))
    return args, workdir, spec, data


def main() -> None:
    args, workdir, spec, data = setup(__doc__)

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mltune.db'}")
    mlflow.MlflowClient().search_experiments()  # create the store outside the timing
    mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 1}))  # warm imports
    started = time.perf_counter()
    result = mltune.tune(spec)
    mltune_wall = time.perf_counter() - started
    configs = [(t.number, t.params) for t in result.trials]

    pure = pure_training(spec, configs, data)

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'baseline.db'}")
    mlflow.MlflowClient().search_experiments()
    baseline_wall = baseline_search(spec, configs, data)

    trials = len(configs)
    mltune_per = (mltune_wall - pure) / trials
    baseline_per = (baseline_wall - pure) / trials
    print(f"trials={trials} epochs={args.epochs} store=sqlite (local)")
    print(f"{'':10}{'wall s':>10}{'training s':>12}{'overhead s/trial':>18}")
    print(f"{'mltune':10}{mltune_wall:10.2f}{pure:12.2f}{mltune_per:18.3f}")
    print(f"{'baseline':10}{baseline_wall:10.2f}{pure:12.2f}{baseline_per:18.3f}")
    print(f"mltune overhead is {baseline_per / mltune_per:.1f}x smaller than the baseline's"
          if mltune_per > 0 else "mltune overhead below measurement noise")
    print(json.dumps({"mltune_s_per_trial": round(mltune_per, 4),
                      "baseline_s_per_trial": round(baseline_per, 4),
                      "ratio": round(mltune_per / baseline_per, 4), "trials": trials}))


if __name__ == "__main__":
    main()
