"""One contract for every registered task and every network family that suits it, without
MLflow: it loads tiny data, trains one epoch as a pack of one and as a pack of three through the
one engine, scores every metric it declares, and answers raw input through the code its served
model runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_text import make_texts, write_csv
from test_timeseries import seasonal, write

from mltune.models import FAMILIES
from mltune.spec.build import build_spec
from mltune.spec.space import first_point
from mltune.spec.tasks import TASKS
from mltune.tasks import task_for
from mltune.tracking.model_files import load_task_artifacts, save_task_artifacts
from mltune.training.device import seed_everything
from mltune.training.engine import Member, PackTrainer


def _image(tmp: Path) -> dict[str, Any]:
    return {"task": "image", "data": "sklearn:digits",
            "space": {"num_blocks": 1, "channels": 16, "hidden_size": 64}}


def _tabular(tmp: Path) -> dict[str, Any]:
    return {"task": "tabular", "data": "sklearn:breast_cancer"}


def _tabular_tabm(tmp: Path) -> dict[str, Any]:
    return {"task": "tabular", "data": "sklearn:breast_cancer", "model": "tabm",
            "space": {"n_blocks": 2, "d_block": 64, "k": 8}}


def _text(tmp: Path) -> dict[str, Any]:
    texts, labels = make_texts(150, seed=0)
    path = write_csv(tmp / "texts.csv", ["text", "label"], [[t, y] for t, y in zip(texts, labels,
                                                                                     strict=True)])
    return {"task": "text", "data": {"source": str(path), "text": "text", "target": "label"},
            "space": {"hidden_size": 32, "num_layers": 1}}


def _timeseries(tmp: Path) -> dict[str, Any]:
    path = write(seasonal(rows=240), tmp / "sales.csv")
    return {"task": "timeseries",
            "data": {"source": path, "target": "sales", "time": "date", "horizon": 6},
            "space": {"window": 12, "hidden_size": 16, "num_layers": 1}}


# one case per task and family that suits it: "task" for its default family, "task/family"
SPECS = {"image": _image, "tabular": _tabular, "tabular/tabm": _tabular_tabm, "text": _text,
         "timeseries": _timeseries}


def test_every_registered_task_and_family_is_in_this_contract():
    cases = set()
    for name in TASKS.names():
        task = TASKS.get(name)
        cases |= {name if family == task.family else f"{name}/{family}"
                  for family in task.families or (task.family,)}
    assert cases == set(SPECS)


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_task_trains_a_pack_scores_and_answers_raw_input(name, members, tmp_path):
    spec = build_spec({**SPECS[name](tmp_path), "epochs": 1})
    task = task_for(spec)
    data = task.load(spec.data, seed=0)
    params = {**task.default_params(), **first_point(spec.space)}  # a point of its space
    rates = [1e-3, 3e-3, 1e-2][:members]  # members differ in what a pack lets differ
    configs = [{**params, "learning_rate": lr} for lr in rates]
    networks = []
    for j, config in enumerate(configs):
        seed_everything(j)
        networks.append(task.build_model(config, data.meta))
    crew = [Member(c, task.make_loss(c, data)) for c in configs]
    trainer = PackTrainer(data, networks, crew, seed=0, precision="fp32",
                          score=lambda o, y: task.score(o, y, data.meta))
    epoch = trainer.step_epoch()

    declared = task.metrics(spec.data)
    # what a served model knows: the data's description and the task's objects, through the
    # files a logged model carries them in (skops, checked against the task's trusted types),
    # as ServedModel.load_context reads them
    folder = tmp_path / "artifacts"
    folder.mkdir()
    files = save_task_artifacts(data.artifacts, str(folder), task.artifact_types)
    served_meta = {**data.meta, **load_task_artifacts(files, task.artifact_types)}
    for j, metrics in epoch.items():
        assert isinstance(metrics, dict), metrics  # trained, not diverged
        assert set(metrics) == set(declared)  # every declared metric, and only those
        assert all(math.isfinite(v) for v in metrics.values())
        network = task.build_model(configs[j], data.meta)
        trainer.remove({j: network})
        network.eval()
        example = task.input_example(data)
        answer = task.predict(network, served_meta, example)
        assert isinstance(answer, pd.DataFrame) and len(answer) >= 1
        assert not answer.select_dtypes(include=[np.number]).isna().any().any()


class Reading(dict):
    """Params that remember which keys a network's builder read."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_family_reads_exactly_the_hyperparameters_it_declares(name, tmp_path):
    """What lets a space's typo be refused (``space.hidden_sise``): a family's builder reads
    its rules' keys and nothing else, so the names a spec may give are known."""
    spec = build_spec(SPECS[name](tmp_path))
    task = task_for(spec)
    data = task.load(spec.data, seed=0)
    params = task.with_defaults(first_point(spec.space))  # a point of its space
    family = FAMILIES.get(task.network_in_use.family)  # model: tabm, or the task's own
    reading = Reading(params)
    family.build(reading, task.describe_data(data.meta, params))
    assert reading.read == set(family.rules)
