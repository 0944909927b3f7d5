"""Logging one model: seconds per ``log_model`` call and the model's size on disk, per task.

For each task (the digits CNN, the breast-cancer MLP with its fitted preprocessor, a text RNN on
``examples/data/reviews.csv``, a forecaster on ``examples/data/sales.csv``) and for an ensemble
of three MLPs, a network built from the task's defaults is logged ``--repeat`` times with
``mltune.tracking.model`` (the call a trial makes in the background) to a local sqlite store:
the median seconds per call (wall, its fastest, and the process's CPU time: on a shared machine
the steadiest of the three, since waits on other work and on the disk are left out), and the
bytes of one model's files, in all and without mltune's own code (``code/mltune.zip``, the same
in every model). Only the public ``log_model`` and ``log_ensemble_model`` are called, so the
script measures any version of mltune: run it with one version's checkout on ``PYTHONPATH``,
then the other's, alternately.

The search-level figures are ``tracking_overhead.py`` and ``server_overhead.py``; on a shared
machine their slope moves by 0.1 s per trial, more than a model's logging changes: this is the
direct measure.

Run: python benchmarks/model_logging.py [--repeat 8] [--server]
(``--server``: to a real ``mlflow server`` on 127.0.0.1 this script starts, sqlite behind it,
artifacts proxied: each file of a model is one HTTP upload)
The last line is JSON: {case: {"s_per_model", "fastest_s", "cpu_s_per_model", "bytes",
"bytes_without_code"}}.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import torch
from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import MlflowServer  # noqa: E402  (the tests' real-server helper)

import mltune  # noqa: E402
from mltune.spec.build import build_spec  # noqa: E402
from mltune.tasks import task_for  # noqa: E402
from mltune.tracking.model import log_ensemble_model, log_model  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
CASES = {
    "image": {"task": "image"},
    "tabular": {"task": "tabular"},
    "text": {"task": "text", "data": {"source": str(DATA / "reviews.csv"), "text": "review",
                                      "target": "sentiment"}},
    "timeseries": {"task": "timeseries", "data": {"source": str(DATA / "sales.csv"),
                                                  "time": "date", "target": "sales",
                                                  "covariates": ["temperature"],
                                                  "horizon": 5}},
    "tabular-ensemble-3": {"task": "tabular"},
}


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(all bytes, bytes outside code/mltune.zip) of a model's files."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    code = sum(p.stat().st_size for p in files if p.name == "mltune.zip")
    return total, total - code


def measure(case: str, raw: dict, client: MlflowClient, repeat: int) -> dict[str, float]:
    spec = build_spec({**raw, "epochs": 1})
    task = task_for(spec)
    data = task.load(spec.data, seed=0)
    params = task.default_params()
    members = 3 if case.endswith("-3") else 1
    networks = []
    for seed in range(members):
        torch.manual_seed(seed)
        networks.append(task.build_model(params, data.meta).eval())
    experiment = client.create_experiment(case)
    run = client.create_run(experiment).info.run_id
    seconds, cpu, uri = [], [], ""
    for _ in range(repeat):
        started, used = time.perf_counter(), time.process_time()
        if members == 1:
            info = log_model(run, experiment, task, networks[0], params, data, name=case)
        else:
            info = log_ensemble_model(run, experiment, task, networks, [params] * members,
                                      [1 / members] * members, True, data, name=case)
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
        uri = info.model_uri
    client.set_terminated(run)
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tempfile.mkdtemp()))
    total, without_code = folder_bytes(local)
    return {"s_per_model": round(statistics.median(seconds), 4),
            "fastest_s": round(min(seconds), 4),
            "cpu_s_per_model": round(statistics.median(cpu), 4), "bytes": total,
            "bytes_without_code": without_code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--server", action="store_true", help="log to a real mlflow server")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    workdir = Path(tempfile.mkdtemp(prefix="mltune-bench-"))
    server = MlflowServer(workdir / "server").start() if args.server else None
    try:
        uri = server.url if server else f"sqlite:///{workdir / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        client.search_experiments()  # create the store outside the timing
        measure("warm-up", CASES["image"], client, 1)  # imports and caches, not timed
        results = {case: measure(case, raw, client, args.repeat) for case, raw in CASES.items()}
    finally:
        if server:
            server.stop()
    store = "mlflow server on 127.0.0.1" if server else "local sqlite store"
    print(f"mltune {mltune.__file__}, {args.repeat} models per case, {store}")
    print(f"{'case':20}{'s/model':>10}{'fastest':>10}{'cpu s':>10}{'bytes':>10}"
          f"{'w/o code':>10}")
    for case, row in results.items():
        print(f"{case:20}{row['s_per_model']:10.3f}{row['fastest_s']:10.3f}"
              f"{row['cpu_s_per_model']:10.3f}{row['bytes']:10d}{row['bytes_without_code']:10d}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
