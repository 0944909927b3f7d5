"""Warm starts: a second search of the same problem, warm from the first, against the same
search cold, at equal time.

For each data set (``breast_cancer``: scikit-learn's bundled table written as a CSV, the
tabular MLP; ``digits``: scikit-learn's 8x8 digits written as a folder of PNGs, one
sub-folder per class, the image task's CNN at ``image_size: 8``; ``synthetic``: a seeded
``make_classification`` table of ``--rows`` rows as a CSV, the tabular MLP), each written
twice, whole and as a seeded 70% of its rows (same columns, another fingerprint), and each
repetition ``k`` (``--seeds``; search A's seed ``2k``, search B's ``2k + 1``), in a store of
its own:

- ``A``: search A on all the rows, ``--budget-s`` T seconds, ``warm_start: off``;
- ``A 70%``: search A on 70% of the rows, T seconds (the earlier search of changed data);
- ``B cold``: search B on all the rows, T/3 seconds, ``warm_start: off`` (today's search);
- ``B warm``: the same, ``warm_start: [A]``: A's trials told to its sampler, A's curves as
  its ASHA rungs' first values, A's best configuration trained after the defaults;
- ``B warm, no rungs``: the same, its ASHA rungs left empty (``priors.SEED_RUNGS = False``):
  what seeding the rungs from A's curves adds, or costs;
- ``B warm, 30 told``: the same, A's best 30 trials told (``sources.MAX_TRIALS = 30``, not
  200): whether fewer, less lucky, earlier points leave TPE room to explore;
- ``B warm from 70%``: ``warm_start: [A 70%]``: changed data, A's best configuration only,
  never stopped by ASHA (``priors.TRUST_STARTS``);
- ``B warm from 70%, starts stopped``: the same, that configuration judged by B's own rungs
  like any other point (mltune before 2026-12-07, when it was often stopped at epoch 1);
- ``B warm, 3 starts`` and ``B warm from 70%, 3 starts``: the same two with A's best three
  configurations trained first (``priors.MAX_STARTS = 3``, a fifth of ``max_evals``: what
  mltune did before 2026-12-07), each trained to its last epoch (a hurdle, never stopped).

``--searches`` runs some of the B searches only (``B cold`` always: each is compared with it;
the As they learn from always).

Every search is mltune's default (``algo: tpe``, ``pruning: asha``, ``pack: auto``) with
``--epochs`` per trial, searched through the public API with full tracking, the budget
``stop: {time_budget_s: ...}`` with ``max_evals`` out of reach; the clock starts once the
data has loaded and the parent run is open (``on_start``), as in ``anytime.py``. The sources
are named (``warm_start: [run id]``) so that each B learns from its own A alone.

Reported per data set and search, mean [min..max] over repetitions:

- ``best val``: the best finished trial's validation metric; ``its test``: that model's
  holdout score, as the gate scored it. Every search of a repetition splits the rows with
  A's seed (``data.split_seed: 2k``; B's own seed, ``2k + 1``, draws its points and
  networks): A and the Bs are scored on the same validation and holdout rows, so a B's best
  compares with A's (until 2026-12-07 each B drew its own split: "reach A" then compared
  scores on other rows);
- ``trials``: trials ended; ``set-up s``: from the call to the clock's start (data, store,
  and for a warm search the reading of the earlier search: its cost);
- ``reach A s``: for a B, the first time its running best was at least its A's final best
  (``A 70%``'s for ``B warm from 70%``), with ``k/N`` when not in every repetition; for an A,
  the time it reached its own final best; ``/ T``: that time over A's budget T.

And for each warm B, its source's best configuration (trained first) as B scored it, with B's
seed on the same rows, against what it scored in its source, where B trained it for as many
epochs (B's shorter budget can end it sooner; such repetitions, and any where a rung rule
stopped it, are counted and left out): how much of the source's best was its seed's luck,
which "reach A s" asks B to match. And how soon each warm B reached the final best of the
cold B of its repetition (its time over the cold one's own: below 1, sooner; HyperBO's
measure of a warm start, the same quality in less time).

The targets (issue 37): a warm B reaches A's best in at most 0.25 T on the same data; warm
is never worse than cold at equal time (mean of repetitions), changed data included. The
verdicts print after the tables.

Run: python benchmarks/warm_start.py [--budget-s 60] [--seeds 3] [--epochs 5]
     [--datasets breast_cancer,digits,synthetic] [--searches "B warm,B warm, 3 starts"]
     [--rows 20000] [--device cpu] [--threads 0] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from search_common import markdown_table, quiet, spread, synthetic_csv, text_table, warm_up

MAX_EVALS = 10_000  # out of reach: the time budget ends each search
DATASETS = ("breast_cancer", "digits", "synthetic")
SEARCHES = ("A", "A 70%", "B cold", "B warm", "B warm, 30 told", "B warm, 3 starts",
            "B warm, no rungs", "B warm from 70%", "B warm from 70%, starts stopped",
            "B warm from 70%, 3 starts")
# each warm B: its source, whether its rungs start from the source's curves, its MAX_STARTS,
# the earlier trials it reads (sources.MAX_TRIALS), whether its start points are never
# stopped without curves (priors.TRUST_STARTS)
WARM = {"B warm": ("A", True, 1, 200, True), "B warm, 30 told": ("A", True, 1, 30, True),
        "B warm, 3 starts": ("A", True, 3, 200, True),
        "B warm, no rungs": ("A", False, 1, 200, True),
        "B warm from 70%": ("A 70%", True, 1, 200, True),
        "B warm from 70%, starts stopped": ("A 70%", True, 1, 200, False),
        "B warm from 70%, 3 starts": ("A 70%", True, 3, 200, True)}
SHARE = 0.7  # the rows of the changed data's earlier search


@dataclass
class Run:
    """One search of one data set and repetition."""

    dataset: str
    search: str
    rep: int
    metric: str = ""
    val: float = math.nan
    test: float = math.nan
    trials: int = 0
    setup_s: float = 0.0
    parent_run_id: str = ""
    curve: list[tuple[float, float | None]] = field(default_factory=list)
    error: str | None = None
    # each finished trial's point, score and epochs (a source's: what its best point scored)
    scores: list[tuple[dict[str, Any], float, int]] = field(default_factory=list)
    start: dict[str, Any] | None = None  # a warm B's earlier best point, trained first
    start_val: float = math.nan  # its score in this search (this search's seed)
    start_epochs: int = 0  # the epochs it trained here (fewer: stopped by B's budget)
    start_source_val: float = math.nan  # its score in the search it came from
    start_source_epochs: int = 0  # the epochs it trained there


# -- the data, whole and 70% ------------------------------------------------------------------

def tables(dataset: str, folder: Path, rows: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The base spec of ``dataset`` on all its rows and on a seeded 70% of them."""
    import pandas as pd

    if dataset == "digits":
        return digits_folder(folder, 1.0), digits_folder(folder, SHARE)
    if dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        frame = load_breast_cancer(as_frame=True).frame
        frame.columns = [c.replace(" ", "_") for c in frame.columns]
        whole = folder / "breast_cancer.csv"
        frame.to_csv(whole, index=False)
        target = "target"
    else:
        whole = Path(synthetic_csv(folder, rows, flip_y=0.05))
        frame = pd.read_csv(whole)
        target = "label"
    part = folder / f"{whole.stem}_70.csv"
    frame.sample(frac=SHARE, random_state=0).to_csv(part, index=False)
    spec = {"task": "tabular"}
    return ({**spec, "data": {"source": str(whole), "target": target}},
            {**spec, "data": {"source": str(part), "target": target}})


