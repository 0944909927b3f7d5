"""Tracking overhead per trial against a real ``mlflow server`` on 127.0.0.1, side by side.

The same measurement as ``tracking_overhead.py`` (search wall time minus the pure training time
of the same configs, per trial), but every call goes over HTTP to a server this script starts
(sqlite backend, proxied artifacts), as it does for a team. mltune against MLflow's example
pattern (one ``log_metric`` per metric per epoch, ``mlflow.pytorch.log_model`` with inferred
requirements).

Run: python benchmarks/server_overhead.py [--trials 6] [--epochs 2]
The last line is JSON with mltune_s_per_trial and baseline_s_per_trial.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from contextlib import contextmanager
from pathlib import Path

import mlflow
from tracking_overhead import baseline_search, pure_training

import mltune
from mltune.tasks import get_task
from mltune.train import resolve_device


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(workdir: Path):
    """A real tracking server (sqlite backend, proxied artifacts) on 127.0.0.1."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
         "--artifacts-destination", str(workdir / "artifacts"), "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.25)
        else:
            raise RuntimeError("mlflow server did not start in 60 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")

    workdir = Path(tempfile.mkdtemp(prefix="mltune-server-bench-"))
    spec = mltune.load_spec(None, {"max_evals": args.trials, "epochs": args.epochs,
                                   "algo": "rand", "seed": 0, "device": "cpu"})
    data = get_task(spec.task).load(spec.data, spec.seed).to(resolve_device(spec.device))
    with mlflow_server(workdir) as url:
        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("mltune")
        mltune.tune(mltune.load_spec(None, {"max_evals": 1, "epochs": 1}))  # warm imports
        started = time.perf_counter()
        result = mltune.tune(spec)
        mltune_wall = time.perf_counter() - started
        configs = [(t.number, t.params) for t in result.trials]
        mlflow.set_experiment("baseline")
        baseline_wall = baseline_search(spec, configs, data)
    pure = pure_training(spec, configs, data)

    trials = len(configs)
    mltune_per = (mltune_wall - pure) / trials
    baseline_per = (baseline_wall - pure) / trials
    print(f"trials={trials} epochs={args.epochs} store=mlflow server on 127.0.0.1 "
          "(sqlite backend, proxied artifacts)")
    print(f"{'':10}{'wall s':>10}{'training s':>12}{'overhead s/trial':>18}")
    print(f"{'mltune':10}{mltune_wall:10.2f}{pure:12.2f}{mltune_per:18.3f}")
    print(f"{'baseline':10}{baseline_wall:10.2f}{pure:12.2f}{baseline_per:18.3f}")
    print(f"ratio mltune/baseline = {mltune_per / baseline_per:.3f}")
    print(json.dumps({"mltune_s_per_trial": round(mltune_per, 4),
                      "baseline_s_per_trial": round(baseline_per, 4),
                      "ratio": round(mltune_per / baseline_per, 4), "trials": trials}))


if __name__ == "__main__":
    main()
