"""Warm starts on a real store: a second search of the same problem learns from the first
(its trials told to the sampler, its best configuration trained first, the parent run saying
so), a resumed one learns the same again, a moved space keeps what fits, changed data gives
configurations only, a named source of another problem is refused, ``off`` is today's
search. One store for the module: search A (6 trials) and search B (warm, 4 trials, then
resumed to 6) are run once; the rest reads them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import children_of, client_of, run_cli, tracking_store

import mltune
from mltune.cli import summary
from mltune.core.errors import SpecError
from mltune.report.trials import load_trials
from mltune.search.history.sources import find_priors, recorded_priors
from mltune.search.samplers.hyperopt import HyperoptSampler
from mltune.spec.space import build_space
from mltune.spec.start import start_points
from mltune.tasks import task_for

A = {"task": "tabular", "epochs": 1, "pack": 1, "max_evals": 6, "seed": 0, "name": "A"}
B = {**A, "max_evals": 4, "seed": 1, "name": "B"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('warm') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def first(store: str) -> mltune.SearchResult:
    with tracking_store(store):
        return mltune.tune(mltune.load_spec(None, A))


@pytest.fixture(scope="module")
def second(store: str, first: mltune.SearchResult) -> mltune.SearchResult:
    with tracking_store(store):
        return mltune.tune(mltune.load_spec(None, B))


def loaded(spec: mltune.SearchSpec):
    return task_for(spec).load(spec.data, spec.split_seed)


def learnt_from(first: mltune.SearchResult, spec: mltune.SearchSpec, space, client):
    """What ``spec`` learns from ``first`` named as its source (its experiment, this data)."""
    experiment = client.get_run(first.parent_run_id).info.experiment_id
    return find_priors(replace(spec, warm_start=(first.parent_run_id,)), space, loaded(spec),
                       experiment, client)


def test_a_second_search_learns_from_the_first_and_trains_its_best_first(store, first, second):
    spec = second.spec
    defaults = start_points(spec, task_for(spec), build_space(spec.space))[0]
    earlier = [t.params for t in first.trials]
    best = min((t for t in first.trials if t.params != defaults and t.status.value ==
                "FINISHED"), key=lambda t: (-t.metrics["val_accuracy"], t.number))
    points = [t.params for t in sorted(second.trials, key=lambda t: t.number)]
    assert points[:2] == [defaults, best.params]  # the task's defaults, then A's best
    assert not [p for p in points[2:] if p in earlier]  # nothing A trained is asked again
    assert len(points) == 4  # max_evals counts the new trials
    with client_of(store) as client:
        parent = client.get_run(second.parent_run_id)
        assert json.loads(parent.data.tags["mltune.warm_start"]) == [{
            "run_id": first.parent_run_id, "name": "A", "data": "same", "trials": 6,
            "used": 6, "dropped": 0, "starts": 1, "last": 6}]
        assert "- **Warm start:** from 1 earlier search: [A](" in parent.data.tags[
            "mlflow.note.content"]
        assert load_trials(client, second.parent_run_id).warm == {2}  # starred in the plots
        assert json.loads(client.get_run(first.parent_run_id).data.tags[
            "mltune.warm_start"]) == []  # A looked and found nothing
    assert (f"Warm start: from 1 earlier search: A ({first.parent_run_id[:8]}, 6 trials); 6 "
            "trials told to the sampler before its first point; their best 1 configuration "
            "trained first") in summary(second)


def test_a_resumed_warm_search_learns_the_same_and_runs_max_evals_new_trials(store, first,
                                                                           second):
    with tracking_store(store):  # B itself is a matching search now: not a source of B
        more = mltune.tune(mltune.load_spec(None, {**B, "max_evals": 6}),
                           resume=second.parent_run_id)
    assert [s.run_id for s in more.warm.sources] == [first.parent_run_id]
    assert (more.warm.sources[0].trials, more.warm.sources[0].used) == (6, 6)
    assert more.warm.starts == second.warm.starts
    with client_of(store) as client:
        children = children_of(client, second.parent_run_id)
    assert [int(c.data.tags["mltune.trial"]) for c in children] == [1, 2, 3, 4, 5, 6]
    params = [c.data.params for c in children]
    assert all(params.count(p) == 1 for p in params)  # the start points are not run again


def test_a_moved_space_keeps_the_trials_that_fit_and_counts_the_rest(store, first):
    spec = mltune.load_spec(None, B)
    raw = {k: v for k, v in spec.space.items() if k != "dropout"}  # a key dropped
    raw["extra"] = {"uniform": [0.0, 1.0]}  # a key added
    rates = sorted(t.params["learning_rate"] for t in first.trials)
    raw["learning_rate"] = {"loguniform": [rates[2], 3.0e-2]}  # a bound narrowed
    space = build_space(raw)
    with client_of(store) as client:
        priors = learnt_from(first, spec, space, client)
    (source,) = priors.sources
    assert (source.trials, source.used, source.dropped) == (6, 4, 2)
    assert all("dropout" not in f.point and "extra" not in f.point for f in priors.finished)
    sampler = HyperoptSampler("tpe", space, 20, 0)
    assert sampler.warm(priors.finished) == 4  # "extra" left unknown to TPE
    assert set(sampler.ask(1)[0]) >= {"extra", "learning_rate"}


def test_of_a_longer_search_its_best_trials_are_told_and_a_resume_reads_the_same(
        store, first, monkeypatch):
    from mltune.search.history import sources

    monkeypatch.setattr(sources, "MAX_TRIALS", 3)  # A has 6: its best 3, not its first 3
    spec = mltune.load_spec(None, B)
    space = build_space(spec.space)

    def best(trials):
        return sorted(trials, key=lambda t: (-t.metrics["val_accuracy"], t.number))[:3]

    with client_of(store) as client:
        priors = learnt_from(first, spec, space, client)
        (source,) = priors.sources
        assert (source.trials, source.used, source.last) == (3, 3, 6)
        assert [f.loss for f in priors.finished] == [
            -t.metrics["val_accuracy"] for t in sorted(best(first.trials), key=lambda t: t.number)]
        assert priors.candidates[0].loss == -max(t.metrics["val_accuracy"] for t in first.trials)
        # a search resumed later reads what it read then: none after trial 4 had ended
        then = replace(source, last=4).entry()
        experiment = client.get_run(first.parent_run_id).info.experiment_id
        parent = client.create_run(experiment, tags={"mltune.warm_start": json.dumps([then])})
        again = recorded_priors(client.get_run(parent.info.run_id), spec, space, client)
        client.set_terminated(parent.info.run_id)
    early = best([t for t in first.trials if t.number <= 4])
    assert sorted(f.loss for f in again.finished) == sorted(
        -t.metrics["val_accuracy"] for t in early)


def test_changed_data_gives_the_best_configurations_only(store, first):
    spec = mltune.load_spec(None, B)
    data = loaded(spec)
    space = build_space(spec.space)
    with client_of(store) as client:
        experiment = client.get_run(first.parent_run_id).info.experiment_id
        priors = find_priors(spec, space, replace(data, fingerprint="0" * 16), experiment,
                             client)
        assert priors.sources and not any(s.same_data for s in priors.sources)
        assert not priors.finished and not priors.curves and priors.candidates
        assert "other data: no earlier score reused" in priors.line()
        other = replace(data, fingerprint="0" * 16, meta={**data.meta, "columns": ["x"]})
        assert not find_priors(spec, space, other, experiment, client).sources  # auto
        with pytest.raises(SpecError, match="it ran on other data with other columns"):
            find_priors(replace(spec, warm_start=("A",)), space, other, experiment, client)


def test_a_named_source_of_another_problem_or_none_is_refused_in_one_line(store, first,
                                                                          capsys):
    spec = mltune.load_spec(None, {**B, "warm_start": "A"})
    data, space = loaded(spec), build_space(spec.space)
    with client_of(store) as client:
        experiment = client.get_run(first.parent_run_id).info.experiment_id
        for changed, differs in [({"metric": "val_loss", "mode": "min"},
                                  "it optimises val_accuracy (max), not val_loss (min)"),
                                 ({"task": "image"}, "a search of task 'tabular', not 'image'")]:
            with pytest.raises(SpecError) as error:
                find_priors(replace(spec, **changed), space, data, experiment, client)
            assert str(error.value) == (f"warm_start: 'A' (run {first.parent_run_id}) is not a "
                                        f"search of the same problem: {differs}")
        searches = len(client.search_runs([experiment], "tags.`mltune.role` = 'search'"))
        with tracking_store(store):
            code, _, err = run_cli(["tune", "--set", "task=tabular", "--max-evals", "1",
                                    "--epochs", "1", "--warm-start", "nope,A"], capsys)
        assert code == 2
        assert err.strip().splitlines() == [
            "mltune: error: warm_start: no search named 'nope' in this experiment, and it is "
            "not a run id; give parent run ids or search names"]
        assert len(client.search_runs([experiment], "tags.`mltune.role` = 'search'")) == searches


def test_off_is_the_cold_search_of_today(store, first, tmp_path: Path):
    with tracking_store(store):
        cold = mltune.tune(mltune.load_spec(None, {**A, "warm_start": "off"}))
    assert [t.params for t in cold.trials] == [t.params for t in first.trials]
    assert cold.warm is None and "Warm start" not in summary(cold)
    with client_of(store) as client:
        assert "mltune.warm_start" not in client.get_run(cold.parent_run_id).data.tags
