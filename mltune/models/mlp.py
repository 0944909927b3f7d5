"""The MLP family: ``num_layers`` blocks of linear -> norm -> activation -> dropout, then a head.

``norm`` is ``none``, ``batch`` or ``layer``. The batch norm here tolerates a training batch of
one row (the last batch of an epoch can be that small): it normalises it with the running
statistics instead of failing the trial.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mltune.core.catalog import Catalog
from mltune.models.families import ACTIVATION, FAMILIES, RATE, SIZE, WEIGHT_INIT, Family
from mltune.models.init import init_weights
from mltune.models.layers import activation
from mltune.spec.rules import OneOf, WholeNumber


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that uses running statistics for a single-row training batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                training=False, eps=self.eps)
        return super().forward(x)


NORMS: Catalog[Callable[[int], nn.Module]] = Catalog("norm")
NORMS.add("none", lambda width: nn.Identity())
NORMS.add("batch", BatchNorm)
NORMS.add("layer", nn.LayerNorm)


class MLP(nn.Module):
    """(N, in_features) floats in, (N, out_features) logits or values out."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        num_layers: int = 2,
        hidden_size: int = 64,
        activation_name: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
    ) -> None:
        super().__init__()
        make_norm = NORMS.get(norm, field="norm")
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_size), make_norm(hidden_size),
                       activation(activation_name)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden_size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def build_mlp(params: Mapping[str, Any], data: Mapping[str, Any]) -> nn.Module:
    """The ``mlp`` family: ``data["features"]`` in, ``data["outputs"]`` out."""
    model = MLP(
        data["features"], data["outputs"],
        num_layers=int(params["num_layers"]),
        hidden_size=int(params["hidden_size"]),
        activation_name=str(params["activation"]),
        dropout=float(params["dropout"]),
        norm=str(params["norm"]),
    )
    return init_weights(model, str(params["weight_init"]))


FAMILIES.add("mlp", Family(
    build_mlp,
    rules={"num_layers": WholeNumber(minimum=0),  # 0: a linear model
           "hidden_size": SIZE, "activation": ACTIVATION, "dropout": RATE,
           "norm": OneOf.catalog(NORMS), "weight_init": WEIGHT_INIT},
    inputs=("features", "outputs"),
))
