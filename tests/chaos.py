"""A search killed with SIGKILL at seeded random moments and resumed after each kill (used by
tests/test_chaos.py and benchmarks/chaos.py).

Each attempt runs ``mltune tune`` (``--resume`` the search once its parent run exists) and
kills it after a random delay unless it ended first; a last attempt runs to the end. What a
user must then find: exactly ``max_evals`` trials run to their end (finished or pruned), no
trial number twice, no run left RUNNING, one registered version for the search, and
``champion`` on the better version.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from mlflow.tracking import MlflowClient


@dataclass
class Chaos:
    """What the attempts did: when each kill landed and the time they cost."""

    parent_run_id: str | None = None
    kills: list[float] = field(default_factory=list)  # seconds into each killed attempt
    finished_at_kill: list[int] = field(default_factory=list)  # trials finished by then
    seconds_lost: float = 0.0  # wall time of the killed attempts
    seconds_final: float = 0.0
    returncode: int | None = None
    stderr: str = ""


def parent_of(client: MlflowClient, name: str) -> str | None:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, f"tags.`mltune.role` = 'search' and "
                                           f"attributes.run_name = '{name}'")
    return runs[0].info.run_id if runs else None


def finished_trials(client: MlflowClient, parent: str | None) -> int:
    if parent is None:
        return 0
    run = client.get_run(parent)
    children = client.search_runs([run.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent}' and "
                                  "attributes.status = 'FINISHED'")
    return len(children)


def kill_and_resume(client: MlflowClient, args: list[str], name: str, env: dict[str, str],
                    kills: int, seed: int, window: tuple[float, float]) -> Chaos:
    """``kills`` attempts killed at random moments within ``window`` seconds of their start
    (an attempt that ends first is not killed), then one to the end."""
    rng = random.Random(seed)
    chaos = Chaos()
    command = [sys.executable, "-m", "mltune", "tune", *args, "--name", name]
    for _ in range(kills):
        chaos.parent_run_id = parent_of(client, name)
        resume = ["--resume", chaos.parent_run_id] if chaos.parent_run_id else []
        started = time.monotonic()
        process = subprocess.Popen(command + resume, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        delay = rng.uniform(*window)
        try:
            _, chaos.stderr = process.communicate(timeout=delay)
            chaos.returncode = process.returncode  # it ended before the kill: the last one
            chaos.seconds_final = time.monotonic() - started
            break
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.communicate()
        chaos.kills.append(round(delay, 2))
        chaos.seconds_lost += time.monotonic() - started
        chaos.finished_at_kill.append(finished_trials(client, parent_of(client, name)))
    else:
        chaos.parent_run_id = parent_of(client, name)
        resume = ["--resume", chaos.parent_run_id] if chaos.parent_run_id else []
        started = time.monotonic()
        result = subprocess.run(command + resume, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, timeout=900)
        chaos.seconds_final = time.monotonic() - started
        chaos.returncode, chaos.stderr = result.returncode, result.stderr
    chaos.parent_run_id = parent_of(client, name)
    return chaos


@dataclass
class Findings:
    """The record a user finds after the kills."""

    finished: int  # trials run to their end: finished, or pruned by the rule
    duplicates: int
    running: int
    versions: int
    champion_is_better: bool


def inspect(client: MlflowClient, parent: str, model: str) -> Findings:
    run = client.get_run(parent)
    experiments = [e.experiment_id for e in client.search_experiments()]
    children = client.search_runs([run.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent}'", max_results=5000)
    numbers = [c.data.tags["mltune.trial"] for c in children]
    running = client.search_runs(experiments, "attributes.status = 'RUNNING'")
    search_id = run.data.tags["mltune.search_id"]
    versions = client.search_model_versions(f"name = '{model}' and "
                                            f"tags.`mltune.search_id` = '{search_id}'")
    champion = client.get_model_version_by_alias(model, "champion")
    better = True
    for version in versions:  # the gate compared this search's version with the champion
        tags = version.tags
        if "mltune.champion_holdout_score" in tags:
            ours = float(tags["mltune.holdout_score"])
            theirs = float(tags["mltune.champion_holdout_score"])
            winner = version.version if ours > theirs else tags["mltune.compared_with"]
            better = str(champion.version) == str(winner)
    # a trial ran to its end when it finished or the pruning rule (ASHA by default) stopped it
    ended = [c for c in children
             if c.info.status == "FINISHED" or c.data.tags.get("mltune.pruned") == "true"]
    return Findings(finished=len(ended),
                    duplicates=len(numbers) - len(set(numbers)), running=len(running),
                    versions=len(versions), champion_is_better=better)
