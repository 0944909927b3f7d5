"""On a machine with a GPU: trials of the ray backend placed on it, several at once per GPU.

A small digits search with ``gpus_per_worker: 0.25`` and ``parallelism: 4`` on a local Ray:
prints, per trial, the device it trained on (tag ``mltune.device``) and its start/end, then how
many trials ran at the same time. Exits 0 with "skipped: ..." where CUDA or Ray is missing;
exits 1 when a trial did not run on the GPU or no two trials shared it.

Run: python benchmarks/ray_gpu_check.py [--trials 8] [--epochs 2]
The last line is JSON.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402


def most_at_once(spans: list[tuple[int, int]]) -> int:
    """The largest number of (start, end) spans open at one moment."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    open_now = best = 0
    for _, step in events:
        open_now += step
        best = max(best, open_now)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device (torch.cuda.is_available() is False)")
        return 0
    if importlib.util.find_spec("ray") is None:
        print("skipped: ray is not installed (pip install 'mltune[ray]')")
        return 0

    import mlflow

    import mltune

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'ray_gpu.db'}")
    spec = mltune.load_spec(None, {"max_evals": args.trials, "epochs": args.epochs,
                                   "seed": 0, "backend": "ray", "parallelism": 4,
                                   "gpus_per_worker": 0.25, "cpus_per_trial": 1,
                                   "device": "auto", "name": "ray-gpu-check",
                                   "registered_model": "ray-gpu-check"})
    result = mltune.tune(spec)
    client = mlflow.MlflowClient()
    runs = [client.get_run(t.run_id) for t in result.trials if t.run_id]
    runs.sort(key=lambda r: r.info.start_time)
    t0 = runs[0].info.start_time
    print(f"GPU: {torch.cuda.get_device_name(0)}  ({torch.cuda.device_count()} visible)")
    print(f"{'trial':8}{'device':>10}{'start s':>9}{'end s':>8}{'status':>10}")
    for run in runs:
        print(f"{run.info.run_name:8}{run.data.tags.get('mltune.device', '?'):>10}"
              f"{(run.info.start_time - t0) / 1000:9.1f}{(run.info.end_time - t0) / 1000:8.1f}"
              f"{run.info.status:>10}")
    devices = [run.data.tags.get("mltune.device", "") for run in runs]
    concurrent = most_at_once([(r.info.start_time, r.info.end_time) for r in runs])
    on_gpu = sum(d.startswith("cuda") for d in devices)
    print(f"{on_gpu} of {len(runs)} trials on the GPU; at most {concurrent} at once "
          "(gpus_per_worker 0.25, parallelism 4)")
    ok = on_gpu == len(runs) and concurrent >= 2
    print(json.dumps({"trials": len(runs), "on_gpu": on_gpu, "most_at_once": concurrent,
                      "devices": sorted(set(devices)), "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
