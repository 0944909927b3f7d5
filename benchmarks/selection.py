"""Model selection: does the way the registered model is chosen and trained make it better on
the holdout split, at equal wall time?

For each data set (``breast_cancer``: the tabular MLP on scikit-learn's bundled table;
``digits``: the image task's CNN on 400 of scikit-learn's 8x8 digits, a seeded subsample
written as a folder of grey PNGs, one sub-folder per class, read at ``data.image_size: 8``,
since the image task has no row-limit option; ``synthetic``: the tabular MLP on a seeded,
noisy 2,000-row ``make_classification`` table, ``flip_y=0.2``, written as a CSV with target
column ``label``), each seed and each mode, one search with the task's default space,
``--epochs`` per trial and a time budget of ``--budget-s`` seconds (``stop: {time_budget_s:
T}``, ``max_evals`` out of reach). A seed fixes the data split, the sampler's draws and the
networks' initial weights: every mode sees the same splits (paired seeds).

Modes (``--modes``), each a spec override on the same base spec, searched through the public
API (``mltune.tune``) with full tracking, each on its own sqlite store in a temporary folder:

- ``one``: one validation split, mltune's defaults (no refit, no ensemble): the best trial's
  model is registered;
- ``cv``: ``cv: 5`` + ``refit: false`` (k-fold cross-validation per trial; the best trial's
  model, the average of its 5 fold networks, is registered);
- ``cv_refit``: ``cv: 5`` + ``refit: true`` (what ``cv: 5`` alone does);
- ``cv_refit_ensemble``: ``cv: 5`` + ``refit: true`` + ``ensemble: 5``;
- ``refit``: ``refit: true`` (the best configuration trained again on train + validation);
- ``ensemble``: ``ensemble: 5`` (greedy ensemble selection over the finished trials);
- ``refit_ensemble``: ``refit: true`` + ``ensemble: 5``.

A mode whose spec keys the spec refuses is skipped with a printed note.

The clock starts when the data has loaded (``on_start``, once the parent run is open); each
trial's end is the moment the search records it (the ``progress`` callback). The budget ends
the search; what runs after it (the refit, the ensemble's selection, registration, the
promotion gate, the report) is not in the budget: ``after s`` shows what each mode spends
there (from the last trial's end to ``tune`` returning).

Reported per data set and mode, as the mean over seeds with the min..max over seeds beside it:

- ``best val``: the best finished trial's validation metric (``SearchResult.best_value``). For
  refit and ensemble runs too, this is the best trial's value, not the refit's (its ``val_*``
  rows were trained on) nor the ensemble's (selected on those very rows): the validation
  figure the choice was made on;
- ``holdout``: the REGISTERED model on the holdout split (``test_size``, never used to pick a
  trial or members) with the spec's metric: the promotion gate's score
  (``SearchResult.decision.challenger_score``, the model as served: the refit's, the
  ensemble's or the best trial's). Each search registers under its own model name, so no
  other search's champion is in the comparison;
- ``gap``: the optimism gap, ``best val`` minus ``holdout`` (for a metric to minimise,
  ``holdout`` minus ``best val``): positive when the validation figure flattered the model;
- ``trials``: trials ended in the budget (finished, pruned and failed);
- ``search s``: seconds from the clock's start to the last trial's end;
- ``after s``: seconds from the last trial's end until ``tune`` returned;
- ``members``: the registered ensemble's size (1: the best trial stood alone); ``n/a``
  without ``ensemble``.

A third figure, per data set: the cost of one 5-fold trial (the task's defaults, ``--epochs``
epochs) trained as one pack of 5 fold members, against its 5 folds trained one after another
(each on its own rows, scored on its own fold), through the same engine; the median of 3
repeats of each, interleaved.

Sizing: each search takes the budget, plus how far its last trial or pack runs past it, plus
``after s`` and a few seconds of set-up. The default run (3 data sets x 5 seeds x the modes
the spec accepts, 4 today, 7 once ``cv`` exists, at 30 s) is 60 searches today (105 later) of
some 35-45 s, about 40-45 minutes today (70-80 later), one search after another in one
process. The smoke run (``--budget-s 15 --seeds 1 --datasets breast_cancer --modes
one,cv,refit,ensemble``: three searches of 20-23 s, ``cv`` skipped with a note) took 82 s on
two shared cores.

Run: python benchmarks/selection.py [--budget-s 30] [--seeds 5] [--epochs 10]
     [--datasets breast_cancer,digits,synthetic]
     [--modes one,cv,cv_refit,cv_refit_ensemble,refit,ensemble,refit_ensemble]
     [--rows 2000] [--digits 400] [--device cpu] [--threads 0] [--markdown PATH]
     [--cost-only]  (the third figure alone)
The tables print as text (and as markdown to PATH when given); the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from search_common import markdown_table, quiet, spread, synthetic_csv, text_table, warm_up

MAX_EVALS = 10_000  # out of reach: the time budget ends each search
FOLDS = 5
MEMBERS = 5
MODES: dict[str, dict[str, Any]] = {
    "one": {},
    "cv": {"cv": FOLDS, "refit": False},
    "cv_refit": {"cv": FOLDS, "refit": True},
    "cv_refit_ensemble": {"cv": FOLDS, "refit": True, "ensemble": MEMBERS},
    "refit": {"refit": True},
    "ensemble": {"ensemble": MEMBERS},
    "refit_ensemble": {"refit": True, "ensemble": MEMBERS},
}
DATASETS = ("breast_cancer", "digits", "synthetic")


@dataclass
class Run:
    """One search of one mode, data set and seed."""

    dataset: str
    mode: str
    seed: int
    metric: str
    mode_dir: str  # max | min
    val: float = math.nan
    test: float = math.nan
    gap: float = math.nan
    trials: int = 0
    search_s: float = 0.0
    after_s: float = 0.0
    members: int | None = None  # the registered ensemble's size; None without ensemble
    registered: str = ""  # whose model was registered: trial, refit or ensemble
    errors: list[str] = field(default_factory=list)


def digits_folder(folder: Path, count: int) -> str:
    """``count`` of scikit-learn's digits (a seeded subsample) as grey 8x8 PNGs, one
    sub-folder per class (the image task's folder layout)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    chosen = np.random.default_rng(0).choice(len(digits.target), size=count, replace=False)
    root = folder / f"digits_{count}"
    for i in chosen:
        pixels = np.clip(np.rint(digits.images[i] * 255.0 / 16.0), 0, 255).astype(np.uint8)
        target = root / str(int(digits.target[i]))
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(target / f"{int(i):04d}.png")
    return str(root)


def base_spec(dataset: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    if dataset == "breast_cancer":
        return {"task": "tabular", "data": {"source": "sklearn:breast_cancer"}}
    if dataset == "digits":
        return {"task": "image",
                "data": {"source": digits_folder(folder, args.digits), "image_size": 8}}
    return {"task": "tabular",
            "data": {"source": synthetic_csv(folder, args.rows, flip_y=0.2), "target": "label"}}


def overrides(base: dict[str, Any], mode: str, seed: int, args: argparse.Namespace,
              dataset: str) -> dict[str, Any]:
    name = f"selection-{dataset}-{mode}-{seed}"
    return {**base, **MODES[mode], "seed": seed, "epochs": args.epochs,
            "max_evals": MAX_EVALS, "stop": {"time_budget_s": args.budget_s},
            "device": args.device, "name": name, "registered_model": name}


def run_mltune(dataset: str, mode: str, seed: int, spec_overrides: dict[str, Any],
               folder: Path) -> Run:
    import mlflow

    import mltune
    name = spec_overrides["name"]
    mlflow.set_tracking_uri(f"sqlite:///{folder / name}.db")
    spec = mltune.load_spec(None, spec_overrides)
    run = Run(dataset, mode, seed, spec.metric, spec.mode)
    clock: dict[str, float] = {}
    ends: list[float] = []

    def started() -> None:
        clock["t0"] = time.monotonic()

    def progress(outcome: Any, best: float | None) -> None:
        ends.append(time.monotonic() - clock["t0"])

    try:
        result = mltune.tune(spec, progress=progress, on_start=started)
    except mltune.MltuneError as exc:
        run.errors.append(str(exc))
        return run
    total = time.monotonic() - clock["t0"]
    run.val = result.best_value
    run.test = result.decision.challenger_score if result.decision else math.nan
    sign = 1.0 if spec.mode == "max" else -1.0
    run.gap = sign * (run.val - run.test)
    run.trials = len(result.trials)
    run.search_s = ends[-1] if ends else 0.0
    run.after_s = total - run.search_s
    if (spec.ensemble or 0) > 1:
        run.members = len(result.ensemble.members if result.ensemble else []) or 1
    run.registered = result.registered_from
    run.errors = [e for e in (result.gate_error, result.refit and result.refit.error,
                              result.ensemble and result.ensemble.error) if e]
    return run


def rows_of(runs: list[Run], dataset: str, modes: list[str]) -> list[dict[str, Any]]:
    rows = []
    for mode in modes:
        mine = [r for r in runs if r.dataset == dataset and r.mode == mode]
        if not mine:
            continue
        members = [float(r.members) for r in mine if r.members is not None]
        rows.append({
            "mode": mode, "metric": mine[0].metric,
            "val": spread([r.val for r in mine]), "test": spread([r.test for r in mine]),
            "gap": spread([r.gap for r in mine]),
            "trials": spread([float(r.trials) for r in mine], 1),
            "mean_trials": statistics.fmean(r.trials for r in mine),
            "search_s": spread([r.search_s for r in mine], 1),
            "after_s": spread([r.after_s for r in mine], 1),
            "members": spread(members, 1) if members else "n/a",
            "registered": ",".join(sorted({r.registered for r in mine if r.registered})),
            "errors": sorted({e for r in mine for e in r.errors})})
    return rows


COLUMNS = (("mode", "mode"), ("val", "best {val}"), ("test", "registered {test}"),
           ("gap", "gap"), ("trials", "trials"), ("search_s", "search s"),
           ("after_s", "after s"), ("members", "members"), ("registered", "registered"))


def usable_modes(modes: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """The modes asked for that the spec accepts; a refused one is skipped with a note."""
    import mltune

    kept = []
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--modes: unknown mode {mode!r}; known: {', '.join(MODES)}")
        try:
            mltune.load_spec(None, {"task": "tabular", **MODES[mode],
                                    "data": {"source": "sklearn:breast_cancer"}})
        except mltune.MltuneError as exc:
            print(f"note: mode {mode} skipped: the spec refuses it: {exc}")
            continue
        kept.append(mode)
    return kept


def cv_pack_cost(base: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    """One 5-fold trial of the task's defaults as one pack vs its folds one after another:
    seconds of each (median of 3, interleaved) and their ratio."""
    from dataclasses import replace

    import torch

    import mltune
    from mltune.data.folds import pooled
    from mltune.search.packs.folds import search_folds
    from mltune.tasks import task_for
    from mltune.training.engine import Member, PackTrainer

    spec = mltune.load_spec(None, {**base, "cv": FOLDS, "device": args.device})
    task = task_for(spec)
    device = torch.device(args.device)
    data = task.load(task.resolve_data(spec.data, spec.space), 0).to(device)
    folds = search_folds(spec, task, data)
    assert folds is not None
    joined = pooled(data)
    params = task.default_params()

    def score(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return task.score(outputs, targets, data.meta)

    def member(rows: Any = None) -> Member:
        return Member(params, task.make_loss(params, data), rows)

    def train(networks: list, members: list, on: Any) -> None:
        trainer = PackTrainer(on, networks, members, score=score, seed=0)
        for _ in range(args.epochs):
            trainer.step_epoch()

    def packed() -> None:
        networks = [task.build_model(params, data.meta) for _ in folds]
        train(networks, [member(f) for f in folds], joined)

    def one_after_another() -> None:
        for fold in folds:
            own = replace(joined, x_train=joined.x_train[fold.train],
                          y_train=joined.y_train[fold.train],
                          x_val=joined.x_train[fold.scored], y_val=joined.y_train[fold.scored])
            train([task.build_model(params, data.meta)], [member()], own)

    times: dict[str, list[float]] = {"pack": [], "sequential": []}
    for _ in range(3):
        for name, work in (("pack", packed), ("sequential", one_after_another)):
            t = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - t)
    pack, sequential = statistics.median(times["pack"]), statistics.median(times["sequential"])
    return {"pack_s": round(pack, 3), "sequential_s": round(sequential, 3),
            "ratio": round(pack / sequential, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=30.0, help="wall-clock budget T")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--rows", type=int, default=2_000, help="rows of the synthetic table")
    parser.add_argument("--digits", type=int, default=400, help="images of the digits subsample")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    parser.add_argument("--cost-only", action="store_true",
                        help="only the 5-fold pack vs its folds one after another")
    args = parser.parse_args()
    datasets = [d for d in args.datasets.split(",") if d]
    for d in datasets:
        if d not in DATASETS:
            parser.error(f"--datasets: unknown {d!r}; known: {', '.join(DATASETS)}")
    quiet()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    modes = usable_modes([m for m in args.modes.split(",") if m], parser)
    if args.cost_only:
        modes = []
    folder = Path(tempfile.mkdtemp(prefix="mltune-selection-"))
    warm_up(folder, args.device)
    started = time.perf_counter()
    runs: list[Run] = []
    for dataset in datasets:
        base = base_spec(dataset, folder, args)
        for seed in range(args.seeds):
            for mode in modes:
                spec = overrides(base, mode, seed, args, dataset)
                t = time.perf_counter()
                run = run_mltune(dataset, mode, seed, spec, folder)
                runs.append(run)
                print(f"  {dataset} seed {seed} {mode}: best {run.metric} {run.val:.4f}, "
                      f"registered ({run.registered or 'none'}) holdout {run.test:.4f}, "
                      f"gap {run.gap:+.4f}, {run.trials} trials in {run.search_s:.1f} s "
                      f"+ {run.after_s:.1f} s after ({time.perf_counter() - t:.0f} s with "
                      "set-up)" + "".join(f"; note: {e}" for e in run.errors), flush=True)
    wall = time.perf_counter() - started
    costs = {d: cv_pack_cost(base_spec(d, folder, args), args) for d in datasets}
    tables, markdown = {}, []
    for dataset in datasets:
        rows = rows_of(runs, dataset, modes)
        if not rows:
            continue
        tables[dataset] = rows
        title = (f"{dataset}: budget {args.budget_s:g} s, {args.epochs} epochs/trial, "
                 f"{args.seeds} seed(s), mean [min..max] over seeds")
        print(f"\n{title}\n{text_table(rows, COLUMNS)}")
        print("mean trials: " + ", ".join(f"{r['mode']} {r['mean_trials']:.1f}" for r in rows))
        for r in rows:
            for error in r["errors"]:
                print(f"note: {dataset}/{r['mode']}: {error}")
        markdown += [f"### {title}", "", markdown_table(rows, COLUMNS), ""]
    for dataset, cost in costs.items():
        line = (f"{dataset}: a {FOLDS}-fold trial as one pack {cost['pack_s']:.2f} s, its folds "
                f"one after another {cost['sequential_s']:.2f} s: {cost['ratio']:.2f}x")
        print(line)
        markdown += [f"- {line}"]
    if args.markdown:
        args.markdown.write_text("\n".join(markdown))
        print(f"\nmarkdown written to {args.markdown}")
    print(f"{len(runs)} searches on {args.device}: {wall:.0f} s wall")
    print(json.dumps({"budget_s": args.budget_s, "epochs": args.epochs, "seeds": args.seeds,
                      "modes": modes, "wall_s": round(wall, 1), "tables": tables,
                      "cv_pack_cost": costs, "runs": [asdict(r) for r in runs]}, default=str))


if __name__ == "__main__":
    main()
