"""Building blocks shared by model families: activations by name, input standardisation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mltune.core.catalog import Catalog

ACTIVATIONS: Catalog[type[nn.Module]] = Catalog("activation")
for _name, _cls in {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "selu": nn.SELU,
    "sigmoid": nn.Sigmoid,
}.items():
    ACTIVATIONS.add(_name, _cls)


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``gelu``...)."""
    return ACTIVATIONS.get(name, field="activation")()


class Standardize(nn.Module):
    """(x - mean) / std with statistics fitted on the train split, kept in the weights.

    Living inside the network means the served model takes raw values, exactly as the user has
    them, and training and serving cannot disagree about preprocessing.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], shape: Sequence[int]) -> None:
        super().__init__()
        std = [s if s > 0 else 1.0 for s in std]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Unstandardize(nn.Module):
    """y * std + mean: a network trained on standardised targets answers in their own units.

    The statistics are the train split's, kept in the weights, so any two models of the same
    target are compared on the same scale whatever split fitted them.
    """

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std) if std > 0 else 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean
