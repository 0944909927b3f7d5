"""Network families by name: the one way a task gets its network.

A family is a module of ``mltune.models`` that registers itself in ``FAMILIES``: a builder
(decoded params and the task's data description -> a network with its weights initialised)
and the rules of the hyperparameters it reads, which the spec checks before anything runs. A
task names its default family (``Task.family``), describes its data (``Task.describe_data``:
one ``mltune.models.description`` dataclass per task, ``outputs`` and ``features`` or
``channels``/``height``/``width``, ``vocab_size``...) and builds through the catalog, so adding a
family never edits a task. ``model:`` in the spec names the family, or the user's own callable
with the builder's signature (``mltune.models.network``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mltune.core.catalog import Catalog
from mltune.models.init import INITS
from mltune.models.layers import ACTIVATIONS
from mltune.spec.rules import Flag, Number, OneOf, Rule, WholeNumber

NetworkBuilder = Callable[[Mapping[str, Any], Mapping[str, Any]], nn.Module]


@dataclass(frozen=True)
class Family:
    """How to build one kind of network, and what its hyperparameters allow.

    ``build(params, data)`` reads every hyperparameter of ``rules`` from ``params`` (the task
    merges them over its defaults) and every key of ``inputs`` from ``data``. ``members``: its
    networks are ensembles that answer once per member, ``(N, k, outputs)``
    (``mltune.tasks.members`` says what a task makes of that).
    """

    build: NetworkBuilder
    rules: Mapping[str, Rule] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    members: bool = False


FAMILIES: Catalog[Family] = Catalog("model family")

# Rules every family shares: sizes are whole numbers >= 1, rates within [0, 1].
SIZE = WholeNumber(minimum=1)
RATE = Number(minimum=0, maximum=1)
ACTIVATION = OneOf.catalog(ACTIVATIONS)
WEIGHT_INIT = OneOf.catalog(INITS)
FLAG = Flag()
