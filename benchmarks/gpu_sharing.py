"""Small trials sharing one GPU: k trials at once in worker processes vs one after another.

A small trial leaves most of a large GPU idle (kernel launches, not arithmetic, set its pace).
Each worker process trains the same small CNN with ``mltune.train.fit`` for a fixed number of
epochs on its own copy of the data; the aggregate samples/s of k concurrent workers is
compared with the same k trainings run one at a time. This is what the Ray backend's
fractional ``gpus_per_worker`` buys. On a machine without CUDA it says so and exits.

Run: python benchmarks/gpu_sharing.py [--workers 4] [--epochs 3]
The last line is JSON with sequential and concurrent samples/s and their ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time

import torch

PARAMS = {"num_blocks": 2, "channels": 16, "kernel_size": 3, "hidden_size": 64,
          "activation": "relu", "batch_norm": True, "dropout": 0.0, "learning_rate": 0.001,
          "optimizer": "adam", "batch_size": 128, "weight_init": "default"}


def train_once(epochs: int, samples: int, start: mp.Event | None = None) -> float:
    """One small trial's training on cuda; returns its seconds (after the start signal)."""
    from throughput import synthetic_images

    from mltune.tasks import get_task
    from mltune.training.engine import fit

    task = get_task("image")
    data = synthetic_images(samples, 16, torch.device("cuda"))
    model = task.build_model(PARAMS, data.meta)
    fit(model, data, PARAMS, loss_fn=task.make_loss(PARAMS, data),
        score=lambda out, y: task.score(out, y, data.meta), epochs=1, seed=0)  # warm-up
    if start is not None:
        start.wait()
    started = time.perf_counter()
    fit(model, data, PARAMS, loss_fn=task.make_loss(PARAMS, data),
        score=lambda out, y: task.score(out, y, data.meta), epochs=epochs, seed=0)
    torch.cuda.synchronize()
    return time.perf_counter() - started


def _worker(epochs: int, samples: int, start: mp.Event, out: mp.Queue) -> None:
    out.put(train_once(epochs, samples, start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    trained = args.workers * args.epochs * int(args.samples * 0.9)
    context = mp.get_context("spawn")

    sequential = sum(train_once(args.epochs, args.samples) for _ in range(args.workers))

    start, out = context.Event(), context.Queue()
    workers = [context.Process(target=_worker, args=(args.epochs, args.samples, start, out))
               for _ in range(args.workers)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)
    began = time.perf_counter()
    start.set()
    [out.get() for _ in workers]  # every worker is done training
    concurrent = time.perf_counter() - began
    for worker in workers:
        worker.join()

    ratio = sequential / concurrent
    print(f"{args.workers} small trials ({args.epochs} epochs x {int(args.samples * 0.9)} "
          f"samples of 16x16x3) on {torch.cuda.get_device_name()}")
    print(f"one after another: {sequential:.1f} s ({trained / sequential:.0f} samples/s); "
          f"{args.workers} at once: {concurrent:.1f} s ({trained / concurrent:.0f} samples/s); "
          f"throughput x{ratio:.2f}")
    print(json.dumps({"workers": args.workers,
                      "sequential_samples_per_s": round(trained / sequential),
                      "concurrent_samples_per_s": round(trained / concurrent),
                      "speedup": round(ratio, 3)}))


if __name__ == "__main__":
    main()
