"""What ``pack: auto`` measures and what it buys: member-steps/s per pack size and the size
chosen, then a short search with ``pack: auto`` and with ``pack: 1``, side by side.

For the digits CNN and the breast_cancer MLP (the tasks' default networks and spaces):

1. ``member_steps_per_s`` at K = 1, 2, 4, 8, 16 for the default params' shape, as a search
   measures it (``mltune.search.packs``: the same early stop), and ``chosen_size``'s answer.
2. The same search twice, ``pack: auto`` then ``pack: 1``, under one time budget (a local
   sqlite store in a temporary folder): trials run, their wall time (parent run start to the
   last trial's end: registration and the report are left out) and trials/hour, and the
   ratio.

Run: python benchmarks/pack_size.py [--device cpu|cuda] [--budget-s 30] [--epochs 3]
The last line is JSON. Figures vary with what else runs on the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import mlflow
import torch
from mlflow.tracking import MlflowClient

import mltune
from mltune.search.packs.sizes import SIZES_TRIED, chosen_size, member_steps_per_s
from mltune.tasks import task_for
from mltune.training.device import resolve_device

CASES = {
    "digits CNN": {"task": "image"},
    "breast_cancer MLP": {"task": "tabular", "data.source": "sklearn:breast_cancer"},
}


def measured(name: str, overrides: dict, device: torch.device) -> dict:
    """Member-steps/s per K for the task's default params, and the K chosen."""
    spec = mltune.load_spec(None, overrides)
    task = task_for(spec)
    data = task.load(spec.data, spec.seed).to(device)
    started = time.perf_counter()
    rates = member_steps_per_s(task, data, task.default_params(), device, SIZES_TRIED,
                               spec.precision)
    seconds = time.perf_counter() - started
    chosen = chosen_size(rates)
    print(f"{name:20} " + "  ".join(f"K={k}: {r:6.0f}" for k, r in rates.items())
          + f" member-steps/s -> packs of {chosen} (measured in {seconds:.2f} s)", flush=True)
    return {"member_steps_per_s": rates, "chosen": chosen, "seconds": seconds}


def search(name: str, overrides: dict, pack: int | str, budget_s: float, epochs: int) -> dict:
    """One search under the time budget; its trials and their trials/hour."""
    # a store of its own: no search warm-starts from another's (warm_start: auto)
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'search.db'}")
    spec = mltune.load_spec(None, {**overrides, "pack": pack, "epochs": epochs, "seed": 0,
                                   "max_evals": 400, "stop.time_budget_s": budget_s,
                                   "name": f"pack-size {name} pack={pack}",
                                   "registered_model": f"pack-size-{overrides['task']}"})
    result = mltune.tune(spec)
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    ends = [client.get_run(t.run_id).info.end_time for t in result.trials]
    wall_s = (max(e for e in ends if e) - parent.info.start_time) / 1000
    packs = {t.pack for t in result.trials if t.pack is not None}
    row = {"trials": len(result.trials), "finished": result.finished, "wall_s": wall_s,
           "trials_per_hour": 3600 * len(result.trials) / wall_s, "packs": len(packs),
           "best": result.best_value, "metric": spec.metric}
    print(f"{name:20} pack={pack!s:4}  {row['trials']:3} trials in {wall_s:5.1f} s  "
          f"{row['trials_per_hour']:7.0f} trials/h  ({row['packs']} packs)  best "
          f"{spec.metric} {row['best']:.4f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-s", type=float, default=30.0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    device = resolve_device(args.device)
    folder = Path(tempfile.mkdtemp(prefix="mltune-pack-size-"))
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    logging.getLogger("mltune").setLevel(logging.WARNING)
    print(f"device={device} budget={args.budget_s:g}s epochs={args.epochs}")
    results: dict[str, dict] = {}
    for name, overrides in CASES.items():
        results[name] = {"measured": measured(name, overrides, device)}
    for name, overrides in CASES.items():
        auto = search(name, overrides, "auto", args.budget_s, args.epochs)
        alone = search(name, overrides, 1, args.budget_s, args.epochs)
        ratio = auto["trials_per_hour"] / alone["trials_per_hour"]
        print(f"{name:20} pack: auto / pack: 1 = {ratio:.2f}x trials/hour", flush=True)
        results[name].update({"auto": auto, "one": alone, "ratio": ratio})
    print(json.dumps({"device": str(device), "budget_s": args.budget_s, "results": results},
                     default=str))


if __name__ == "__main__":
    main()
