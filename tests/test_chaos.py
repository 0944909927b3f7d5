"""Crash anywhere, any number of times: a packed search killed with SIGKILL at seeded random
moments (while loading, training, logging models, registering, gating, reporting) and resumed
after each kill ends as if it had never been killed."""

from __future__ import annotations

import pytest
from chaos import inspect, kill_and_resume
from conftest import env_for_subprocess

import mltune


@pytest.mark.slow
def test_a_search_killed_three_times_ends_with_max_evals_trials_and_one_version(tracking_uri,
                                                                               client):
    model = "chaos-tabular"
    first = mltune.tune(mltune.load_spec(None, {  # a champion already there to beat (or not)
        "task": "tabular", "max_evals": 1, "epochs": 1, "registered_model": model,
        "name": "before"}))
    assert first.aliases == ["challenger", "champion"]
    args = ["--set", "task=tabular", "--max-evals", "4", "--epochs", "3", "--pack", "2",
            "--seed", "3", "--registered-model", model]
    chaos = kill_and_resume(client, args, "chaos", env_for_subprocess(tracking_uri), kills=3,
                            seed=11, window=(2.0, 16.0))
    assert chaos.returncode == 0, chaos.stderr[-3000:]
    assert chaos.parent_run_id is not None
    found = inspect(client, chaos.parent_run_id, model)
    assert found.finished == 4, chaos
    assert found.duplicates == 0
    assert found.running == 0
    assert found.versions == 1
    assert found.champion_is_better
    parent = client.get_run(chaos.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.registered_model"].startswith(f"{model}/")
