"""The ``mltune`` command: parse, make one library call, print. Errors become one line.

Bad input exits 2 with ``mltune: error: <field>: <what is wrong>``; a search that ran and
could not produce a result exits 1. No traceback for either.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Mapping
from typing import Any

import click
import yaml
from mlflow.exceptions import MlflowException

from mltune.core._version import __version__
from mltune.core.errors import MltuneError, SearchError, SearchInterrupted, SpecError, TrackingLost
from mltune.core.outcomes import TrialOutcome
from mltune.registry.gate import promote, rollback
from mltune.report.build import build_report
from mltune.report.console import outcomes_frame, top_trials_text
from mltune.search.loop import train_once, tune
from mltune.search.plan import plan_search, plan_text
from mltune.search.summary import browse_line, summary
from mltune.spec.build import load_spec
from mltune.spec.catalogs import SAMPLERS
from mltune.spec.model import SearchSpec, SpecOrigin
from mltune.spec.options import duration
from mltune.tracking.links import run_url
from mltune.tracking.runs import started_with

# tune's options that are not spec keys (a resume command repeats the others as given)
NOT_OVERRIDES = ("config", "assignments", "resume", "no_refit", "dry_run", "time_budget")
# A library error's ``field`` as the flag a user of the command types.
FLAGS = {"resume": "--resume", "model": "--model", "min_delta": "--min-delta",
         "overrides": "--set", "params": "--params", "time_budget": "--time-budget"}


def exit_code(error: MltuneError) -> int:
    """2 for bad input (spec, data, server access), 1 for a search that ran without a result,
    75 (EX_TEMPFAIL: try again later) for a lost tracking server, 130/143 for SIGINT/SIGTERM."""
    if isinstance(error, SearchInterrupted):
        return 143 if error.signal_name == "SIGTERM" else 130
    if isinstance(error, TrackingLost):
        return 75
    return 1 if isinstance(error, SearchError) else 2  # spec, data, server access


def message(error: MltuneError, origin: SpecOrigin | None = None) -> str:
    """The one line the command prints: library facts worded with this command's flags; an
    interrupted search's with the command that resumes it (``origin``: how it was started)."""
    if isinstance(error, SearchInterrupted):
        return (f"search interrupted ({error.signal_name}); finished trials are kept. Resume "
                f"with: {resume_command(error.parent_run_id, origin)}")
    if isinstance(error, TrackingLost):
        return (f"the tracking server stopped answering ({error.reason}); finished trials are "
                "kept on it, the trial in flight will run again. Once the server is back, "
                f"resume with: {resume_command(error.parent_run_id, origin)}")
    if error.field in FLAGS:
        return f"{FLAGS[error.field]}: {error.detail}"
    return str(error)


def resume_command(parent_run_id: str, origin: SpecOrigin | None) -> str:
    """``mltune tune`` with the spec file and every override the search was started with,
    then ``--resume``: copied as printed, it resumes the same search."""
    return tune_line(origin, ["--resume", parent_run_id])


def tune_line(origin: SpecOrigin | None, more: list[str]) -> str:
    """``mltune tune`` that makes ``origin``'s spec again (each key as its flag where tune
    has one), then ``more``."""
    flags = {p.name: max(p.opts, key=len) for p in tune_command.params
             if isinstance(p, click.Option) and p.name not in NOT_OVERRIDES}
    flags["stop.time_budget_s"] = "--time-budget"
    return "mltune tune " + shlex.join((origin or SpecOrigin()).arguments(flags) + more)


def fail(error: MltuneError, origin: SpecOrigin | None = None) -> None:
    """Print the error as one line and exit with its code (no traceback)."""
    click.echo(f"mltune: error: {message(error, origin)}", err=True)
    sys.exit(exit_code(error))


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"data.val_size=0.2"`` -> ``("data.val_size", 0.2)``; values are read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"expected key=value, got {text!r}", field="overrides")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


