"""The promotion gate: champion only ever gets better on the holdout; rollback; races."""

from __future__ import annotations

import threading

import mlflow
import pytest
from conftest import all_runs
from test_cli import run_cli

import mltune
from mltune.registry.gate import promote
from mltune.registry.versions import register

WEAK = {"max_evals": 1, "epochs": 1, "space.learning_rate": 1e-4, "space.optimizer": "sgd",
        "space.batch_norm": False, "space.weight_init": "normal"}
STRONG = {"max_evals": 1, "epochs": 5, "space.learning_rate": 3e-3, "space.optimizer": "adam",
          "space.batch_norm": True, "space.weight_init": "default", "space.dropout": 0.0}


def search(overrides: dict, **more) -> mltune.SearchResult:
    return mltune.tune(mltune.load_spec(None, {**overrides, **more}))


def aliases(client, name: str = "mltune-image") -> dict[str, str]:
    return {alias: str(v) for alias, v in client.get_registered_model(name).aliases.items()}


def test_champion_moves_only_to_better_models_with_previous_dry_run_and_rollback(client,
                                                                                capsys):
    first = search(WEAK, name="s1")
    assert aliases(client) == {"challenger": "1", "champion": "1"}
    assert first.decision.reason == "first version: no champion yet"

    second = search(STRONG, name="s2")
    assert second.decision.moved
    assert aliases(client) == {"challenger": "2", "champion": "2", "previous": "1"}
    v2 = client.get_model_version("mltune-image", "2")
    assert v2.tags["mltune.gate"] == "promoted" and v2.tags["mltune.compared_with"] == "1"
    assert float(v2.tags["mltune.holdout_score"]) > float(v2.tags["mltune.champion_holdout_score"])
    parent2 = client.get_run(second.parent_run_id)
    assert parent2.data.metrics["test_accuracy"] == pytest.approx(
        float(v2.tags["mltune.holdout_score"]), abs=1e-5)
    assert "champion_test_accuracy" in parent2.data.metrics

    third = search(WEAK, name="s3", seed=0)
    assert not third.decision.moved
    assert aliases(client) == {"challenger": "3", "champion": "2", "previous": "1"}
    v3 = client.get_model_version("mltune-image", "3")
    assert v3.tags["mltune.gate"] == "kept" and "not better" in v3.tags["mltune.gate_reason"]
    assert client.get_run(third.parent_run_id).data.tags["mltune.gate"].startswith("kept")

    # the lineage tags a team needs to trace a version back
    for key in ("mltune.parent_run_id", "mltune.run_id", "mltune.metric",
                "mltune.metric_value", "mltune.spec_hash", "mltune.data_fingerprint",
                "mltune.version"):
        assert v3.tags[key]
    assert v3.tags["mltune.parent_run_id"] == third.parent_run_id
    assert "Best of 1 trials of search 's3'" in v3.description

    tags_before = client.get_model_version("mltune-image", "1").tags
    code, out, _ = run_cli(["promote", "--model", "mltune-image", "--version", "1",
                            "--dry-run"], capsys)
    assert code == 0 and out.startswith("[dry run] mltune-image: kept champion v2")
    assert aliases(client) == {"challenger": "3", "champion": "2", "previous": "1"}
    assert client.get_model_version("mltune-image", "1").tags == tags_before

    code, out, _ = run_cli(["rollback", "--model", "mltune-image"], capsys)
    assert code == 0 and "champion is v1 again" in out
    assert aliases(client) == {"challenger": "3", "champion": "1", "previous": "2"}

    code, out, _ = run_cli(["promote", "--model", "mltune-image", "--force"], capsys)
    assert code == 0 and "promoted v3 to champion: forced" in out
    assert aliases(client)["champion"] == "3"
    assert client.get_model_version("mltune-image", "3").tags["mltune.gate"] == "forced"

    # the champion stays servable: it loads and predicts raw digits
    model = mlflow.pyfunc.load_model("models:/mltune-image@champion")
    assert len(model.predict(mltune.tasks.get_task("image").load(
        mltune.load_spec(None).data, 0).x_test[:3].permute(0, 2, 3, 1).numpy())) == 3


