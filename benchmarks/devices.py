"""Trials per hour with one pack loop and with a pack loop per device, side by side.

The same search (algo rand, one seed, ASHA off: the same points in any order) on a local sqlite
store: first one loop on one device, then one loop on each of N devices. On the CPU, N loops
share the same cores (``device: cpu,cpu``): no gain is expected on a 2-core machine; the
figure says what the threads cost. One intra-op torch thread per loop (OMP_NUM_THREADS=1, as
the tests run: two threads fighting over two cores made a tiny MLP's step 6x slower). On a GPU
machine, ``--device cuda`` compares one GPU with every GPU (``device: cuda``); with one GPU
that is the one-device figure alone.

Run: python benchmarks/devices.py [--device cpu] [--loops 2] [--trials 32] [--epochs 2]
     python benchmarks/devices.py --device cuda --trials 64
The last line is JSON.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # every loop's thread: one intra-op thread

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


def search(task: str, device: str, trials: int, epochs: int) -> tuple[float, dict[str, int]]:
    """Wall seconds of one search on ``device``, and its trials by device."""
    # a store of its own: no search warm-starts from another's (warm_start: auto)
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'search.db'}")
    spec = mltune.load_spec(None, {"task": task, "max_evals": trials, "epochs": epochs,
                                   "seed": 0, "algo": "rand", "device": device,
                                   "pruning": {"rule": "none"}})
    started = time.perf_counter()
    result = mltune.tune(spec)
    return time.perf_counter() - started, result.devices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--loops", type=int, default=2, help="CPU: pack loops to compare")
    parser.add_argument("--task", default="tabular")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'devices.db'}")
    if args.device == "cuda":
        one, many = "cuda:0", ("cuda" if torch.cuda.device_count() > 1 else "")
    else:
        one, many = "cpu", ",".join(["cpu"] * args.loops)
    search(args.task, one, 2, 1)  # warm-up: imports, the store's tables, CUDA
    figures: dict[str, dict[str, object]] = {}
    for name, device in (("one", one), ("every", many)):
        if not device:
            continue
        wall, shares = search(args.task, device, args.trials, args.epochs)
        per_hour = args.trials * 3600 / wall
        figures[name] = {"device": device, "wall_s": round(wall, 2),
                         "trials_per_hour": round(per_hour), "shares": shares}
        print(f"{args.task}: {args.trials} trials x {args.epochs} epochs on {device}: "
              f"{wall:.1f} s -> {per_hour:.0f} trials/hour; trials by device {shares}")
    if "every" in figures:
        ratio = figures["every"]["trials_per_hour"] / figures["one"]["trials_per_hour"]
        loops = len(figures["every"]["shares"])
        print(f"{loops} pack loops vs 1: {ratio:.2f}x the trials per hour"
              + (f" ({os.cpu_count()} CPU cores, one torch thread per loop)"
                 if args.device == "cpu" else ""))
        figures["ratio"] = {"value": round(ratio, 3)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
