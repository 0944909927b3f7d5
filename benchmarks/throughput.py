"""Samples/s inside an mltune trial vs a bare PyTorch loop: same network, data, batches.

- bare: the loop one writes by hand: device-resident tensors, a shuffled index per epoch,
  forward, loss, backward, step (autocast when a precision is asked for).
- mltune: ``mltune.train.fit`` as a trial runs it, with the epoch's metrics sent to a real
  MLflow run (sqlite store) and the validation pass every epoch.

Both are timed after a warm-up epoch, in the same process, alternately. On CUDA the GPU's
utilisation is sampled through NVML while each runs (needs nvidia-ml-py), and bf16 is
compared with fp32.

Run: python benchmarks/throughput.py [--device auto] [--epochs 3] [--samples 20000]
The last line is JSON with the ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import mlflow
import torch

from mltune.core.terms import TrialStatus
from mltune.data.splits import TaskData
from mltune.tasks import get_task
from mltune.tracking.runs import TrialRun
from mltune.training.device import resolve_device
from mltune.training.engine import fit
from mltune.training.precision import resolve_precision

PARAMS = {"num_blocks": 3, "channels": 32, "kernel_size": 3, "hidden_size": 128,
          "activation": "relu", "batch_norm": True, "dropout": 0.1, "lr": 0.001,
          "optimizer": "adam", "batch_size": 256, "weight_init": "default"}


def synthetic_images(samples: int, size: int, device: torch.device) -> TaskData:
    """Colour images whose class is the brightest channel's quadrant: learnable, any size."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(samples, 3, size, size, generator=generator) * 255
    y = torch.randint(0, 4, (samples,), generator=generator)
    half = size // 2
    for label in range(4):
        rows, cols = divmod(label, 2)
        x[y == label, 0, rows * half:(rows + 1) * half, cols * half:(cols + 1) * half] += 100
    n_val = samples // 10
    meta = {"classes": ["a", "b", "c", "d"], "height": size, "width": size, "channels": 3,
            "mean": [150.0, 127.5, 127.5], "std": [80.0, 73.6, 73.6], "source": "synthetic",
            "mode": "RGB"}
    return TaskData(x[n_val:], y[n_val:], x[:n_val], y[:n_val], x[:0], y[:0], meta=meta,
                    fingerprint="synthetic").to(device)


class Utilisation:
    """Mean GPU utilisation (%) while a block runs, sampled by NVML every 50 ms."""

    def __init__(self, device: torch.device) -> None:
        self.handle = None
        if device.type == "cuda":
            try:
                import pynvml

                pynvml.nvmlInit()
                self.nvml = pynvml
                self.handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            except Exception:  # no NVML: utilisation is not reported
                self.handle = None

    @contextmanager
    def measure(self, into: dict[str, float]):
        if self.handle is None:
            yield
            return
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
                time.sleep(0.05)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            into["gpu_util_pct"] = sum(samples) / max(len(samples), 1)


