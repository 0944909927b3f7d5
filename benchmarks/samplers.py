"""Samplers compared: the best trial's validation score and its holdout score, per budget.

For each task (tabular: ``sklearn:breast_cancer``, image: ``sklearn:digits``), each algo
(hyperopt ``tpe`` and ``rand``; Optuna's ``optuna-tpe``, ``optuna-gp`` and ``auto``), each
budget (``--trials``) and each seed, one search through the public API (``mltune.tune``) with
the task's default space, on its own sqlite store in a temporary folder. A seed fixes the data
split and the sampler's draws: every algo sees the same splits (paired seeds).

Reported per task, budget and algo, as the mean over seeds (and their standard deviation):
the best trial's validation metric (``val_accuracy``: what the sampler optimised) and that
trial's test score. The test score is the promotion gate's: each search registers its best
trial's model and the gate scores it on the holdout split (``test_size``, never used to pick a
trial) with the spec's metric (``SearchResult.decision.challenger_score``). That is the
simplest honest measure: the code that decides promotions, on data no sampler saw. Each search
registers under its own model name, so no champion of another search is in the comparison.

Searches run as the product runs them (``pack: auto``: a pack's shape fixed, its members asked
together, pending until told); ``--pack 1`` asks one point at a time. ``--jobs`` searches run
side by side in worker processes, each with its share of the cores: a search's own time is
mostly single-threaded (tracking, the sampler), so two jobs on two cores roughly halve the wall
time. The sampler's own time is part of a search's: GP refits its model at every ask (about a
second per ask at 50 trials on the image space), TPE takes milliseconds.

The default run (2 tasks x 5 algos x budgets 20 and 50 x 3 seeds = 2,100 trials of 2 epochs)
is sized for about 15 minutes on 2 free cores: one seed of it (700 trials) took 389 s on 2
cores that other jobs shared (load 4-5). ``--epochs 1`` about halves it, but after one epoch
most digits trials are far from trained (val_accuracy 0.1 to 0.6 in one such search), and the
comparison measures who learns fastest in one epoch.

Run: python benchmarks/samplers.py [--trials 20 50] [--seeds 3] [--tasks tabular image]
     [--algos tpe rand optuna-tpe optuna-gp auto] [--epochs 2] [--pack auto] [--jobs 2]
The table is markdown (for the README), then one line reading it; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import statistics
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TASKS = {"tabular": "sklearn:breast_cancer", "image": "sklearn:digits"}
ALGOS = ("tpe", "rand", "optuna-tpe", "optuna-gp", "auto")


@dataclass(frozen=True)
class Case:
    """One search of the comparison."""

    task: str
    algo: str
    trials: int
    seed: int
    epochs: int
    pack: str
    device: str

    def overrides(self) -> dict[str, Any]:
        name = f"bench-{self.task}-{self.algo}-{self.trials}-{self.seed}"
        pack: int | str = int(self.pack) if self.pack.isdigit() else self.pack
        return {"task": self.task, "data": {"source": TASKS[self.task]}, "algo": self.algo,
                "max_evals": self.trials, "seed": self.seed, "epochs": self.epochs,
                "pack": pack, "device": self.device, "name": name, "registered_model": name}


@dataclass(frozen=True)
class Outcome:
    case: Case
    metric: str  # the validation metric searched (val_accuracy)
    val: float  # the best trial's
    test: float  # the same trial's model on the holdout (NaN: the gate could not score it)
    wall_s: float
    error: str | None = None
    finished: int = 0  # trials that finished (pruned and failed ones are not)


def quiet() -> None:
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")


def worker_init(threads: int) -> None:
    """Each worker: its share of the cores, no library chatter."""
    import torch

    torch.set_num_threads(threads)
    quiet()


def search(case: Case, folder: str) -> Outcome:
    """One search on its own store; the best trial's validation and holdout scores."""
    import mlflow

    import mltune

    name = case.overrides()["name"]
    mlflow.set_tracking_uri(f"sqlite:///{Path(folder) / name}.db")
    spec = mltune.load_spec(None, case.overrides())
    started = time.perf_counter()
    try:
        result = mltune.tune(spec)
    except mltune.MltuneError as exc:
        return Outcome(case, spec.metric, math.nan, math.nan, time.perf_counter() - started,
                       str(exc))
    wall = time.perf_counter() - started
    test = result.decision.challenger_score if result.decision else math.nan
    return Outcome(case, spec.metric, result.best_value, test, wall, result.gate_error,
                   result.finished)


