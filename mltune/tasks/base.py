"""What a task is: its data, its default space, its network, its metrics, its served model.

A task turns a ``DataSpec`` into tensors once per search, builds a network from decoded params,
scores outputs, and knows how the served model reads raw user input and answers. Search,
tracking and registry code only ever talk to this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pandas as pd
import torch
from mlflow.models import ModelSignature
from torch import nn

from mltune.core.terms import direction_of
from mltune.data.splits import TaskData
from mltune.models import FAMILIES
from mltune.spec.model import DataSpec
from mltune.spec.rules import Rule
from mltune.training.fit import FIT_RULES
from mltune.training.optim import OPTIMIZER_RULES

Params = Mapping[str, Any]


class Task(ABC):
    """One kind of problem (image, text, timeseries, tabular)."""

    name: ClassVar[str]
    default_source: ClassVar[str | None] = None
    default_metric: ClassVar[str]
    data_options: ClassVar[tuple[str, ...]] = ()
    family: ClassVar[str]  # the model family (``mltune.models.FAMILIES``) of its networks

    def default_mode(self, metric: str) -> str:
        return direction_of(metric).value

    def for_data(self, data: DataSpec) -> Task:
        """This task as it applies to ``data`` (called where a spec is validated).

        Most tasks are the same whatever the data. A task whose defaults depend on it (tabular:
        classification or regression decides the default metric, losses and space) returns a
        specialised instance here, so nothing downstream branches on the data.
        """
        return self

    def resolve_data(self, data: DataSpec, space: Mapping[str, Any]) -> DataSpec:
        """Check the task's ``data:`` keys against the whole space; fill in derived ones.

        Called once when the spec is built, so bad settings fail before anything runs. The
        default keeps ``data`` as it is.
        """
        return data

    def best_trial_figures(self, network: nn.Module, params: Params,
                           data: TaskData) -> dict[str, Any]:
        """Figures (artifact file name -> matplotlib Figure) to log on the best trial's run.

        Called once per search with the best trial's network rebuilt from its logged model.
        The default has none.
        """
        return {}

    @abstractmethod
    def metric_names(self, data: DataSpec) -> list[str]:
        """Every metric a trial logs each epoch (what ``metric:`` may name)."""

    @abstractmethod
    def default_space(self) -> dict[str, Any]:
        """The YAML-form space used when the spec has no ``space:`` (or for keys it omits)."""

    @abstractmethod
    def default_params(self) -> dict[str, Any]:
        """Flat params of one sensible configuration (``mltune train`` without params).

        The one source of the task's defaults: ``build_model`` and ``make_loss`` read ``params``
        merged over these (``with_defaults``), never a fallback of their own.
        """

    def param_rules(self) -> dict[str, Rule]:
        """What each hyperparameter the task reads allows: its family's, the training loop's
        and the optimizer's, the loss's, and the task's own. ``build_spec`` checks every value
        a space can produce against them, ``mltune train`` its params, before a run opens."""
        return {**FAMILIES.get(self.family).rules, **OPTIMIZER_RULES, **FIT_RULES,
                "loss": self.loss_rule()}

    @abstractmethod
    def loss_rule(self) -> Rule:
        """The losses (``mltune.training.losses.LOSSES``) that suit the task."""

    def with_defaults(self, params: Params) -> dict[str, Any]:
        """``params`` over ``default_params()``: every key a network or loss reads is there."""
        return {**self.default_params(), **params}

    @abstractmethod
    def load(self, data: DataSpec, seed: int) -> TaskData:
        """Read, validate, split and prepare the data; raise DataError on bad input."""

    @abstractmethod
    def describe_data(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """What the task's networks take in and give out, from the data's ``meta``: the data
        description a model family builds from (``outputs``, ``features``...)."""

    def build_model(self, params: Params, meta: Mapping[str, Any]) -> nn.Module:
        """A fresh network for ``params`` (over the defaults), built by the task's family;
        ``meta`` alone must suffice (serving rebuilds it)."""
        family = FAMILIES.get(self.family)
        return family.build(self.with_defaults(params), self.describe_data(meta))

    @abstractmethod
    def make_loss(self, params: Params, data: TaskData) -> Callable[..., torch.Tensor]:
        """The training loss for ``params``."""

    @abstractmethod
    def score(self, outputs: torch.Tensor, targets: torch.Tensor,
              meta: Mapping[str, Any]) -> dict[str, float]:
        """Metrics of validation outputs, without the ``val_`` prefix."""

    def holdout_inputs(self, data: TaskData, meta: Mapping[str, Any]) -> torch.Tensor:
        """The holdout split's inputs as a network built from ``meta`` takes them.

        The promotion gate scores the champion (trained by another search, maybe with other
        fitted preprocessing) on the challenger's holdout. The default suits networks that take
        raw values and preprocess inside (the image task); a task whose input tensors depend on
        preprocessing fitted on train (a vocabulary, an external scaler) re-encodes its raw
        holdout with ``meta`` here.
        """
        return data.x_test

    @abstractmethod
    def input_example(self, data: TaskData) -> Any:
        """A small raw input of the kind the served model takes."""

    @abstractmethod
    def signature(self, data: TaskData) -> ModelSignature:
        """The served model's signature."""

    @abstractmethod
    def predict(self, model: nn.Module, meta: Mapping[str, Any], model_input: Any) -> pd.DataFrame:
        """Raw user input -> the user's labels or values (the served model's ``predict``)."""

    def trial_artifacts(self, model: nn.Module, data: TaskData) -> dict[str, Any]:
        """Extra files logged with each trained network, by file name (none by default).

        Values: a dict or list (written as JSON), a str (text) or a matplotlib Figure (image).
        """
        return {}
