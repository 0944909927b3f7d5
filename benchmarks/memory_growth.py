"""Memory over a long search of short trials: trial 200 should cost what trial 5 did.

A random search of many one-epoch digits trials on a local sqlite store, every trial logged
with its model. The process's resident memory (and CUDA memory, on a GPU) is read after each
trial; the figures after trial 5 and after the last trial are compared, with the seconds per
trial at the start and at the end (a slowdown shows up there).

Run: python benchmarks/memory_growth.py [--trials 200] [--device auto] [--pack auto]
The last line is JSON with rss_mb_trial5 and rss_mb_trial200 (trial<N> for --trials N).
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
import torch

import mltune


def rss_mb() -> float:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pack", default="auto", help="auto | N (1: one trial at a time)")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'growth.db'}")
    spec = mltune.load_spec(None, {
        "max_evals": args.trials, "epochs": 1, "algo": "rand", "seed": 0,
        "device": args.device,
        "space": {"num_blocks": 1, "channels": 8, "hidden_size": 32, "batch_size": 128,
                  "learning_rate": {"loguniform": [0.0005, 0.01]}}, "pack": args.pack})
    cuda = spec.device != "cpu" and torch.cuda.is_available()
    readings: dict[int, dict[str, float]] = {}
    last = [time.perf_counter()]

    def progress(outcome, best) -> None:
        now = time.perf_counter()
        reading = {"rss_mb": rss_mb(), "seconds": now - last[0]}
        last[0] = now
        if cuda:
            reading["cuda_allocated_mb"] = torch.cuda.memory_allocated() / 2**20
            reading["cuda_reserved_mb"] = torch.cuda.memory_reserved() / 2**20
        readings[outcome.number] = reading
        if outcome.number % 25 == 0:
            print(f"trial {outcome.number:4d}: rss {reading['rss_mb']:.0f} MB, "
                  f"{reading['seconds']:.2f} s", flush=True)

    result = mltune.tune(spec, progress=progress)
    early, end = readings[5], readings[args.trials]
    early_s = sum(readings[n]["seconds"] for n in range(3, 8)) / 5
    late_s = sum(readings[n]["seconds"] for n in range(args.trials - 4, args.trials + 1)) / 5
    growth = end["rss_mb"] / early["rss_mb"] - 1
    print(f"trials={args.trials} finished={result.finished} device={'cuda' if cuda else 'cpu'}")
    print(f"rss after trial 5: {early['rss_mb']:.0f} MB, after trial {args.trials}: "
          f"{end['rss_mb']:.0f} MB, growth {growth:+.1%}")
    print(f"seconds per trial around trial 5: {early_s:.2f}, at the end: {late_s:.2f} "
          f"(ratio {late_s / early_s:.2f})")
    summary = {"rss_mb_trial5": round(early["rss_mb"], 1),
               f"rss_mb_trial{args.trials}": round(end["rss_mb"], 1),
               "rss_growth": round(growth, 4), "s_per_trial_start": round(early_s, 3),
               "s_per_trial_end": round(late_s, 3)}
    if cuda:
        print(f"CUDA allocated after trial 5: {early['cuda_allocated_mb']:.1f} MB, after trial "
              f"{args.trials}: {end['cuda_allocated_mb']:.1f} MB (reserved "
              f"{early['cuda_reserved_mb']:.0f} -> {end['cuda_reserved_mb']:.0f} MB)")
        summary.update({"cuda_mb_trial5": round(early["cuda_allocated_mb"], 1),
                        f"cuda_mb_trial{args.trials}": round(end["cuda_allocated_mb"], 1)})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
