"""Every name -> implementation lookup is a Catalog: an unknown name is one SpecError that
names the field, the name asked for and every name available, whatever the catalog."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import mltune  # noqa: F401  (registers tasks and backends)
from mltune.core.catalog import Catalog
from mltune.core.errors import SpecError
from mltune.models import FAMILIES
from mltune.models.init import INITS, init_weights
from mltune.models.layers import ACTIVATIONS, activation
from mltune.models.mlp import MLP, NORMS
from mltune.models.rnn import CELLS, POOLINGS, RecurrentEncoder
from mltune.search.packs.lanes import BACKENDS
from mltune.spec.tasks import TASKS
from mltune.tasks import get_task
from mltune.training.losses import LOSSES, make_loss
from mltune.training.optim import OPTIMIZERS, make_optimizer

LOOKUPS: dict[str, tuple[Catalog, str, Callable[[str], object]]] = {
    # catalog, the field its errors name, the lookup as mltune's code does it
    "task": (TASKS, "task", get_task),
    "model family": (FAMILIES, None, FAMILIES.get),
    "activation": (ACTIVATIONS, "activation", activation),
    "optimizer": (OPTIMIZERS, "optimizer",
                  lambda name: make_optimizer(torch.nn.Linear(2, 2), {"optimizer": name})),
    "loss": (LOSSES, "loss", make_loss),
    "weight_init": (INITS, "weight_init", lambda name: init_weights(torch.nn.Linear(2, 2), name)),
    "cell": (CELLS, "cell", lambda name: RecurrentEncoder(3, cell=name)),
    "pooling": (POOLINGS, "pool", lambda name: RecurrentEncoder(3, pool=name)),
    "norm": (NORMS, "norm", lambda name: MLP(3, 2, norm=name)),
    "backend": (BACKENDS, "backend", lambda name: BACKENDS.get(name, field="backend")),
}


@pytest.mark.parametrize("kind", sorted(LOOKUPS))
def test_an_unknown_name_lists_what_is_available(kind):
    catalog, field, lookup = LOOKUPS[kind]
    assert catalog.kind == kind
    with pytest.raises(SpecError) as caught:
        lookup("nope")
    assert caught.value.field == field
    assert caught.value.detail == f"unknown {kind} 'nope'; available: {', '.join(catalog)}"


@pytest.mark.parametrize("kind", sorted(LOOKUPS))
def test_every_name_listed_can_be_looked_up(kind):
    catalog, _, lookup = LOOKUPS[kind]
    assert catalog.names() and catalog.names() == sorted(catalog.names())
    for name in catalog.names():
        if kind != "backend":  # ray's lookup is cheap, its preflight is not: not run here
            lookup(name)


def test_the_built_in_tasks_and_families():
    assert TASKS.names() == ["image", "tabular", "text", "timeseries"]
    assert FAMILIES.names() == ["cnn", "forecaster", "mlp", "tabm", "text_rnn"]
    suited = {family for name in TASKS.names()
              for family in get_task(name).families or (get_task(name).family,)}
    assert suited == set(FAMILIES.names())  # every family suits a task
    assert get_task("tabular").families == ("mlp", "tabm")


def test_a_name_is_registered_once():
    catalog: Catalog[int] = Catalog("thing")
    catalog.add("one", 1)
    with pytest.raises(ValueError, match="thing 'one' is registered twice"):
        catalog.add("one", 2)


def test_a_non_string_name_is_unknown_not_an_error_of_its_own():
    with pytest.raises(SpecError, match=r"^activation: unknown activation 3; available: elu"):
        activation(3)  # type: ignore[arg-type]