def test_min_delta_keeps_a_slightly_better_challenger_out(client):
    search(WEAK, name="s1")
    result = search(STRONG, name="s2", min_delta=1.5)  # no accuracy gain can reach 1.5
    assert not result.decision.moved
    assert "min_delta 1.5" in result.decision.reason
    assert aliases(client)["champion"] == "1"


def test_a_champion_split_with_another_seed_is_said_to_be_flattered_by_the_holdout(client):
    search(WEAK, name="s1")  # seed 0: its rows of train, validation and holdout
    other = search(WEAK, name="s2", seed=1)  # another split: v1 trained on some of its holdout
    said = "v1's splits were drawn with seed 0, this holdout's with 1: rows it trained on"
    assert said in other.decision.reason
    assert said in client.get_model_version("mltune-image", "2").tags["mltune.gate_reason"]
    champion_seed = 1 if other.decision.moved else 0
    shared = search(WEAK, name="s3", seed=2, **{"data.split_seed": champion_seed})
    assert shared.decision.champion is not None and "flatters" not in shared.decision.reason


def test_racing_promotions_end_with_the_better_champion(client):
    weak, strong = search(WEAK, name="weak"), search(STRONG, name="strong")
    name = "race-model"
    versions = {}
    for label, result in (("weak", weak), ("strong", strong)):
        source = client.get_model_version("mltune-image", result.registered_version)
        versions[label] = register(result.best.model_uri, name, source.tags,
                                            "race").version
    for order in (("weak", "strong"), ("strong", "weak")):
        for alias in ("champion", "previous"):
            try:
                client.delete_registered_model_alias(name, alias)
            except mlflow.exceptions.MlflowException:
                pass
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def run(label: str, barrier: threading.Barrier, errors: list) -> None:
            try:
                barrier.wait()
                promote(name, versions[label])
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(label, barrier, errors))
                   for label in order]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert aliases(client, name)["champion"] == str(versions["strong"])


BAD_REQUESTS = [
    (["promote", "--model", "nope"], "--model: no registered model named 'nope'"),
    (["promote", "--model", "mltune-image", "--version", "99"], "no version '99'"),
    (["promote", "--model", "mltune-image", "--alias", "gold"], "no alias 'gold'"),
    (["promote", "--model", "mltune-image", "--min-delta", "-1"],
     "--min-delta: -1 is not allowed"),
    (["promote", "--model", "mltune-image", "--version", "1", "--alias", "champion"],
     "give one of them, not both"),
    (["rollback", "--model", "mltune-image"], "no version holds the alias 'previous'"),
]


def test_bad_promotion_requests_fail_clearly_and_move_nothing(client, capsys):
    search(WEAK, name="s1")
    before = aliases(client)
    capsys.readouterr()
    for args, message in BAD_REQUESTS:
        code, _, err = run_cli(args, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, args
        assert aliases(client) == before


def test_incomparable_champion_and_missing_holdout_are_refused(client, capsys):
    search(WEAK, name="accuracy-search")
    other = search(WEAK, name="loss-search", metric="val_loss")
    assert other.decision is None and "tuned for metric 'val_accuracy'" in other.gate_error
    assert aliases(client)["champion"] == "1"
    code, _, err = run_cli(["promote", "--model", "mltune-image", "--version", "2"], capsys)
    assert code == 2 and "cannot be compared" in err

    mlflow.register_model(other.best.model_uri, "handmade")
    code, _, err = run_cli(["promote", "--model", "handmade", "--version", "1"], capsys)
    assert code == 2 and "has no mltune lineage" in err
    assert "champion" not in aliases(client, "handmade")
    assert not [r for r in all_runs(client) if r.info.status == "RUNNING"]
