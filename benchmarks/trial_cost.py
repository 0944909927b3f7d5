"""What a small trial costs beyond its training, broken down: records, sampler, scheduler,
packing, on a small table where most trials are pruned after one epoch.

One search (the tabular MLP, ASHA, TPE, ``pack: auto``, the full MLflow record on a local
sqlite store) on a seeded 2,000-row ``make_classification`` table (1,400 training rows) for
``--seconds`` of its time budget. The search's own thread is timed by piece (exclusive
times: a piece that calls another is charged only its own share):

- ``training``: the pack trainer's epochs (``PackTrainer.step_epoch``);
- ``networks``: building trials' networks and stacking them into packs;
- ``records``: the tracker's calls on the training thread (opening a record, an epoch's
  metrics, ending it; the models are logged in the background);
- ``sampler``: asking and telling the sampler; ``scheduler``: its decisions;
- ``pack sizes``: ``pack: auto``'s measurements; ``coordination``: the rest of the
  coordinator's bookkeeping (numbers, budget, progress, the best's metric);
- ``memory``: the collections between packs; ``other``: whatever is left of the wall time.

Beside it, ``--before PATH`` runs the same search from another checkout (the code before a
change) in a subprocess, the two interleaved ``--repeat`` times: trials ended and seconds
per trial side by side (a checkout without the pieces above gives its totals only).

Run: python benchmarks/trial_cost.py [--seconds 60] [--repeat 1] [--before ../base]
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_common import quiet, synthetic_csv  # noqa: E402

PIECES = {  # (module, class, method) -> piece
    ("mltune.training.engine", "PackTrainer", "step_epoch"): "training",
    ("mltune.training.engine", "PackTrainer", "__init__"): "networks",
    ("mltune.training.engine", "PackTrainer", "add"): "networks",
    ("mltune.training.engine", "PackTrainer", "remove"): "networks",
    ("mltune.search.packs.driver", "Driver", "build"): "networks",
    ("mltune.tracking.tracker", "MlflowTracker", "open"): "records: open",
    ("mltune.tracking.tracker", "MlflowRecord", "epoch"): "records: epochs",
    ("mltune.tracking.tracker", "MlflowRecord", "end"): "records: end",
    ("mltune.tracking.background", "Finisher", "submit"): "records: model queue",
    ("mltune.search.samplers.hyperopt", "HyperoptSampler", "ask"): "sampler",
    ("mltune.search.samplers.hyperopt", "HyperoptSampler", "tell"): "sampler",
    ("mltune.search.schedulers.asha", "AshaScheduler", "decide"): "scheduler",
    ("mltune.search.schedulers.asha", "AshaScheduler", "start"): "scheduler",
    ("mltune.search.schedulers.asha", "AshaScheduler", "end"): "scheduler",
    ("mltune.search.packs.sizes", "PackSizes", "size"): "pack sizes",
    ("mltune.search.packs.coordinator", "Coordinator", "next_pack"): "coordination",
    ("mltune.search.packs.coordinator", "Coordinator", "admit"): "coordination",
    ("mltune.search.packs.coordinator", "Coordinator", "refill"): "coordination",
    ("mltune.search.packs.coordinator", "Coordinator", "epoch"): "coordination",
    ("mltune.search.packs.coordinator", "Coordinator", "ended"): "coordination",
    ("mltune.search.packs.driver", "release_memory", None): "memory",
}


class Clock:
    """Exclusive times by piece, on the thread that made the clock (the search's)."""

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self.spent: dict[str, float] = defaultdict(float)
        self.stack: list[float] = []  # the time children took, per open call

    def wrap(self, piece: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not self.thread:
                return call(*args, **kwargs)
            started = time.perf_counter()
            self.stack.append(0.0)
            try:
                return call(*args, **kwargs)
            finally:
                children = self.stack.pop()
                took = time.perf_counter() - started
                self.spent[piece] += took - children
                if self.stack:
                    self.stack[-1] += took
        return timed


def instrument(clock: Clock) -> list[str]:
    """Wrap every piece this checkout has; the pieces found."""
    import importlib

    found = []
    for (module_name, owner, method), piece in PIECES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if method is None:  # a module-level function, wrapped where the driver calls it
            if hasattr(module, owner):
                setattr(module, owner, clock.wrap(piece, getattr(module, owner)))
                found.append(piece)
            continue
        cls = getattr(module, owner, None)
        if cls is not None and hasattr(cls, method):
            setattr(cls, method, clock.wrap(piece, getattr(cls, method)))
            found.append(piece)
    return sorted(set(found))


def one_search(seconds: float, folder: Path) -> dict[str, Any]:
    """The search, timed by piece: its trials, wall time and each piece's seconds."""
    quiet()
    import mlflow

    import mltune

    source = synthetic_csv(folder, 2000, flip_y=0.05)
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'warm.db'}")
    mltune.tune(mltune.load_spec(None, {"task": "tabular", "max_evals": 2, "epochs": 1,
                                        "device": "cpu", "data": {"source": source,
                                                                  "target": "label"}}))
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'search.db'}")
    clock = Clock()
    pieces = instrument(clock)
    spec = mltune.load_spec(None, {
        "task": "tabular", "data": {"source": source, "target": "label"}, "epochs": 9,
        "max_evals": 100_000, "stop": {"time_budget_s": seconds}, "seed": 0,
        "device": "cpu", "registered_model": "trial-cost"})
    ends: list[float] = []
    started = [0.0]
    result = mltune.tune(spec, progress=lambda outcome, best: ends.append(time.monotonic()),
                         on_start=lambda: started.__setitem__(0, time.monotonic()))
    wall = ends[-1] - started[0]
    spent = dict(clock.spent)
    spent["other"] = wall - sum(spent.values())
    pruned = sum(t.status == "PRUNED" for t in result.trials)
    return {"trials": len(result.trials), "pruned": pruned, "wall_s": wall,
            "s_per_trial": wall / len(result.trials), "pieces": pieces,
            "spent_s": spent}


def run_in(checkout: Path, seconds: float) -> dict[str, Any]:
    """``one_search`` in a subprocess importing ``checkout``'s mltune."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--one", str(seconds)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--before", type=Path, help="another checkout, run side by side")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(one_search(args.one, Path(tempfile.mkdtemp(prefix="mltune-cost-")))))
        return
    here = Path(__file__).resolve().parents[1]
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _ in range(args.repeat):
        runs["now"].append(run_in(here, args.seconds))
        if args.before is not None:
            runs["before"].append(run_in(args.before.resolve(), args.seconds))
    for name, measured in runs.items():
        for run in measured:
            spent = run["spent_s"]
            print(f"{name}: {run['trials']} trials ({run['pruned']} pruned) in "
                  f"{run['wall_s']:.1f} s: {run['s_per_trial']:.3f} s per trial")
            if len(spent) > 1:
                per = {k: v / run["trials"] for k, v in spent.items()}
                beyond = run["s_per_trial"] - per.get("training", 0.0)
                print("  per trial: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in
                                                  sorted(per.items(), key=lambda kv: -kv[1])))
                print(f"  beyond training: {beyond:.3f} s per trial")
    print(json.dumps({name: [{k: v for k, v in run.items() if k != "pieces"} for run in measured]
                      for name, measured in runs.items()}))


if __name__ == "__main__":
    main()
