"""Trial packing: the same configurations trained packed and one at a time, side by side.

For each case, K configurations of one shape (different learning rates, weight decays and
initialisations) are trained twice with full logging to a local sqlite store (a child run per
trial, per-epoch metrics, the model): as one pack and one after another (the search's driver
over ``FixedPoints``), with the same seeds and the same batch order. Printed:
trials/hour both ways, the ratio, and the largest difference of any member's final validation
metric from the same configuration trained alone (fp32: ~0 up to rounding; BatchNorm makes it
~1e-3, see the README).

Cases: the tabular MLP on breast_cancer and on a 50,000-row synthetic table, the digits CNN,
and the recurrent question: K GRU layers run as K cuDNN/ATen calls against one batched GRU cell
(stacked weights, one batched matmul per step), forward and backward.

Run: python benchmarks/packing.py [--device cpu|cuda] [--members 8] [--quick]
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from torch import nn

import mltune
from mltune.core.interrupts import Stop
from mltune.search.packs.coordinator import FixedPoints
from mltune.search.packs.driver import Driver
from mltune.search.packs.lane import Lane
from mltune.spec.space import decode
from mltune.tasks import task_for
from mltune.tracking.background import Finisher
from mltune.tracking.runs import start_search
from mltune.tracking.tracker import MlflowTracker
from mltune.training.device import resolve_device

RATES = [3e-3, 1e-2, 1e-3, 5e-3, 2e-3, 7e-3, 4e-4, 1.5e-2, 6e-4, 8e-3, 2.5e-3, 1.2e-3, 9e-3,
         3.5e-3, 5e-4, 2e-2]
INITS = ["default", "xavier_uniform", "kaiming_uniform", "orthogonal"]


def synthetic_table(folder: Path, rows: int) -> str:
    """A 20-feature table whose target is a noisy linear rule (seeded)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 20))
    score = x @ rng.normal(size=20) + rng.normal(scale=2.0, size=rows)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(20)])
    frame["label"] = np.where(score > 0, "yes", "no")
    path = folder / "synthetic.csv"
    frame.to_csv(path, index=False)
    return str(path)


def members(base: dict, k: int) -> list[dict]:
    return [{**base, "learning_rate": RATES[i % len(RATES)], "weight_decay": 10.0 ** -(4 + i % 3),
             "weight_init": INITS[i % len(INITS)]} for i in range(k)]


CASES = {
    "tabular breast_cancer": (
        {"task": "tabular", "epochs": 10},
        {"num_layers": 2, "hidden_size": 64, "activation": "relu", "dropout": 0.0,
         "norm": "layer", "optimizer": {"name": "adam"}, "batch_size": 64,
         "loss": "cross_entropy"}),
    "tabular 50,000 rows": (
        {"task": "tabular", "epochs": 2, "data.target": "label"},
        {"num_layers": 2, "hidden_size": 128, "activation": "relu", "dropout": 0.0,
         "norm": "batch", "optimizer": {"name": "adamw"}, "batch_size": 256,
         "loss": "cross_entropy"}),
    "digits CNN": (
        {"task": "image", "epochs": 3},
        {"num_blocks": 2, "channels": 16, "kernel_size": 3, "hidden_size": 64,
         "activation": "relu", "batch_norm": True, "dropout": 0.0, "loss": "cross_entropy",
         "optimizer": {"name": "adam"}, "batch_size": 64, "augment_shift": 0.0,
         "augment_rotation": 0.0, "augment_flip": False}),
}