def bare_loop(data: TaskData, precision: str, epochs: int) -> float:
    """Samples/s of the hand-written loop (the first epoch is a warm-up, not timed)."""
    task = get_task("image")
    torch.manual_seed(0)
    model = task.build_model(PARAMS, data.meta).to(data.x_train.device)
    channels_last = data.x_train.is_cuda
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp = resolve_precision(precision, data.x_train.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=PARAMS["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()
    n, batch = len(data.x_train), PARAMS["batch_size"]
    started = 0.0
    for epoch in range(epochs + 1):
        if epoch == 1:
            _sync(data)
            started = time.perf_counter()
        model.train()
        order = torch.randperm(n, device=data.x_train.device)
        for start in range(0, n, batch):
            index = order[start:start + batch]
            x = data.x_train[index]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with amp.autocast() if amp.name != "fp32" else nullcontext():
                loss = loss_fn(model(x), data.y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _sync(data)
    return n * epochs / (time.perf_counter() - started)


def mltune_trial(data: TaskData, precision: str, epochs: int, run: TrialRun,
                 compile_model: bool = False) -> float:
    """Samples/s of ``fit`` as a trial runs it (epoch 1 is the warm-up, not timed)."""
    task = get_task("image")
    torch.manual_seed(0)
    model = task.build_model(PARAMS, data.meta)
    started = time.perf_counter()
    times: list[float] = []

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        run.log_epoch(epoch, metrics)
        times.append(time.perf_counter())  # fit has read the epoch's loss back: synchronised

    fit(model, data, PARAMS, loss_fn=task.make_loss(PARAMS, data),
        score=lambda out, y: task.score(out, y, data.meta), epochs=epochs + 1, seed=0,
        on_epoch=on_epoch, precision=precision, compile_model=compile_model)
    run.flush()
    if compile_model:
        print(f"  compiled: first epoch (compiling) {times[0] - started:.1f} s")
    return len(data.x_train) * epochs / (times[-1] - times[0])


def _sync(data: TaskData) -> None:
    if data.x_train.is_cuda:
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=PARAMS["channels"])
    parser.add_argument("--batch-size", type=int, default=PARAMS["batch_size"])
    parser.add_argument("--compile", action="store_true",
                        help="also time a torch.compile'd trial (compile time printed apart)")
    args = parser.parse_args()
    PARAMS.update(channels=args.channels, batch_size=args.batch_size)
    device = resolve_device(args.device)
    data = synthetic_images(args.samples, args.size, device)
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'throughput.db'}")
    utilisation = Utilisation(device)
    precisions = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
    results: dict[str, dict[str, float]] = {}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device={device} ({name}) samples={len(data.x_train)} image={args.size}x{args.size}x3 "
          f"batch={PARAMS['batch_size']} channels={PARAMS['channels']} epochs timed={args.epochs}")
    for precision in precisions:
        row: dict[str, float] = {}
        bare_util: dict[str, float] = {}
        with utilisation.measure(bare_util):
            row["bare"] = bare_loop(data, precision, args.epochs)
        trial_util: dict[str, float] = {}
        run = TrialRun.open(None, 0, PARAMS, device, precision=precision)
        with utilisation.measure(trial_util):
            row["mltune"] = mltune_trial(data, precision, args.epochs, run)
        run.end(TrialStatus.FINISHED)
        row["ratio"] = row["mltune"] / row["bare"]
        if bare_util:
            row["bare_gpu_util_pct"] = bare_util["gpu_util_pct"]
            row["mltune_gpu_util_pct"] = trial_util["gpu_util_pct"]
        if args.compile:
            run = TrialRun.open(None, 0, PARAMS, device, precision=precision)
            row["compiled"] = mltune_trial(data, precision, args.epochs, run, True)
            run.end(TrialStatus.FINISHED)
            row["compile_speedup"] = row["compiled"] / row["mltune"]
            print(f"{precision:5} compiled {row['compiled']:10.0f} samples/s after compiling: "
                  f"{row['compile_speedup']:.2f}x the uncompiled trial")
        results[precision] = row
        util = (f"  GPU util bare {row['bare_gpu_util_pct']:.0f}% / mltune "
                f"{row['mltune_gpu_util_pct']:.0f}%" if bare_util else "")
        print(f"{precision:5} bare {row['bare']:10.0f} samples/s  mltune {row['mltune']:10.0f} "
              f"samples/s  ratio {row['ratio']:.3f}{util}")
    summary = {"device": device.type, **{f"{p}_ratio": round(r["ratio"], 3)
                                         for p, r in results.items()}}
    if "bf16" in results:
        summary["bf16_speedup"] = round(results["bf16"]["mltune"] / results["fp32"]["mltune"], 3)
        print(f"bf16 vs fp32 inside a trial: {summary['bf16_speedup']:.2f}x samples/s")
    summary.update({f"{p}_mltune_samples_per_s": round(r["mltune"]) for p, r in results.items()})
    summary.update({f"{p}_compile_speedup": round(r["compile_speedup"], 3)
                    for p, r in results.items() if "compile_speedup" in r})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
