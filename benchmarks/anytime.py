"""Anytime performance: what each search mode reaches within a wall-clock budget, against an
untracked Optuna loop over the same networks.

For each data set (``breast_cancer``: the tabular MLP on scikit-learn's bundled table;
``digits``: the image task's CNN on scikit-learn's bundled 8x8 digits, ``sklearn:digits``;
``synthetic``: the tabular MLP on a seeded 50,000-row ``make_classification`` table written as
a CSV), each seed and each mode, one search with the task's default space, ``--epochs`` per
trial and a time budget of ``--budget-s`` seconds. A seed fixes the data split, the sampler's
draws and the networks' initial weights: every mode sees the same splits (paired seeds).

Modes (``--modes``), each a spec override on the same base spec, searched through the public
API (``mltune.tune``) with full tracking, each on its own sqlite store in a temporary folder:

- ``default``: mltune's defaults (``pack: auto``, ``algo: tpe``, no pruning);
- ``asha``, ``hyperband``, ``pbt``: ``pruning: {rule: ...}``. A rule the spec refuses (one not
  built yet on this branch) is skipped with a printed note, so the script runs today and picks
  the rule up once it exists;
- ``optuna``: the peer. Optuna's ``TPESampler`` (its defaults, seeded) and ``MedianPruner``
  (its defaults) drive the same networks one trial at a time with no tracking at all: the
  space is the spec's, translated by mltune's Optuna adapter (define-by-run suggestions, the
  same decoded params); each network is built by the task (``task.build_model``), trained by
  mltune's engine (``mltune.training.engine.fit``, the task's loss and score, the spec's seed
  for the batch order and ``seed + trial`` for the weights, as a search's trial 1, 2, ...),
  each epoch's metric reported to the pruner. ``study.optimize(timeout=budget)``.

The budget is ``stop: {time_budget_s: T}`` with ``max_evals`` out of reach (10,000): like
Optuna's ``timeout``, it is checked when a trial (for mltune: a pack) ends, so a search ends
with the trial or pack that crossed T; ``search s`` shows how far past T each went. The clock
starts when the data has loaded (mltune: ``on_start``, once the parent run is open; Optuna: the
call to ``optimize``) and each trial's end is the moment the search records it (mltune's
``progress`` callback; Optuna's study callback), so tracking, model logging and the sampler's
own time count against each mode's budget; data loading, store creation and the best model's
registration and report do not.

Reported per data set and mode, as the mean over seeds with the min..max over seeds beside it:

- ``best val``: the best finished trial's validation metric (``SearchResult.best_value``; for
  the peer ``study.best_value``: pruned trials count for neither);
- ``test``: that trial's model on the holdout split (``test_size``, never used to pick a
  trial) with the spec's metric: for mltune the promotion gate's score of the registered best
  (``SearchResult.decision.challenger_score``, the model as served), for the peer the best
  trial's network scored the same way (``task.score`` on the test split, the gate's
  ``holdout_meta``). Each search registers under its own model name, so no other search's
  champion is in the comparison;
- ``trials``: trials ended (finished, pruned and failed);
- ``search s``: seconds from the clock's start to the last trial's end;
- ``reach peer s``: the first time (since the clock's start) the mode's running best was at
  least the peer's final best of the same seed: the mean over the seeds where it was, with
  ``k/N`` seeds when not all, ``never`` when none (``n/a`` without the optuna mode). The
  peer's own row is when it reached its final best;
- ``occupancy``: how full the packs were: the search's parent-run metric ``pack_occupancy``
  (member-seconds trained over slot-seconds held, packs of two or more); ``n/a`` where no
  trial trained in a pack (and for the peer, one trial at a time).

Sizing: each search takes the budget, plus how far its last trial or pack runs past it, plus
a few seconds of set-up (store, data; the 50,000-row table is read and encoded per search) and
registration. The default run (3 data sets x 3 seeds x 5 modes at 120 s) is about 45 x 130 s,
some 100 minutes, run one search after another in one process (all modes share its cores
alike). The smoke run (``--budget-s 20 --seeds 1 --datasets breast_cancer --modes
default,asha,optuna``) took 87 s. On breast_cancer the validation split is 85 rows: several
modes reach val_accuracy 1.0, where ``reach peer s`` measures who hits the ceiling first.

Run: python benchmarks/anytime.py [--budget-s 120] [--seeds 3] [--epochs 10]
     [--datasets breast_cancer,digits,synthetic] [--modes default,asha,hyperband,pbt,optuna]
     [--rows 50000] [--device cpu] [--threads 0] [--markdown PATH]
The tables print as text (and as markdown to PATH when given); the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from search_common import markdown_table, quiet, spread, synthetic_csv, text_table, warm_up

MAX_EVALS = 10_000  # out of reach: the time budget ends each search
PEER = "optuna"
MODES: dict[str, dict[str, Any] | None] = {
    "default": {},
    "asha": {"pruning": {"rule": "asha"}},
    "hyperband": {"pruning": {"rule": "hyperband"}},
    "pbt": {"pruning": {"rule": "pbt"}},
    PEER: None,  # not an mltune search: the untracked Optuna loop
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
    trials: int = 0
    search_s: float = 0.0
    occupancy: float | None = None
    # (seconds since the clock's start, the trial's value when it finished, else None)
    curve: list[tuple[float, float | None]] = field(default_factory=list)
    error: str | None = None


def base_spec(dataset: str, folder: Path, rows: int) -> dict[str, Any]:
    if dataset == "breast_cancer":
        return {"task": "tabular", "data": {"source": "sklearn:breast_cancer"}}
    if dataset == "digits":
        return {"task": "image", "data": {"source": "sklearn:digits"}}
    source = synthetic_csv(folder, rows, flip_y=0.05)
    return {"task": "tabular", "data": {"source": source, "target": "label"}}


def overrides(base: dict[str, Any], mode: str, seed: int, args: argparse.Namespace,
              dataset: str) -> dict[str, Any]:
    name = f"anytime-{dataset}-{mode}-{seed}"
    return {**base, **(MODES[mode] or {}), "seed": seed, "epochs": args.epochs,
            "max_evals": MAX_EVALS, "stop": {"time_budget_s": args.budget_s},
            "device": args.device, "name": name, "registered_model": name}


def trial_epochs(client: Any, run_id: str, metric: str) -> int:
    return len(client.get_metric_history(run_id, metric)) if run_id else 0


def occupancy(result: Any) -> float | None:
    """The search's own measure (the parent run's ``pack_occupancy``); None without packs."""
    import mlflow

    return mlflow.MlflowClient().get_run(result.parent_run_id).data.metrics.get(
        "pack_occupancy")


def run_mltune(dataset: str, mode: str, seed: int, spec_overrides: dict[str, Any],
               folder: Path) -> Run:
    import mlflow

    import mltune
    from mltune.core.terms import TrialStatus

    name = spec_overrides["name"]
    mlflow.set_tracking_uri(f"sqlite:///{folder / name}.db")
    spec = mltune.load_spec(None, spec_overrides)
    run = Run(dataset, mode, seed, spec.metric, spec.mode)
    clock: dict[str, float] = {}

    def started() -> None:
        clock["t0"] = time.monotonic()

    def progress(outcome: Any, best: float | None) -> None:
        value = (outcome.metrics.get(spec.metric) if outcome.status == TrialStatus.FINISHED
                 else None)
        run.curve.append((time.monotonic() - clock["t0"], value))

    try:
        result = mltune.tune(spec, progress=progress, on_start=started)
    except mltune.MltuneError as exc:
        run.error = str(exc)
        return run
    run.val = result.best_value
    run.test = result.decision.challenger_score if result.decision else math.nan
    run.error = result.gate_error
    run.trials = len(result.trials)
    run.search_s = run.curve[-1][0] if run.curve else 0.0
    run.occupancy = occupancy(result)
    return run


def run_peer(dataset: str, seed: int, spec_overrides: dict[str, Any], budget_s: float) -> Run:
    """Optuna's TPE + median pruner over the same networks, no tracking (see the docstring)."""
    import optuna

    import mltune
    from mltune.core.terms import holdout_metric
    from mltune.registry.gate import holdout_meta
    from mltune.search.loop import with_network
    from mltune.search.samplers.optuna_space import Compiler, suggest
    from mltune.spec.space import build_space
    from mltune.training.device import resolve_device, seed_everything
    from mltune.training.engine import fit
    from mltune.training.fit import DivergedError, EarlyStopping, predict_batches

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec, task = with_network(mltune.load_spec(None, spec_overrides))
    run = Run(dataset, PEER, seed, spec.metric, spec.mode)
    direction = spec.direction
    data = task.load(spec.data, spec.seed).to(resolve_device(spec.device))
    nodes = Compiler(optuna, "optuna-tpe").nodes(build_space(spec.space))
    kept: dict[str, Any] = {}  # the best finished trial's network

    def score(outputs: Any, targets: Any) -> dict[str, float]:
        return task.score(outputs, targets, data.meta)

    def objective(trial: optuna.Trial) -> float:
        point: dict[str, Any] = {}
        suggest(trial, nodes, point)
        seed_everything(spec.seed + trial.number + 1)  # as a search's trial number + 1
        network = task.build_model(point, data.meta)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            trial.report(metrics[spec.metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        stopper = (EarlyStopping(spec.metric, direction, spec.patience)
                   if spec.patience else None)
        try:
            result = fit(network, data, point, loss_fn=task.make_loss(point, data),
                         score=score, epochs=spec.epochs, seed=spec.seed, on_epoch=on_epoch,
                         early_stopping=stopper, precision=spec.precision)
        except DivergedError:
            return math.nan  # Optuna: a failed trial
        value = result.final[spec.metric]
        if "value" not in kept or direction.better(value, kept["value"]):
            kept.update(value=value, network=network)
        return value

    def ended(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
        run.curve.append((time.monotonic() - t0, value))

    study = optuna.create_study(
        direction="maximize" if direction.value == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed), pruner=optuna.pruners.MedianPruner())
    t0 = time.monotonic()
    study.optimize(objective, n_trials=MAX_EVALS, timeout=budget_s, callbacks=[ended])
    run.trials = len(run.curve)
    run.search_s = run.curve[-1][0] if run.curve else 0.0
    if "network" not in kept:
        run.error = "no trial finished"
        return run
    run.val = kept["value"]
    network = kept["network"].cpu()
    # the holdout as encoded with this data's own fitted preprocessing, the one the network
    # trained on (what ``holdout_inputs`` gives the served model of the same search)
    outputs = predict_batches(network, data.x_test.cpu())
    scores = task.score(outputs, data.y_test.cpu(), holdout_meta(data.meta))
    run.test = float(scores[holdout_metric(spec.metric).removeprefix("test_")])
    return run


def reach_time(run: Run, target: float) -> float | None:
    """The first time the run's running best was at least ``target`` (None: never)."""
    from mltune.core.terms import Direction

    direction = Direction(run.mode_dir)
    best: float | None = None
    for seconds, value in run.curve:
        if value is not None and not math.isnan(value) and (
                best is None or direction.better(value, best)):
            best = value
        if best is not None and direction.at_least(best, target):
            return seconds
    return None


def rows_of(runs: list[Run], dataset: str, modes: list[str]) -> list[dict[str, Any]]:
    peers = {r.seed: r for r in runs if r.dataset == dataset and r.mode == PEER}
    rows = []
    for mode in modes:
        mine = [r for r in runs if r.dataset == dataset and r.mode == mode]
        if not mine:
            continue
        reached, tried = [], 0
        for r in mine:
            peer = peers.get(r.seed)
            if peer is None or math.isnan(peer.val):
                continue
            tried += 1
            if (t := reach_time(r, peer.val)) is not None:
                reached.append(t)
        if not tried:
            reach = "n/a"
        elif not reached:
            reach = "never"
        else:
            reach = spread(reached, 1) + ("" if len(reached) == tried
                                          else f" ({len(reached)}/{tried})")
        occ = [r.occupancy for r in mine if r.occupancy is not None]
        rows.append({
            "mode": mode, "metric": mine[0].metric,
            "val": spread([r.val for r in mine]), "test": spread([r.test for r in mine]),
            "trials": spread([float(r.trials) for r in mine], 1),
            "search_s": spread([r.search_s for r in mine], 1), "reach_peer_s": reach,
            "occupancy": spread(occ, 2) if occ else "n/a",
            "errors": sorted({r.error for r in mine if r.error})})
    return rows


COLUMNS = (("mode", "mode"), ("val", "best {val}"), ("test", "its {test}"),
           ("trials", "trials"), ("search_s", "search s"), ("reach_peer_s", "reach peer s"),
           ("occupancy", "occupancy"))


def usable_modes(modes: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """The modes asked for that the spec accepts; a refused one is skipped with a note."""
    import mltune

    kept = []
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--modes: unknown mode {mode!r}; known: {', '.join(MODES)}")
        if mode == PEER:
            try:
                import optuna  # noqa: F401
            except ImportError:
                print(f"note: mode {mode} skipped: Optuna is not installed")
                continue
        else:
            try:
                mltune.load_spec(None, {"task": "tabular", **(MODES[mode] or {}),
                                        "data": {"source": "sklearn:breast_cancer"}})
            except mltune.MltuneError as exc:
                print(f"note: mode {mode} skipped: the spec refuses it: {exc}")
                continue
        kept.append(mode)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=120.0, help="wall-clock budget T")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the synthetic table")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
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
    folder = Path(tempfile.mkdtemp(prefix="mltune-anytime-"))
    warm_up(folder, args.device)
    started = time.perf_counter()
    runs: list[Run] = []
    for dataset in datasets:
        base = base_spec(dataset, folder, args.rows)
        for seed in range(args.seeds):
            for mode in modes:
                spec = overrides(base, mode, seed, args, dataset)
                t = time.perf_counter()
                run = (run_peer(dataset, seed, spec, args.budget_s) if mode == PEER
                       else run_mltune(dataset, mode, seed, spec, folder))
                runs.append(run)
                print(f"  {dataset} seed {seed} {mode}: best {run.metric} {run.val:.4f}, "
                      f"test {run.test:.4f}, {run.trials} trials in {run.search_s:.1f} s "
                      f"({time.perf_counter() - t:.0f} s with set-up)"
                      + (f"; note: {run.error}" if run.error else ""), flush=True)
    wall = time.perf_counter() - started
    tables, markdown = {}, []
    for dataset in datasets:
        rows = rows_of(runs, dataset, modes)
        if not rows:
            continue
        tables[dataset] = rows
        title = (f"{dataset}: budget {args.budget_s:g} s, {args.epochs} epochs/trial, "
                 f"{args.seeds} seed(s), mean [min..max] over seeds")
        print(f"\n{title}\n{text_table(rows, COLUMNS)}")
        for r in rows:
            for error in r["errors"]:
                print(f"note: {dataset}/{r['mode']}: {error}")
        markdown += [f"### {title}", "", markdown_table(rows, COLUMNS), ""]
    if args.markdown:
        args.markdown.write_text("\n".join(markdown))
        print(f"\nmarkdown written to {args.markdown}")
    print(f"{len(runs)} searches on {args.device}: {wall:.0f} s wall")
    print(json.dumps({"budget_s": args.budget_s, "epochs": args.epochs, "seeds": args.seeds,
                      "wall_s": round(wall, 1), "tables": tables,
                      "runs": [{k: v for k, v in asdict(r).items() if k != "curve"}
                               for r in runs]}, default=str))


if __name__ == "__main__":
    main()
