"""The ray backend with a pack per worker vs one trial per worker, side by side.

The same search (algo rand, one seed, ASHA off) on a local Ray this script starts, with the
same workers (``parallelism``): first ``pack: 1`` (each worker trains one trial at a time, as
the ray backend did before workers trained packs), then ``pack: auto`` (each worker's pack
size measured on its own device) or ``--pack N``. Trials per hour of each, and their ratio.
On the CPU, one CPU and one torch thread per worker; ``--device cuda``: one GPU per worker,
as many workers as GPUs.

Run: python benchmarks/ray_packs.py [--task tabular] [--trials 32] [--epochs 2] [--workers 2]
     python benchmarks/ray_packs.py --device cuda --task image --trials 64
The last line is JSON.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker, inherited by workers
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import mlflow  # noqa: E402
import torch  # noqa: E402

import mltune  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="tabular")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="CPU: Ray workers")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (a GPU per worker)")
    parser.add_argument("--pack", default="auto", help="the packed run's pack: auto | N")
    args = parser.parse_args()
    if importlib.util.find_spec("ray") is None:
        print("skipped: ray is not installed (pip install 'mltune[ray]')")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return 0
    import ray

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    repo = str(Path(__file__).resolve().parents[1])
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    workers = gpus or args.workers
    ray.init(address="local", num_cpus=workers, num_gpus=gpus, include_dashboard=False,
             log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"env_vars": {"PYTHONPATH": repo, "OMP_NUM_THREADS": "1"}})
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'ray_packs.db'}")
    base = {"task": args.task, "epochs": args.epochs, "algo": "rand", "seed": 0,
            "backend": "ray", "parallelism": workers, "cpus_per_trial": 1,
            "gpus_per_worker": 1 if gpus else 0, "device": "cuda" if gpus else "cpu",
            "pruning": {"rule": "none"}, "registered_model": "bench-ray-packs"}
    mltune.tune(mltune.load_spec(None, {**base, "max_evals": 2, "epochs": 1, "pack": 1}))
    rows = {}
    for name, pack in (("one trial per worker", 1), ("a pack per worker", args.pack)):
        spec = mltune.load_spec(None, {**base, "max_evals": args.trials, "pack": pack,
                                       "name": f"ray-packs-{pack}"})
        started = time.perf_counter()
        result = mltune.tune(spec)
        wall = time.perf_counter() - started
        rows[name] = {"pack": pack, "wall_s": round(wall, 2),
                      "trials_per_hour": round(len(result.trials) * 3600 / wall),
                      "packs": len({t.pack for t in result.trials if t.pack is not None}),
                      "devices": result.devices}
        print(f"{name:22} pack {pack!s:5} {wall:7.1f} s  {rows[name]['trials_per_hour']:7d} "
              f"trials/hour  ({rows[name]['packs']} packs; by worker {result.devices})")
    ray.shutdown()
    ratio = (rows["a pack per worker"]["trials_per_hour"]
             / rows["one trial per worker"]["trials_per_hour"])
    print(f"{args.task}, {args.trials} trials x {args.epochs} epochs, {workers} workers on "
          f"{'GPUs' if gpus else 'CPUs'}: packs {ratio:.2f}x the trials per hour")
    print(json.dumps({"runs": rows, "ratio": round(ratio, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
