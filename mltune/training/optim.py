"""Optimizers by name, in one catalog: each name has its ``torch.optim`` form (a plain member)
and its packed form (the members of a fused pack, each with its own values: ``packed_optim``),
built from flat params (``optimizer``, ``optimizer.momentum``...)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mltune.core.catalog import Catalog
from mltune.spec.rules import Flag, Number, OneOf
from mltune.training.defaults import learning_rate, optimizer_options
from mltune.training.packed_optim import (
    PackedAdam,
    PackedAdamW,
    PackedOptimizer,
    PackedRMSprop,
    PackedSGD,
)

PlainFactory = Callable[[Iterable[torch.nn.Parameter], float, float, dict[str, Any]],
                        torch.optim.Optimizer]


@dataclass(frozen=True)
class Optimizer:
    """One optimizer as both routes train with it: alone (``plain``) and packed."""

    plain: PlainFactory
    packed: type[PackedOptimizer]


def _sgd(p: Iterable[torch.nn.Parameter], lr: float, wd: float, o: dict[str, Any]
         ) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` with ``optimizer.momentum`` (0.9) and ``optimizer.nesterov``."""
    momentum = float(o.get("momentum", 0.9))
    return torch.optim.SGD(p, lr=lr, weight_decay=wd, momentum=momentum,
                           nesterov=bool(o.get("nesterov", False)) and momentum > 0)


OPTIMIZERS: Catalog[Optimizer] = Catalog("optimizer")
OPTIMIZERS.add("adam", Optimizer(
    lambda p, lr, wd, o: torch.optim.Adam(p, lr=lr, weight_decay=wd), PackedAdam))
OPTIMIZERS.add("adamw", Optimizer(
    lambda p, lr, wd, o: torch.optim.AdamW(p, lr=lr, weight_decay=wd), PackedAdamW))
OPTIMIZERS.add("sgd", Optimizer(_sgd, PackedSGD))
OPTIMIZERS.add("rmsprop", Optimizer(
    lambda p, lr, wd, o: torch.optim.RMSprop(p, lr=lr, weight_decay=wd,
                                             momentum=float(o.get("momentum", 0.0))),
    PackedRMSprop))


def make_optimizer(model: torch.nn.Module, params: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimizer the params ask for, over the model's parameters."""
    optimizer = OPTIMIZERS.get(params.get("optimizer", "adam"), field="optimizer")
    return optimizer.plain(model.parameters(), learning_rate(params),
                           float(params.get("weight_decay", 0.0)), optimizer_options(params))


def make_packed_optimizer(weights: Sequence[torch.nn.Parameter],
                          members: Sequence[Mapping[str, Any]]) -> PackedOptimizer:
    """The packed form of the members' optimizer (one type per pack: it is in the shape key)."""
    names = {str(m.get("optimizer", "adam")) for m in members}
    if len(names) != 1:
        raise ValueError(f"members of a pack share one optimizer type, got {sorted(names)}")
    return OPTIMIZERS.get(names.pop(), field="optimizer").packed(weights, members)


# The hyperparameters read here and what they allow (checked before any run opens).
OPTIMIZER_RULES = {"optimizer": OneOf.catalog(OPTIMIZERS), "learning_rate": Number(above=0),
                   "weight_decay": Number(minimum=0), "optimizer.momentum": Number(0, 1),
                   "optimizer.nesterov": Flag()}