def run_case(name: str, overrides: dict, base: dict, k: int, device: torch.device,
             folder: Path) -> dict:
    spec = mltune.load_spec(None, {**overrides, "seed": 0, "precision": "fp32",
                                   "name": f"packing {name}"})
    task = task_for(spec)
    data = task.load(spec.data, spec.seed).to(device)
    search = start_search(spec, data.fingerprint)
    finisher = Finisher()  # models logged in the background, as in a search
    tracker = MlflowTracker(search, task, data, device, precision="fp32", finisher=finisher)
    trials = [(i + 1, decode(c)) for i, c in enumerate(members(base, k))]
    lane = Lane(spec, task, data, device, str(device))

    def train(points: FixedPoints) -> tuple[float, list]:
        started = time.perf_counter()
        Driver(lane, points, tracker, Stop()).run()  # it waits for its models
        return time.perf_counter() - started, [points.outcomes[n] for n, _ in trials]

    packed_s, packed = train(FixedPoints(trials, pack=1))
    alone_s, alone = train(FixedPoints(trials))
    finisher.close()
    metric = spec.metric
    differences = [abs(p.metrics[metric] - a.metrics[metric])
                   for p, a in zip(packed, alone, strict=True)
                   if metric in p.metrics and metric in a.metrics]
    row = {"members": k, "packed_trials_per_hour": 3600 * k / packed_s,
           "alone_trials_per_hour": 3600 * k / alone_s, "ratio": alone_s / packed_s,
           "max_metric_difference": max(differences) if differences else None,
           "metric": metric, "finished": sum(p.status == "FINISHED" for p in packed)}
    print(f"{name:24} K={k:2}  packed {row['packed_trials_per_hour']:8.0f} trials/h  alone "
          f"{row['alone_trials_per_hour']:8.0f} trials/h  ratio {row['ratio']:.2f}x  "
          f"max |d {metric}| {row['max_metric_difference']:.2g}", flush=True)
    return row


class BatchedGRU(nn.Module):
    """K GRU layers as one: stacked weights, one batched matmul per time step."""

    def __init__(self, k: int, inputs: int, hidden: int) -> None:
        super().__init__()
        scale = hidden ** -0.5
        self.w_ih = nn.Parameter(torch.empty(k, inputs, 3 * hidden).uniform_(-scale, scale))
        self.w_hh = nn.Parameter(torch.empty(k, hidden, 3 * hidden).uniform_(-scale, scale))
        self.b = nn.Parameter(torch.zeros(k, 1, 3 * hidden))
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, F) shared by members
        k, n = self.w_ih.shape[0], x.shape[0]
        gates_x = torch.einsum("ntf,kfg->ktng", x, self.w_ih) + self.b.unsqueeze(1)
        h = x.new_zeros(k, n, self.hidden)
        for t in range(x.shape[1]):
            gx = gates_x[:, t]
            gh = torch.bmm(h, self.w_hh)
            r = torch.sigmoid(gx[..., :self.hidden] + gh[..., :self.hidden])
            z = torch.sigmoid(gx[..., self.hidden:2 * self.hidden]
                              + gh[..., self.hidden:2 * self.hidden])
            c = torch.tanh(gx[..., 2 * self.hidden:] + r * gh[..., 2 * self.hidden:])
            h = (1 - z) * c + z * h
        return h


def recurrent_case(k: int, device: torch.device, steps: int = 5) -> dict:
    """Forward+backward of K GRU layers: K separate nn.GRU calls vs one batched cell."""
    x = torch.randn(64, 30, 32, device=device)
    separate = [nn.GRU(32, 64, batch_first=True).to(device) for _ in range(k)]
    batched = BatchedGRU(k, 32, 64).to(device)

    def timed(step) -> float:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def one_by_one() -> None:
        for gru in separate:
            gru(x)[1].sum().backward()

    def at_once() -> None:
        batched(x).sum().backward()

    loop_s, batched_s = timed(one_by_one), timed(at_once)
    row = {"members": k, "separate_s": loop_s, "batched_s": batched_s,
           "batched_speedup": loop_s / batched_s}
    print(f"{'recurrent (GRU layer)':24} K={k:2}  {k} nn.GRU calls {loop_s:.3f} s  one batched "
          f"cell {batched_s:.3f} s  speedup {row['batched_speedup']:.2f}x", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="fewer epochs (a smoke run)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    folder = Path(tempfile.mkdtemp(prefix="mltune-packing-"))
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    if device.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    CASES["tabular 50,000 rows"][0]["data.source"] = synthetic_table(folder, 50_000)
    results: dict[str, dict] = {}
    print(f"device={device} members={args.members}")
    for name, (overrides, base) in CASES.items():
        if args.quick:
            overrides = {**overrides, "epochs": 1}
        results[name] = run_case(name, overrides, base, args.members, device, folder)
    results["recurrent"] = recurrent_case(args.members, device)
    print(json.dumps({"device": str(device), "results": results}))


if __name__ == "__main__":
    main()
