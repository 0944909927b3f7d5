"""What a task is: its data, its default space, its network, its metrics, its served model.

A task turns a ``DataSpec`` into tensors once per search, builds a network from decoded params,
scores outputs, and knows how the served model reads raw user input and answers. Search,
tracking and registry code only ever talk to this interface.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pandas as pd
import torch
from mlflow.models import ModelSignature
from torch import nn

from mltune.core.errors import SpecError
from mltune.core.terms import Direction
from mltune.data.layout import batch_layout
from mltune.data.splits import TaskData
from mltune.models import FAMILIES
from mltune.models.description import DataDescription
from mltune.models.network import (
    FORMS,
    Network,
    checked_module,
    family_network,
    network_of,
)
from mltune.models.user_code import one_line, user_line
from mltune.spec.model import DataSpec
from mltune.spec.rules import Rule, check_param_names, check_space_names
from mltune.spec.space import first_point
from mltune.training.fit import FIT_RULES
from mltune.training.optim import OPTIMIZER_RULES

Params = Mapping[str, Any]
DRY_SAMPLES = 2  # training samples a user's network answers before the search starts


class Task(ABC):
    """One kind of problem (image, text, timeseries, tabular)."""

    name: ClassVar[str]
    default_source: ClassVar[str | None] = None
    default_metric: ClassVar[str]
    data_options: ClassVar[tuple[str, ...]] = ()
    random_split: ClassVar[bool] = True  # False: its splits draw nothing (``data.split_seed``)
    family: ClassVar[str]  # the model family (``mltune.models.FAMILIES``) of its networks
    # every family that suits it (``model:`` may name any); empty: ``family`` alone
    families: ClassVar[tuple[str, ...]] = ()
    network: Network | None = None  # ``model:`` (``for_model``); None: the task's family
    space_defaults: Mapping[str, Any] = {}  # a user's network: first values of its keys
    # What the objects of ``TaskData.artifacts`` are made of, as ``module.name``: a served
    # model loads a file of them only if it names nothing else (none by default)
    artifact_types: ClassVar[frozenset[str]] = frozenset()

    def for_data(self, data: DataSpec) -> Task:
        """This task as it applies to ``data`` (called where a spec is validated).

        Most tasks are the same whatever the data. A task whose defaults depend on it (tabular:
        classification or regression decides the default metric, losses and space) returns a
        specialised instance here, so nothing downstream branches on the data.
        """
        return self

    def for_model(self, model: Any, space: Mapping[str, Any] | None = None) -> Task:
        """This task with the network ``model:`` names: None (the task's own family), a
        family's name, a reference to the user's callable (not imported here: ``load`` does)
        or the callable. ``space``: the search's, whose first values of the user's own keys
        complete ``default_params``."""
        if model is None:
            return self
        network = network_of(model)
        suited = self.families or (self.family,)
        if not network.user and network.family not in suited:
            raise SpecError(f"model: family {network.family!r} does not suit task "
                            f"{self.name!r}; available for it: {', '.join(suited)}, or your "
                            f"network as {FORMS}")
        return self.with_network(network, space)

    def with_network(self, network: Network, space: Mapping[str, Any] | None = None) -> Task:
        """A copy of this task that builds ``network``."""
        task = copy.copy(self)
        task.network, task.space_defaults = network, {}
        if network.user and space is not None:  # its keys, and the task's (window) as given
            task_keys, defaults = task.task_rules(), task.default_params()
            task.space_defaults = first_point({k: v for k, v in space.items()
                                               if k not in defaults or k in task_keys})
        return task

    @property
    def network_in_use(self) -> Network:
        return self.network if self.network is not None else family_network(self.family)

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
    def metrics(self, data: DataSpec) -> dict[str, Direction]:
        """Every metric a trial logs each epoch (what ``metric:`` may name) and which way it
        is better: declared by the task, never guessed from a name (``val_perplexity`` or
        ``val_mape`` would read as a score). A user's network inherits its task's; ``mode:``
        overrides for the search's metric. ``logged_metrics`` builds it from ``score``'s."""

    @abstractmethod
    def builtin_space(self) -> dict[str, Any]:
        """The YAML-form space of the task with its own family: its family's hyperparameters,
        the training ones and the task's (the one place they are written)."""

    @abstractmethod
    def builtin_params(self) -> dict[str, Any]:
        """Flat params of one sensible configuration of the task with its own family."""

    def default_space(self) -> dict[str, Any]:
        """The YAML-form space used when the spec has no ``space:`` (or for keys it omits).

        A user's network gets the training hyperparameters (and the task's own): its
        hyperparameters are the ones its ``space:`` gives.
        """
        space = self.builtin_space()
        if self.network_in_use.user:
            family = FAMILIES.get(self.family).rules
            return {k: v for k, v in space.items() if k not in family}
        return space

    def default_params(self) -> dict[str, Any]:
        """Flat params of one sensible configuration (``mltune train`` without params).

        The one source of the task's defaults: ``build_model`` and ``make_loss`` read ``params``
        merged over these (``with_defaults``), never a fallback of their own. A user's network
        gets the training ones and the first value of each of its own keys in the space.
        """
        params = self.builtin_params()
        if self.network_in_use.user:
            family, own = FAMILIES.get(self.family).rules, self.task_rules()
            params = {k: v for k, v in params.items() if k not in family or k in own}
            params.update(self.space_defaults)
        return params

    def param_rules(self) -> dict[str, Rule]:
        """What each hyperparameter the task reads allows: its network's (a family's; none
        for a user's network), the training loop's and the optimizer's, the loss's, and the
        task's own. ``build_spec`` checks every value a space can produce against them,
        ``mltune train`` its params, before a run opens."""
        return {**self.network_in_use.rules, **OPTIMIZER_RULES, **FIT_RULES,
                "loss": self.loss_rule(), **self.task_rules()}

    def task_rules(self) -> dict[str, Rule]:
        """The hyperparameters the task itself reads, whatever the network (none by
        default)."""
        return {}

    def hyperparameter_names(self) -> tuple[frozenset[str], frozenset[str]] | None:
        """What a space may name, and which of those names' conditional keys are the
        network's own business: everything a family's network and the training read (its
        rules); for a user's network, the names its callable declares beside the training
        ones. None for a user's network that declares none (or is not imported yet): every
        key is passed to it, unchecked."""
        network = self.network_in_use
        if not network.user:
            return frozenset(self.param_rules()), frozenset()
        declared = network.declared
        if declared is None:
            return None
        return frozenset(self.param_rules()) | frozenset(declared), frozenset(declared)

    def check_space_names(self, space: Mapping[str, Any]) -> None:
        """Refuse a key of ``space`` (the keys a spec gave) that nothing reads: a typo, named
        with the nearest known key (``space.hidden_sise``: did you mean hidden_size?)."""
        found = self.hyperparameter_names()
        if found is not None:
            check_space_names(space, found[0], self._reader(), found[1])

    def check_param_names(self, params: Mapping[str, Any]) -> None:
        """The same for one configuration (``mltune train --params``)."""
        found = self.hyperparameter_names()
        if found is not None:
            check_param_names(params, found[0], self._reader(), found[1])

    def _reader(self) -> str:
        network = self.network_in_use
        return (f"task {self.name!r} with your network {network.name}" if network.user else
                f"task {self.name!r} with model {network.name}")

    @abstractmethod
    def loss_rule(self) -> Rule:
        """The losses (``mltune.training.losses.LOSSES``) that suit the task."""

    def with_defaults(self, params: Params) -> dict[str, Any]:
        """``params`` over ``default_params()``: every key a network or loss reads is there."""
        return {**self.default_params(), **params}

    @abstractmethod
    def load(self, data: DataSpec, seed: int) -> TaskData:
        """Read, validate, split and prepare the data; raise DataError on bad input."""

    def loaded(self, data: DataSpec, seed: int, device: torch.device) -> TaskData:
        """The data as a search holds it, once: read and split (``load``), on ``device``,
        its metadata (logged with every model) naming ``${VAR}`` data as written."""
        loaded = self.load(data, seed).to(device)
        if data.references:
            loaded.meta.update({k: data.shown(v) for k, v in loaded.meta.items()})
        return loaded

    @abstractmethod
    def describe_data(self, meta: Mapping[str, Any],
                      params: Params | None = None) -> DataDescription:
        """What the task's networks take in and give out, from the data's ``meta`` (and the
        params, where the description depends on one): the description every network is
        built from (``mltune.models.description``)."""

    def build_model(self, params: Params, meta: Mapping[str, Any]) -> nn.Module:
        """A fresh network for ``params`` (over the defaults), built by the task's network
        (its family, or ``model:``); ``meta`` alone must suffice (serving rebuilds it)."""
        network = self.network_in_use
        if network.build is None:
            raise RuntimeError(f"the network {network.name} was not loaded "
                               "(mltune.models.network.load)")
        p = self.with_defaults(params)
        description = self.describe_data(meta, p)
        return checked_module(network.build(p, description), network.name)

    def check_network(self, data: TaskData) -> None:
        """A user's network, before any run opens: built with the default params, then two
        training samples through it. One SpecError if it raises or answers in a shape the
        task cannot train on (a family's networks are known to fit)."""
        network = self.network_in_use
        if not network.user:
            return
        params = self.with_defaults({})
        description = self.describe_data(data.meta, params)
        try:
            model = self.build_model(params, data.meta)
        except SpecError:
            raise
        except Exception as exc:
            own = ", ".join(f"{k}={v!r}" for k, v in self.space_defaults.items())
            with_own = f" ({own} and the training defaults)" if own else ""
            raise SpecError(f"model: {network.name} raised {one_line(exc)}{_where(exc)} when "
                            f"called with the default params{with_own}") from None
        x = batch_layout(data.x_train[:DRY_SAMPLES])
        try:
            with torch.no_grad():
                outputs = model.to(x.device).train()(x)
        except Exception as exc:
            raise SpecError(f"model: the network of {network.name} failed on a forward of "
                            f"{len(x)} training samples of shape {_shape(x.shape)}: "
                            f"{one_line(exc)}{_where(exc)}") from None
        expected = (len(x), description.outputs)
        actual = (_shape(outputs.shape) if isinstance(outputs, torch.Tensor)
                  else f"a {type(outputs).__name__}, not a tensor")
        if not isinstance(outputs, torch.Tensor) or tuple(outputs.shape) != expected:
            raise SpecError(f"model: the network of {network.name} answers {len(x)} training "
                            f"samples of shape {_shape(x.shape)} with {actual}; task "
                            f"{self.name!r} trains on {_shape(expected)}: "
                            f"{description.answer} for each sample")

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

    def outputs_are_logits(self, meta: Mapping[str, Any]) -> bool:
        """Whether the network's outputs are class logits (an ensemble averages their softmax)
        rather than values (averaged as they are). None are by default."""
        return False

    def trial_artifacts(self, model: nn.Module, data: TaskData) -> dict[str, Any]:
        """Extra files logged with each trained network, by file name (none by default).

        Values: a dict or list (written as JSON), a str (text) or a matplotlib Figure (image).
        """
        return {}


def logged_metrics(scored: Mapping[str, Direction]) -> dict[str, Direction]:
    """What a trial logs each epoch, given what ``Task.score`` returns (without ``val_``):
    the training loop's two losses, then each score on the validation split."""
    return {"train_loss": Direction.MIN, "val_loss": Direction.MIN,
            **{f"val_{name}": direction for name, direction in scored.items()}}


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(int(n)) for n in shape) + ")"


def _where(exc: BaseException) -> str:
    """`` (nets.py line 12)``: where in the user's code ``exc`` was raised, if it was."""
    found = user_line(exc)
    return f" ({found[0]} line {found[1]})" if found else ""
