"""Tracking overhead per trial: mltune vs MLflow's own example pattern, side by side.

overhead = search wall time - pure training time of the same configs

- mltune: ``mltune.tune`` on digits (random search, so the configs are known afterwards,
  unpacked: this measures bookkeeping, not packing), the model logged every trial, on a local
  sqlite store, at two budgets (N and 4N trials): the slope between them is the overhead per
  trial, what is left at N trials the fixed cost per search (data, parent run, registration,
  promotion gate, report).
- baseline: MLflow's example pattern (examples/hyperparam/search_hyperopt.py): fluent nested
  runs, one ``log_metric`` call per metric per epoch, ``mlflow.pytorch.log_model`` with inferred
  requirements, same model, data and configs, on its own sqlite store.
- pure: the same configs trained with no tracking at all.

Each search is followed at once by the pure training of its configs; the difference of that
pair is one measurement of its overhead. A round measures both budgets and gives one slope;
``--repeat`` rounds are run and every slope printed, the median kept. On this shared 2-core
machine the same training takes 11.3 to 13.2 s from one minute to the next, so one round's
slope moves by about 0.1 s per trial: read the spread beside the median (the earlier
estimator, the fastest search minus the fastest training of N and 3N trials, gave 0.01 to
0.49 s per trial for the same code).

Run: python benchmarks/tracking_overhead.py [--trials 4] [--epochs 2] [--repeat 5]
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
from mltune.training.engine import fit


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


def setup(description: str, repeat: int = 5
          ) -> tuple[argparse.Namespace, Path, SearchSpec, TaskData]:
    """The overhead benchmarks' common start: arguments, a work folder, the random search's
    spec (so its configs can be trained again untracked) and its data."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=repeat)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    workdir = Path(tempfile.mkdtemp(prefix="mltune-bench-"))
    spec = mltune.load_spec(None, {"max_evals": args.trials, "epochs": args.epochs,
                                   "algo": "rand", "seed": 0, "device": "cpu", "pack": 1})
    data = get_task(spec.task).load(spec.data, spec.seed).to(resolve_device(spec.device))
    return args, workdir, spec, data


def mltune_overhead(spec: SearchSpec, data: TaskData) -> tuple[float, float, list]:
    """(search wall time, pure training time of its configs, configs), measured back to back
    (the same seed: the same configs every time)."""
    started = time.perf_counter()
    result = mltune.tune(spec)
    wall = time.perf_counter() - started
    configs = [(t.number, t.params) for t in result.trials]
    return wall, pure_training(spec, configs, data), configs


def rounds(spec: SearchSpec, data: TaskData, small: int, large: int, repeat: int
           ) -> tuple[list[dict[str, float]], list]:
    """``repeat`` rounds, each a pair at each budget: its overheads, its slope (overhead per
    trial) and its fixed cost; and the large budget's configs."""
    measured, configs = [], []
    for _ in range(repeat):
        row: dict[str, float] = {}
        for budget, name in ((small, "small"), (large, "large")):
            wall, pure, configs = mltune_overhead(replace(spec, max_evals=budget), data)
            row.update({f"{name}_wall": wall, f"{name}_pure": pure,
                        f"{name}_overhead": wall - pure})
        row["per_trial"] = (row["large_overhead"] - row["small_overhead"]) / (large - small)
        row["fixed"] = row["small_overhead"] - row["per_trial"] * small
        measured.append(row)
    return measured, configs


def main() -> None:
    args, workdir, spec, data = setup(__doc__)

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mltune.db'}")
    mlflow.MlflowClient().search_experiments()  # create the store outside the timing
    mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 1}))  # warm imports
    small, large = args.trials, 4 * args.trials
    measured, configs = rounds(spec, data, small, large, args.repeat)
    median = sorted(measured, key=lambda row: row["per_trial"])[len(measured) // 2]
    per_trial, fixed = median["per_trial"], median["fixed"]

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'baseline.db'}")
    mlflow.MlflowClient().search_experiments()
    baseline_configs = configs[:small]
    baseline_wall = baseline_search(spec, baseline_configs, data)
    baseline_per = (baseline_wall - pure_training(spec, baseline_configs, data)) / small

    print(f"epochs={args.epochs} store=sqlite (local), unpacked, {args.repeat} rounds")
    print(f"{'':8}{'wall s':>8}{'training s':>12}{'overhead s':>12}{'wall s':>9}"
          f"{'training s':>12}{'overhead s':>12}{'s/trial':>9}{'fixed s':>9}")
    print(f"{'':8}{f'--- {small} trials ---':^32}{f'--- {large} trials ---':^33}")
    for number, row in enumerate(measured, 1):
        print(f"{f'round {number}':8}" + "".join(
            f"{row[f'{name}_{part}']:{width}.2f}" for name in ("small", "large")
            for part, width in (("wall", 8 if name == "small" else 9), ("pure", 12),
                                ("overhead", 12)))
            + f"{row['per_trial']:9.3f}{row['fixed']:9.2f}")
    slopes = sorted(row["per_trial"] for row in measured)
    print(f"mltune: {per_trial:.3f} s per trial (median slope; rounds {slopes[0]:.3f} to "
          f"{slopes[-1]:.3f}), {fixed:.2f} s once per search")
    print(f"baseline (MLflow's example pattern): {baseline_per:.3f} s per trial "
          f"({baseline_per / per_trial:.0f}x mltune's)" if per_trial > 0 else
          f"baseline: {baseline_per:.3f} s per trial; mltune's below measurement noise")
    print(json.dumps({"mltune_s_per_trial": round(per_trial, 4),
                      "mltune_s_per_trial_rounds": [round(v, 4) for v in slopes],
                      "mltune_search_fixed_s": round(fixed, 2),
                      "baseline_s_per_trial": round(baseline_per, 4),
                      "budgets": [small, large]}))


if __name__ == "__main__":
    main()