class _Optional(click.ParamType):
    """An int or float flag where an empty string means "not given" (MLproject defaults)."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.name = kind.__name__

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            return self.kind(value)
        except ValueError:
            self.fail(f"{value!r} is not a valid {self.name}", param, ctx)


OptionalInt = _Optional(int)


class _OptionalBool(click.ParamType):
    """true / false, where an empty string means "not given" (MLproject defaults)."""

    name = "boolean"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or value == "":
            return None
        return click.BOOL.convert(value, param, ctx)


def _overrides(flags: Mapping[str, Any], assignments: tuple[str, ...]) -> dict[str, Any]:
    overrides = {k: v for k, v in flags.items() if v is not None and v != ""}
    overrides.update(parse_assignment(text) for text in assignments)
    return overrides


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


spec_options = [
    click.option("--config", "-c", default="", help="Spec file (YAML). Default: digits CNN."),
    click.option("--epochs", type=OptionalInt, help="Epochs per trial."),
    click.option("--seed", type=OptionalInt, help="Seed of the search and of every trial."),
    click.option("--device", default="",
                 help="auto | cpu | cuda (every GPU) | cuda:N | cuda:0,cuda:2 (a pack loop "
                 "per device)"),
    click.option("--precision", default="",
                 help="auto | fp32 | bf16 | fp16 (auto: bf16 on a GPU that has it, else fp32)."),
    click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                 help="Override any spec key, e.g. --set data.val_size=0.2 (repeatable)."),
]


def with_spec_options(func: Any) -> Any:
    for option in reversed(spec_options):
        func = option(func)
    return func


@click.group()
@click.version_option(__version__, prog_name="mltune")
def cli() -> None:
    """Tune PyTorch models with Hyperopt; every trial is an MLflow run."""


@cli.command("tune")
@with_spec_options
@click.option("--max-evals", type=OptionalInt, help="Number of trials.")
@click.option("--time-budget", default="", metavar="DURATION",
              help="Stop starting trials after this long: 600, 90s, 10m, 1.5h "
              "(stop.time_budget_s). With no max_evals in the spec, the budget is time alone.")
@click.option("--algo", default="", help=" | ".join(SAMPLERS.names()))
@click.option("--metric", default="", help="Metric to optimise (one every trial logs).")
@click.option("--mode", default="", help="max | min")
@click.option("--backend", default="", help="local | ray")
@click.option("--parallelism", type=OptionalInt,
              help="ray: workers, each training packs (local: one loop per device).")
@click.option("--pack", default="", help="Trials trained at once as one fused network: auto "
              "(default: sized by the device) | N (1: one at a time).")
@click.option("--cpus-per-trial", type=_Optional(float), help="ray: CPUs per worker.")
@click.option("--gpus-per-worker", type=_Optional(float),
              help="ray: GPUs per worker (0.5: two workers share one GPU).")
@click.option("--gpus-per-trial", type=_Optional(float), hidden=True,
              help="The old name of --gpus-per-worker.")
@click.option("--ray-address", default="", help="ray: join this cluster (auto | host:port); "
              "default: start a local Ray for the search.")
@click.option("--name", default="", help="Name of the search (the parent run).")
@click.option("--registered-model", default="", help="Registered model to add the best to.")
@click.option("--resume", default="", metavar="PARENT_RUN_ID",
              help="Continue the search of this parent run (after a crash or Ctrl-C).")
@click.option("--warm-start", default="", metavar="auto|off|RUNS",
              help="Learn from earlier searches of the same problem in the store: auto "
              "(default: this experiment's), off (a cold search, as before), or parent run "
              "ids / search names, comma-separated (warm_start).")
@click.option("--cv", type=OptionalInt, help="Score each trial by k-fold cross-validation of "
              "train + validation, its k folds trained as one pack (cv: k, k >= 2).")
@click.option("--refit", type=_OptionalBool(), is_flag=False, flag_value=True, default=None,
              help="Train the best configuration again on train + validation and register "
              "that model (refit: true; the default with --cv); --refit false or --no-refit: "
              "the best trial's.")
@click.option("--no-refit", "no_refit", is_flag=True, default=False,
              help="Register the best trial's own model (refit: false; the default without "
              "--cv).")
@click.option("--ensemble", type=OptionalInt, help="Register the average of up to N trials "
              "chosen by greedy ensemble selection (ensemble: N >= 1; default: off).")
@click.option("--dry-run", is_flag=True, default=False, help="Check the spec as the search "
              "would, print what it would do (the resolved spec, the space, the first trial, "
              "the scheduler's rungs, the budget) and stop: no run is opened.")
def tune_command(config: str, assignments: tuple[str, ...], resume: str, time_budget: str,
                 no_refit: bool, dry_run: bool, **flags: Any) -> None:
    """Run a hyperparameter search and register its best model."""
    if no_refit:
        flags["refit"] = False
    if time_budget.strip():
        flags["stop.time_budget_s"] = duration(time_budget, "time_budget")
    spec = load_spec(config or None, _overrides(flags, assignments))
    _quiet_mlflow()
    if dry_run:
        print_plan(spec)
        return
    from tqdm import tqdm

    bars: list[Any] = []  # drawn once the data has loaded: never above a data error

    def start() -> None:
        bars.append(tqdm(total=spec.max_evals, desc=spec.name, unit="trial", file=sys.stderr,
                         dynamic_ncols=True))

    def progress(outcome: TrialOutcome, best: float | None) -> None:
        bar = bars[0]
        bar.set_postfix_str(f"best {spec.metric}={best:.4f}" if best is not None else "")
        bar.update(1)
        if bar.total is not None and bar.n >= bar.total:
            bar.close()  # before registration prints its own lines

    try:
        result = tune(spec, progress=progress, resume=resume or None, on_start=start)
    except (SearchInterrupted, TrackingLost) as stopped:
        for bar in bars:
            bar.close()  # before the error line, which must be the last one
        # its resume command: as the search was started (its parent run says; a lost server
        # cannot, and a search started from Python did not), else as this one was
        started = started_with(stopped.parent_run_id) if isinstance(
            stopped, SearchInterrupted) else None
        fail(stopped, started or spec.origin)
    finally:
        for bar in bars:
            bar.close()
    click.echo(summary(result))
    click.echo("\n" + top_trials_text(outcomes_frame(result.trials, spec.metric), spec.metric,
                                          spec.mode))


@cli.command("check")
@click.argument("config", metavar="[SPEC]", default="")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override any spec key, e.g. --set epochs=30 (repeatable).")
def check_command(config: str, assignments: tuple[str, ...]) -> None:
    """Check a spec as `mltune tune` would and print what the search would do; opens no run
    (the same as `mltune tune --config SPEC --dry-run`)."""
    spec = load_spec(config or None, _overrides({}, assignments))
    _quiet_mlflow()
    print_plan(spec)


def print_plan(spec: SearchSpec) -> None:
    click.echo(plan_text(plan_search(spec)))
    click.echo(f"Checked: nothing was run or logged. Run it: {tune_line(spec.origin, [])}")


@cli.command("train")
@with_spec_options
@click.option("--params", "params_text", default="",
              help='Hyperparameters as a YAML mapping, e.g. "{learning_rate: 0.01}".')
def train_command(config: str, assignments: tuple[str, ...], params_text: str,
                  **flags: Any) -> None:
    """Train and log one configuration (the task's defaults, overridden by --params)."""
    spec = load_spec(config or None, _overrides(flags, assignments))
    params = yaml.safe_load(params_text) if params_text.strip() else {}
    if not isinstance(params, dict):
        raise SpecError(f"expected a mapping like {{learning_rate: 0.01}}, got "
                        f"{params_text!r}", field="params")
    _quiet_mlflow()
    run_id, metrics = train_once(spec, params)
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    click.echo(f"Trained run {run_id}: {shown}")


@cli.command("promote")
@click.option("--model", "model", required=True, help="Registered model name.")
@click.option("--version", "version", default="", help="Version to promote.")
@click.option("--alias", "alias", default="", help="Alias of the version to promote "
              "(default: challenger).")
@click.option("--min-delta", type=_Optional(float), help="Least improvement on the holdout.")
@click.option("--dry-run", type=click.BOOL, is_flag=False, flag_value=True, default=False,
              help="Print the comparison; change nothing.")
@click.option("--force", type=click.BOOL, is_flag=False, flag_value=True, default=False,
              help="Promote without the gate (recorded in a tag).")
def promote_command(model: str, version: str, alias: str, min_delta: float | None,
                    dry_run: bool, force: bool) -> None:
    """Gate a version against the champion on the holdout; move `champion` if it is better."""
    if version and alias:
        raise SpecError("--version and --alias: give one of them, not both")  # flags: CLI
    _quiet_mlflow()
    decision = promote(model, version or None, alias or None, min_delta=min_delta or 0.0,
                       dry_run=dry_run, force=force)
    click.echo(("[dry run] " if dry_run else "") + decision.line())


@cli.command("rollback")
@click.option("--model", "model", required=True, help="Registered model name.")
def rollback_command(model: str) -> None:
    """Give `champion` back to the `previous` version."""
    _quiet_mlflow()
    version = rollback(model)
    click.echo(f"{model}: champion is v{version} again (rolled back)")


@cli.command("report")
@click.argument("run_id", metavar="PARENT_RUN_ID")
@click.option("--out", default="", help="Also write the report into this folder.")
def report_command(run_id: str, out: str) -> None:
    """(Re)build a search's report on its parent run: table, plots, report.html."""
    _quiet_mlflow()
    report = build_report(run_id, out_dir=out or None)
    trials = report.trials
    click.echo(f"Report of search {trials.name!r} ({len(trials.frame)} trials, "
               f"{trials.status.lower()}): {report.artifact_uri}/report.html")
    if report.directory is not None:
        click.echo(f"Written to {report.directory / 'report.html'}")
    click.echo(browse_line(run_url(trials.experiment_id, trials.run_id)))
    click.echo(top_trials_text(trials.frame, trials.metric, trials.mode))


def main(args: list[str] | None = None) -> None:
    """Entry point: click in non-standalone mode so that our errors stay one line."""
    try:
        cli.main(args=args, prog_name="mltune", standalone_mode=False)
    except MltuneError as exc:
        fail(exc)  # an interruption outside a search's loop: its hint names no spec file
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("mltune: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MlflowException as exc:
        first = str(exc.message).strip().splitlines()[0] if str(exc.message).strip() else exc
        click.echo(f"mltune: error: MLflow: {first}", err=True)
        sys.exit(1)
