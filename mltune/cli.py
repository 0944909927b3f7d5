"""The ``mltune`` command: parse, make one library call, print. Errors become one line.

Bad input exits 2 with ``mltune: error: <field>: <what is wrong>``; a search that ran and
could not produce a result exits 1. No traceback for either.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import click
import mlflow
import yaml
from mlflow.exceptions import MlflowException

from mltune import __version__
from mltune.errors import MltuneError, SpecError
from mltune.search import SearchResult, TrialOutcome, train_once, tune
from mltune.spec import load_spec, parse_assignment


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
    click.option("--device", default="", help="auto | cpu | cuda | cuda:N"),
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
@click.option("--algo", default="", help="tpe | rand | anneal")
@click.option("--metric", default="", help="Metric to optimise (one every trial logs).")
@click.option("--mode", default="", help="max | min")
@click.option("--backend", default="", help="local | ray")
@click.option("--parallelism", type=OptionalInt, help="Concurrent trials.")
@click.option("--name", default="", help="Name of the search (the parent run).")
@click.option("--registered-model", default="", help="Registered model to add the best to.")
def tune_command(config: str, assignments: tuple[str, ...], **flags: Any) -> None:
    """Run a hyperparameter search and register its best model."""
    spec = load_spec(config or None, _overrides(flags, assignments))
    _quiet_mlflow()
    from tqdm import tqdm

    # delay: drawn from the first finished trial on, so that data refused by task.load (before
    # any trial) prints the one error line and no empty bar in front of it
    bar = tqdm(total=spec.max_evals, desc=spec.name, unit="trial", file=sys.stderr,
               dynamic_ncols=True, delay=1e-3)

    def progress(outcome: TrialOutcome, best: float | None) -> None:
        bar.set_postfix_str(f"best {spec.metric}={best:.4f}" if best is not None else "")
        bar.update(1)
        if bar.n >= bar.total:
            bar.close()  # before registration prints its own lines

    try:
        result = tune(spec, progress=progress)
    finally:
        bar.close()
    click.echo(summary(result))


def summary(result: SearchResult) -> str:
    spec, best = result.spec, result.best
    params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(best.params.items()))
    uri = mlflow.get_tracking_uri()
    ui = "mlflow ui" + (f" --backend-store-uri {uri}" if uri.startswith("sqlite") else "")
    lines = [
        f"Search {spec.name!r} finished: {result.finished} trials finished, "
        f"{result.failed} failed (parent run {result.parent_run_id})",
        f"Best trial: trial-{best.number:04d}  {spec.metric}={result.best_value:.4f}  "
        f"(run {best.run_id})",
        f"Best params: {params}",
    ]
    if result.registered_version:
        lines.append(f"Registered: {spec.registered_model} version {result.registered_version}"
                     f" (aliases: {', '.join(result.aliases)})")
    lines.append(f"Browse: {ui}   then open experiment {result.experiment_id}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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
        raise SpecError(f"--params: expected a mapping like {{learning_rate: 0.01}}, "
                        f"got {params_text!r}")
    _quiet_mlflow()
    run_id, metrics = train_once(spec, params)
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
    click.echo(f"Trained run {run_id}: {shown}")


def main(args: list[str] | None = None) -> None:
    """Entry point: click in non-standalone mode so that our errors stay one line."""
    try:
        cli.main(args=args, prog_name="mltune", standalone_mode=False)
    except MltuneError as exc:
        click.echo(f"mltune: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("mltune: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("mltune: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MlflowException as exc:
        first = str(exc.message).strip().splitlines()[0] if str(exc.message).strip() else exc
        click.echo(f"mltune: error: MLflow: {first}", err=True)
        sys.exit(1)
