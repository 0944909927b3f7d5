"""Optimizers by name, built from flat params (``optimizer``, ``optimizer.momentum``...)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from mltune.core.catalog import Catalog
from mltune.spec.rules import Flag, Number, OneOf
from mltune.training.defaults import learning_rate, optimizer_options

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter], float, float, dict[str, Any]],
                            torch.optim.Optimizer]
OPTIMIZERS: Catalog[OptimizerFactory] = Catalog("optimizer")


OPTIMIZERS.add("adam", lambda p, lr, wd, o: torch.optim.Adam(p, lr=lr, weight_decay=wd))
OPTIMIZERS.add("adamw", lambda p, lr, wd, o: torch.optim.AdamW(p, lr=lr, weight_decay=wd))
OPTIMIZERS.add(
    "sgd",
    lambda p, lr, wd, o: torch.optim.SGD(
        p, lr=lr, weight_decay=wd, momentum=float(o.get("momentum", 0.9)),
        nesterov=bool(o.get("nesterov", False)) and float(o.get("momentum", 0.9)) > 0,
    ),
)
OPTIMIZERS.add(
    "rmsprop",
    lambda p, lr, wd, o: torch.optim.RMSprop(
        p, lr=lr, weight_decay=wd, momentum=float(o.get("momentum", 0.0))
    ),
)


def make_optimizer(model: torch.nn.Module, params: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimizer the params ask for, over the model's parameters."""
    factory = OPTIMIZERS.get(params.get("optimizer", "adam"), field="optimizer")
    return factory(
        model.parameters(),
        learning_rate(params),
        float(params.get("weight_decay", 0.0)),
        optimizer_options(params),
    )


# The hyperparameters read here and what they allow (checked before any run opens).
OPTIMIZER_RULES = {"optimizer": OneOf.catalog(OPTIMIZERS), "learning_rate": Number(above=0),
                   "weight_decay": Number(minimum=0), "optimizer.momentum": Number(0, 1),
                   "optimizer.nesterov": Flag()}