def check_names(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Every algo and task the run asks for is valid before anything runs (an Optuna algo
    without the extra, a name not in the catalog): one line, not a failed worker."""
    import mltune

    for task in args.tasks:
        for algo in args.algos:
            try:
                mltune.load_spec(None, Case(task, algo, 2, 0, 1, args.pack,
                                            args.device).overrides())
            except mltune.MltuneError as exc:
                parser.error(str(exc))


def summary(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.pstdev(finite) if len(finite) > 1 else 0.0


def table(outcomes: list[Outcome], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for task in args.tasks:
        for trials in args.trials:
            for algo in args.algos:
                mine = [o for o in outcomes if (o.case.task, o.case.trials, o.case.algo)
                        == (task, trials, algo)]
                val, val_sd = summary([o.val for o in mine])
                test, test_sd = summary([o.test for o in mine])
                rows.append({"task": task, "trials": trials, "algo": algo,
                             "metric": mine[0].metric, "val": val, "val_sd": val_sd,
                             "test": test, "test_sd": test_sd,
                             "wall_s": sum(o.wall_s for o in mine),
                             "finished": sum(o.finished for o in mine),
                             "errors": sorted({o.error for o in mine if o.error})})
    return rows


def markdown(rows: list[dict[str, Any]], seeds: int) -> str:
    metric = rows[0]["metric"]
    holdout = "test_" + metric.removeprefix("val_")
    lines = [f"| task | trials | algo | best {metric} | its {holdout} | search s |",
             "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['trials']} | {r['algo']} | {r['val']:.4f} "
                     f"± {r['val_sd']:.4f} | {r['test']:.4f} ± {r['test_sd']:.4f} | "
                     f"{r['wall_s'] / seeds:.0f} |")
    return "\n".join(lines)


def reading(rows: list[dict[str, Any]]) -> str:
    """Per task and budget: the algo with the best mean test score, its lead over the next,
    and whether that lead is larger than the seeds' spread (else: a tie within noise)."""
    parts = []
    for key in dict.fromkeys((r["task"], r["trials"]) for r in rows):
        group = sorted((r for r in rows if (r["task"], r["trials"]) == key
                        and not math.isnan(r["test"])), key=lambda r: -r["test"])
        if not group:
            continue
        best = group[0]
        if len(group) == 1:
            parts.append(f"{key[0]}/{key[1]}: {best['algo']} {best['test']:.3f}")
            continue
        lead = best["test"] - group[1]["test"]
        noise = max(best["test_sd"], group[1]["test_sd"])
        verdict = "beyond" if lead > noise else "within"
        parts.append(f"{key[0]}/{key[1]}: {best['algo']} {best['test']:.3f}, "
                     f"+{lead:.3f} over {group[1]['algo']} ({verdict} the seeds' spread "
                     f"{noise:.3f})")
    return "Reading (best mean test score): " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--algos", nargs="+", default=list(ALGOS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pack", default="auto", help="auto (the product's default) or N")
    parser.add_argument("--jobs", type=int, default=2, help="searches side by side")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not (args.pack == "auto" or args.pack.isdigit()):
        parser.error(f"--pack: expected auto or a number, got {args.pack!r}")
    quiet()
    check_names(args, parser)
    cases = [Case(task, algo, trials, seed, args.epochs, args.pack, args.device)
             for task in args.tasks for trials in args.trials for algo in args.algos
             for seed in range(args.seeds)]
    cases.sort(key=lambda c: (-c.trials, c.task != "image"))  # longest first: even finish
    jobs = max(1, min(args.jobs, len(cases)))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    folder = tempfile.mkdtemp(prefix="mltune-samplers-")
    started = time.perf_counter()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=worker_init, initargs=(threads,)) as pool:
        outcomes = list(pool.map(search, cases, [folder] * len(cases)))
    wall = time.perf_counter() - started
    rows = table(outcomes, args)
    print(markdown(rows, args.seeds))
    print()
    print(reading(rows))
    for r in rows:
        for error in r["errors"]:
            print(f"note: {r['task']}/{r['trials']}/{r['algo']}: {error}")
        if r["finished"] < r["trials"] * args.seeds:
            print(f"note: {r['task']}/{r['trials']}/{r['algo']}: {r['finished']} of "
                  f"{r['trials'] * args.seeds} trials finished")
    print(f"{len(cases)} searches, {sum(c.trials for c in cases)} trials of {args.epochs} "
          f"epochs, {jobs} at a time on {args.device}: {wall:.0f} s wall")
    print(json.dumps({"wall_s": round(wall, 1), "jobs": jobs, "epochs": args.epochs,
                      "pack": args.pack, "seeds": args.seeds, "rows": rows,
                      "searches": [asdict(o) | {"case": asdict(o.case)} for o in outcomes]},
                     default=str))


if __name__ == "__main__":
    main()
