"""Tracking overhead per trial: mltune vs MLflow's own example pattern, side by side.

overhead = search wall time - pure training time of the same configs

- mltune: ``mltune.tune`` on digits (random search, so the configs are known afterwards,
  unpacked: this measures bookkeeping, not packing), the model logged every trial, on a local
  sqlite store, at two budgets (N and 3N trials): the slope between them is the overhead per
  trial, what is left at N trials the fixed cost per search (data, parent run, registration,
  promotion gate, report).
- baseline: MLflow's example pattern (examples/hyperparam/search_hyperopt.py): fluent nested
  runs, one ``log_metric`` call per metric per epoch, ``mlflow.pytorch.log_model`` with inferred
  requirements, same model, data and configs, on its own sqlite store.
- pure: the same configs trained with no tracking at all.

Each search and each pure training is measured ``--repeat`` times, interleaved, and the
fastest of each is kept: on two cores a single run moves by a second either way, which is more
than the per-trial figure between budgets.

Run: python benchmarks/tracking_overhead.py [--trials 4] [--epochs 2] [--repeat 2]
The last line is JSON: mltune_s_per_trial (the slope), mltune_search_fixed_s,
baseline_s_per_trial.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import tempfile
import time
import warnings
from dataclasses import replace
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
    gc.freeze()  # as in a search: collections do not rescan MLflow's heap (0.4 s each)
    started = time.perf_counter()
    for number, params in configs:
        seed_everything(spec.seed + number)  # as a trial: init from its number, the batch
        network = task.build_model(params, data.meta)  # order from the search's seed
        fit(network, data, params, loss_fn=task.make_loss(params, data),
            score=lambda out, y: task.score(out, y, data.meta), epochs=spec.epochs,
            seed=spec.seed)
    elapsed = time.perf_counter() - started
    gc.unfreeze()
    return elapsed


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
                    seed=spec.seed, on_epoch=on_epoch)
                mlflow.pytorch.log_model(network, name="model", input_example=example)
    return time.perf_counter() - started


def setup(description: str) -> tuple[argparse.Namespace, Path, SearchSpec, TaskData]:
    """The overhead benchmarks' common start: arguments, a work folder, the random search's
    spec (so its configs can be trained again untracked) and its data."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    workdir = Path(tempfile.mkdtemp(prefix="mltune-bench-"))
    spec = mltune.load_spec(None, {"max_evals": args.trials, "epochs": args.epochs,
                                   "algo": "rand", "seed": 0, "device": "cpu", "pack": 1})
    data = get_task(spec.task).load(spec.data, spec.seed).to(resolve_device(spec.device))
    return args, workdir, spec, data


def mltune_overhead(spec: SearchSpec, data: TaskData, repeat: int = 1
                    ) -> tuple[float, float, list]:
    """(search wall time, pure training time of its configs, configs): the fastest of
    ``repeat`` runs of each, interleaved (the same seed: the same configs every time)."""
    walls, pures = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        result = mltune.tune(spec)
        walls.append(time.perf_counter() - started)
        configs = [(t.number, t.params) for t in result.trials]
        pures.append(pure_training(spec, configs, data))
    return min(walls), min(pures), configs


def main() -> None:
    args, workdir, spec, data = setup(__doc__)

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mltune.db'}")
    mlflow.MlflowClient().search_experiments()  # create the store outside the timing
    mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 1}))  # warm imports
    small, large = args.trials, 3 * args.trials
    wall_small, pure_small, _ = mltune_overhead(spec, data, args.repeat)
    wall_large, pure_large, configs = mltune_overhead(replace(spec, max_evals=large), data,
                                                      args.repeat)
    per_trial = ((wall_large - pure_large) - (wall_small - pure_small)) / (large - small)
    fixed = (wall_small - pure_small) - per_trial * small

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'baseline.db'}")
    mlflow.MlflowClient().search_experiments()
    baseline_configs = configs[:small]
    baseline_wall = baseline_search(spec, baseline_configs, data)
    baseline_per = (baseline_wall - pure_training(spec, baseline_configs, data)) / small

    print(f"epochs={args.epochs} store=sqlite (local), unpacked, fastest of {args.repeat}")
    print(f"{'':22}{'wall s':>10}{'training s':>12}{'overhead s':>12}")
    print(f"{f'mltune, {small} trials':22}{wall_small:10.2f}{pure_small:12.2f}"
          f"{wall_small - pure_small:12.2f}")
    print(f"{f'mltune, {large} trials':22}{wall_large:10.2f}{pure_large:12.2f}"
          f"{wall_large - pure_large:12.2f}")
    print(f"mltune: {per_trial:.3f} s per trial (slope), {fixed:.2f} s once per search")
    print(f"baseline (MLflow's example pattern): {baseline_per:.3f} s per trial "
          f"({baseline_per / per_trial:.0f}x mltune's)" if per_trial > 0 else
          f"baseline: {baseline_per:.3f} s per trial; mltune's below measurement noise")
    print(json.dumps({"mltune_s_per_trial": round(per_trial, 4),
                      "mltune_search_fixed_s": round(fixed, 2),
                      "baseline_s_per_trial": round(baseline_per, 4),
                      "budgets": [small, large]}))


if __name__ == "__main__":
    main()