def digits_folder(folder: Path, share: float) -> dict[str, Any]:
    """scikit-learn's digits as PNGs (8x8, grey, 0..16 scaled to 0..255), a folder per
    class; ``share`` of the images, drawn seeded."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.random.default_rng(0).permutation(len(digits.images))[
        :int(round(share * len(digits.images)))]
    root = folder / f"digits_{int(share * 100)}"
    for i in sorted(keep):
        pixels = (digits.images[i] * 255 / 16).round().astype(np.uint8)
        target = root / str(digits.target[i])
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "L").save(target / f"{i:04d}.png")
    return {"task": "image", "data": {"source": str(root), "image_size": 8}}


# -- one search -------------------------------------------------------------------------------

def search(run: Run, base: dict[str, Any], seed: int, budget_s: float, warm: Any,
           args: argparse.Namespace, seed_rungs: bool = True, starts: int = 1,
           split_seed: int | None = None, told: int = 200, trust: bool = True) -> Run:
    import mltune
    from mltune.core.terms import TrialStatus
    from mltune.search.history import priors, sources

    name = f"{run.dataset}-{run.rep}-{run.search}".replace(" ", "-").replace("%", "")
    data = {**base["data"], "split_seed": seed if split_seed is None else split_seed}
    spec = mltune.load_spec(None, {
        **base, "data": data, "seed": seed, "epochs": args.epochs, "max_evals": MAX_EVALS,
        "stop": {"time_budget_s": budget_s}, "device": args.device, "name": name,
        "registered_model": name.replace(",", ""), "warm_start": warm})
    run.metric = spec.metric
    clock: dict[str, float] = {"call": time.monotonic()}

    def started() -> None:
        clock["t0"] = time.monotonic()

    def progress(outcome: Any, best: float | None) -> None:
        value = (outcome.metrics.get(spec.metric) if outcome.status == TrialStatus.FINISHED
                 else None)
        run.curve.append((time.monotonic() - clock["t0"], value))

    try:
        with knobs(priors, SEED_RUNGS=seed_rungs, MAX_STARTS=starts, TRUST_STARTS=trust), \
                knobs(sources, MAX_TRIALS=told):
            result = mltune.tune(spec, progress=progress, on_start=started)
    except mltune.MltuneError as exc:
        run.error = str(exc)
        return run
    run.val, run.parent_run_id = result.best_value, result.parent_run_id
    run.test = result.decision.challenger_score if result.decision else math.nan
    run.error = result.gate_error
    run.trials = len(result.trials)
    run.scores = [(t.params, t.metrics[spec.metric], t.epochs) for t in result.trials
                  if t.status == TrialStatus.FINISHED and spec.metric in t.metrics]
    if result.warm is not None and result.warm.starts:
        run.start = result.warm.starts[0]
        run.start_val, run.start_epochs = score_of(run, run.start)
    run.setup_s = clock["t0"] - clock["call"]
    return run


@contextmanager
def knobs(module: Any, **values: Any) -> Iterator[None]:
    """``module``'s settings set to ``values`` for one search, the shipped ones back after."""
    shipped = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in shipped.items():
            setattr(module, name, value)


