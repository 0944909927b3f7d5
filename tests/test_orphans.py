"""The records of a lane whose process died (a Ray worker killed mid-pack): closed KILLED by the
search's side, each with the point it was training, even when the worker died between making
its run and sending its params."""

from __future__ import annotations

from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from mltune.tracking import tags as T
from mltune.tracking.runs import SearchRun
from mltune.tracking.tracker import end_orphans


def trial_run(client: MlflowClient, search: SearchRun, number: int) -> str:
    """A trial's run as a worker makes it: RUNNING, tagged, no params yet."""
    return client.create_run(search.experiment_id, run_name=f"trial-{number:04d}", tags={
        T.ROLE: "trial", T.TRIAL: str(number), T.SEARCH_ID: search.search_id,
        "mlflow.parentRunId": search.run_id}).info.run_id


def test_a_dead_workers_runs_end_killed_with_the_points_they_trained(client):
    experiment = client.create_experiment("orphans")
    parent = client.create_run(experiment).info.run_id
    search = SearchRun(parent, experiment, "s1", client)
    sent, unsent, other = (trial_run(client, search, n) for n in (3, 4, 5))
    client.log_batch(sent, params=[Param("learning_rate", "0.01"), Param("optimizer", "adam")])
    points = {3: {"learning_rate": 0.01, "optimizer": "adam"},
              4: {"learning_rate": 0.002, "optimizer": "sgd", "hidden_size": 64}}

    end_orphans(search, [3, 4], points)

    for run_id in (sent, unsent):
        run = client.get_run(run_id)
        assert run.info.status == "KILLED"
        assert run.data.tags[T.INTERRUPTED] == "true"
    assert client.get_run(sent).data.params == {"learning_rate": "0.01", "optimizer": "adam"}
    assert client.get_run(unsent).data.params == {"learning_rate": "0.002", "optimizer": "sgd",
                                                  "hidden_size": "64"}
    untouched = client.get_run(other)  # another lane's trial: still training
    assert untouched.info.status == "RUNNING" and T.INTERRUPTED not in untouched.data.tags