def score_of(run: Run, point: dict[str, Any]) -> tuple[float, int]:
    """What ``point`` scored in ``run`` and the epochs it trained (NaN, 0: not trained there,
    or stopped by a rung rule)."""
    return next(((value, epochs) for params, value, epochs in run.scores if params == point),
                (math.nan, 0))


def repetition(dataset: str, rep: int, bases: tuple[dict[str, Any], dict[str, Any]],
               folder: Path, args: argparse.Namespace) -> list[Run]:
    """The searches of one repetition (``args.searches``), in one store of their own."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder / f'{dataset}-{rep}'}.db")
    whole, part = bases
    a_seed, b_seed, t = 2 * rep, 2 * rep + 1, args.budget_s
    a = search(Run(dataset, "A", rep), whole, a_seed, t, "off", args)
    a70 = search(Run(dataset, "A 70%", rep), part, a_seed, t, "off", args)
    runs = [a, a70, search(Run(dataset, "B cold", rep), whole, b_seed, t / 3, "off", args,
                           split_seed=a_seed)]
    for name in (n for n in SEARCHES if n in args.searches and n in WARM):
        of, rungs, starts, told, trust = WARM[name]
        source = a if of == "A" else a70
        if not source.parent_run_id:
            runs.append(Run(dataset, name, rep, error=f"no source: {source.error}"))
            continue
        warm = search(Run(dataset, name, rep), whole, b_seed, t / 3, [source.parent_run_id],
                      args, seed_rungs=rungs, starts=starts, split_seed=a_seed, told=told,
                      trust=trust)
        if warm.start is not None:
            warm.start_source_val, warm.start_source_epochs = score_of(source, warm.start)
        runs.append(warm)
    return runs


# -- the tables -------------------------------------------------------------------------------

def reach_time(run: Run, target: float) -> float | None:
    """The first time the run's running best was at least ``target`` (None: never)."""
    best = -math.inf
    for seconds, value in run.curve:
        if value is not None and not math.isnan(value):
            best = max(best, value)
        if best >= target - 1e-12:
            return seconds
    return None


def target_of(run: Run, runs: list[Run]) -> Run | None:
    """The A a search is timed against: its own for an A, A 70%'s for changed data."""
    wanted = "A 70%" if "70%" in run.search else "A"
    return next((r for r in runs if r.dataset == run.dataset and r.rep == run.rep
                 and r.search == wanted), None)


def rows_of(runs: list[Run], dataset: str, budget_s: float) -> list[dict[str, Any]]:
    rows = []
    for name in SEARCHES:
        mine = [r for r in runs if r.dataset == dataset and r.search == name]
        if not mine:
            continue
        reached, tried = [], 0
        for r in mine:
            a = target_of(r, runs)
            if a is None or math.isnan(a.val):
                continue
            tried += 1
            if (t := reach_time(r, a.val)) is not None:
                reached.append(t)
        reach = ("n/a" if not tried else "never" if not reached else spread(reached, 1)
                 + ("" if len(reached) == tried else f" ({len(reached)}/{tried})"))
        rows.append({
            "search": name, "metric": mine[0].metric or "val_accuracy",
            "val": spread([r.val for r in mine]), "test": spread([r.test for r in mine]),
            "trials": spread([float(r.trials) for r in mine], 1),
            "setup_s": spread([r.setup_s for r in mine], 1), "reach_s": reach,
            "share": spread([t / budget_s for t in reached], 2) if reached else "n/a",
            "errors": sorted({r.error for r in mine if r.error})})
    return rows


COLUMNS = (("search", "search"), ("val", "best {val}"), ("test", "its {test}"),
           ("trials", "trials"), ("setup_s", "set-up s"), ("reach_s", "reach A s"),
           ("share", "/ T"))


def mean(runs: list[Run], name: str, attribute: str) -> float:
    values = [getattr(r, attribute) for r in runs if r.search == name
              and not math.isnan(getattr(r, attribute))]
    return sum(values) / len(values) if values else math.nan


def paired(runs: list[Run], name: str, attribute: str) -> str:
    """``name`` minus ``B cold`` repetition by repetition (the same A, the same rows):
    mean [min..max], and how many ahead, tied and behind."""
    by_rep = {r.rep: getattr(r, attribute) for r in runs if r.search == "B cold"}
    gaps = [getattr(r, attribute) - by_rep[r.rep] for r in runs
            if r.search == name and r.rep in by_rep]
    gaps = [g for g in gaps if not math.isnan(g)]
    if not gaps:
        return "n/a"
    ahead, behind = sum(g > 1e-12 for g in gaps), sum(g < -1e-12 for g in gaps)
    return (f"{spread(gaps)} (ahead {ahead}, tied {len(gaps) - ahead - behind}, "
            f"behind {behind})")


def retrained(runs: list[Run], name: str) -> str:
    """The earlier best configuration a warm B trains first, in B (B's seed) against what
    it scored in its source: how much of the source's best was its seed's luck. Only where
    both trained it for as many epochs (B's shorter budget can stop it sooner: a gap that
    is then epochs, not luck); how many were left out, and why, is said."""
    mine = [r for r in runs if r.search == name and r.start is not None]
    stopped = sum(math.isnan(r.start_val) for r in mine)  # by a rung rule, in B
    shorter = sum(not math.isnan(r.start_val) and r.start_epochs != r.start_source_epochs
                  for r in mine)
    pairs = [(r.start_val, r.start_source_val) for r in mine
             if not math.isnan(r.start_val) and not math.isnan(r.start_source_val)
             and r.start_epochs == r.start_source_epochs]
    reasons = [f"{shorter} trained for other epochs than in its source"] if shorter else []
    reasons += [f"{stopped} stopped by a rung rule in B"] if stopped else []
    left = f"; left out: {', '.join(reasons)}" if reasons else ""
    if not pairs:
        return (f"{runs[0].dataset}: {name}: its source's best configuration: no repetition "
                f"trained it for as many epochs as its source{left}")
    gaps = [b - a for b, a in pairs]
    return (f"{runs[0].dataset}: {name}: its source's best configuration, retrained first with "
            f"B's seed for as many epochs: {sum(b for b, _ in pairs) / len(pairs):.4f} against "
            f"{sum(a for _, a in pairs) / len(pairs):.4f} in its source; by repetition "
            f"{spread(gaps)} (lower in {sum(g < -1e-12 for g in gaps)}/{len(gaps)}){left}")


def sooner(runs: list[Run], name: str) -> str:
    """How soon ``name`` reached the final best of ``B cold`` of the same repetition (the
    cold search it replaces, in the same time): HyperBO's measure of a warm start."""
    cold = {r.rep: r for r in runs if r.search == "B cold" and not math.isnan(r.val)}
    mine = [r for r in runs if r.search == name and r.rep in cold]
    times = [reach_time(r, cold[r.rep].val) for r in mine]
    colds = [reach_time(cold[r.rep], cold[r.rep].val) for r in mine]
    pairs = [(w, c) for w, c in zip(times, colds, strict=True) if w is not None and c]
    ratios = spread([w / c for w, c in pairs], 2) if pairs else "n/a"
    return (f"{runs[0].dataset}: {name} reached B cold's final best in "
            f"{sum(t is not None for t in times)}/{len(times)} repetitions; its time over "
            f"cold's own: {ratios}")


def verdicts(runs: list[Run], datasets: list[str], budget_s: float) -> list[str]:
    """The issue's targets, data set by data set."""
    lines = []
    for dataset in datasets:
        mine = [r for r in runs if r.dataset == dataset]
        quick = {}
        for name in ("B warm", "B cold"):
            times = [reach_time(r, a.val) for r in mine
                     if r.search == name and (a := target_of(r, runs)) is not None]
            within = sum(t is not None and t <= 0.25 * budget_s for t in times)
            quick[name] = f"{within}/{len(times)}"
        if any(r.search == "B warm" for r in mine):
            lines.append(f"{dataset}: B warm reached A's best within 0.25 T in "
                         f"{quick['B warm']} repetitions (B cold: {quick['B cold']})")
        for name in (n for n in WARM if any(r.search == n for r in mine)):
            for attribute, label in (("val", "best val"), ("test", "its test")):
                w, c = mean(mine, name, attribute), mean(mine, "B cold", attribute)
                verdict = "not worse" if w >= c - 1e-12 else "WORSE"
                lines.append(f"{dataset}: {name} vs B cold, {label}: {w:.4f} vs {c:.4f}: "
                             f"{verdict}; by repetition {paired(mine, name, attribute)}")
            lines.append(sooner(mine, name))
            lines.append(retrained(mine, name))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=60.0, help="search A's budget T")
    parser.add_argument("--seeds", type=int, default=3, help="repetitions (A: 2k, B: 2k+1)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per trial")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--searches", default=",".join(WARM),
                        help="the warm B searches to run, comma-separated (all by default)")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the synthetic table")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args()
    datasets = [d for d in args.datasets.split(",") if d]
    for d in datasets:
        if d not in DATASETS:
            parser.error(f"--datasets: unknown {d!r}; known: {', '.join(DATASETS)}")
    # names hold commas themselves ("B warm, 3 starts"): split before each "B "
    args.searches = [n.strip(" ,") for n in args.searches.replace("B ", "\0B ").split("\0")
                     if n.strip(" ,")]
    for n in args.searches:
        if n not in WARM:
            parser.error(f"--searches: unknown {n!r}; known: {', '.join(WARM)}")
    quiet()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="mltune-warm-start-"))
    warm_up(folder, args.device)
    started = time.perf_counter()
    runs: list[Run] = []
    for dataset in datasets:
        bases = tables(dataset, folder, args.rows)
        for rep in range(args.seeds):
            for run in repetition(dataset, rep, bases, folder, args):
                runs.append(run)
                print(f"  {dataset} rep {rep} {run.search}: best {run.metric} {run.val:.4f}, "
                      f"test {run.test:.4f}, {run.trials} trials, set-up {run.setup_s:.1f} s"
                      + (f"; note: {run.error}" if run.error else ""), flush=True)
    wall = time.perf_counter() - started
    found, markdown = {}, []
    for dataset in datasets:
        rows = rows_of(runs, dataset, args.budget_s)
        found[dataset] = rows
        title = (f"{dataset}: A {args.budget_s:g} s, B {args.budget_s / 3:g} s, "
                 f"{args.epochs} epochs/trial, {args.seeds} repetition(s), mean [min..max]")
        print(f"\n{title}\n{text_table(rows, COLUMNS)}")
        markdown += [f"### {title}", "", markdown_table(rows, COLUMNS), ""]
    lines = verdicts(runs, datasets, args.budget_s)
    print("\n" + "\n".join(lines))
    markdown += ["```", *lines, "```", ""]
    if args.markdown:
        args.markdown.write_text("\n".join(markdown))
        print(f"\nmarkdown written to {args.markdown}")
    print(f"{len(runs)} searches on {args.device}: {wall:.0f} s wall")
    print(json.dumps({"budget_s": args.budget_s, "epochs": args.epochs, "seeds": args.seeds,
                      "wall_s": round(wall, 1), "tables": found,
                      "runs": [{k: v for k, v in asdict(r).items()
                                if k not in ("curve", "scores")}
                               for r in runs]}, default=str))


if __name__ == "__main__":
    main()
