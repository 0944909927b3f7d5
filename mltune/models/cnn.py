"""The CNN family: conv blocks (conv, norm, activation, pool) and a small dense head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mltune.models.families import ACTIVATION, FAMILIES, FLAG, RATE, SIZE, WEIGHT_INIT, Family
from mltune.models.init import init_weights
from mltune.models.layers import Standardize, activation


class ConvNet(nn.Module):
    """Raw images (N, C, H, W) in, class logits out; standardisation is the first layer."""

    def __init__(
        self,
        *,
        in_channels: int,
        height: int,
        width: int,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        num_blocks: int = 2,
        channels: int = 32,
        kernel_size: int = 3,
        activation_name: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.0,
        hidden_size: int = 128,
    ) -> None:
        super().__init__()
        self.standardize = Standardize(mean, std, (1, in_channels, 1, 1))
        layers: list[nn.Module] = []
        c_in, size = in_channels, min(height, width)
        for block in range(num_blocks):
            c_out = channels * 2 ** min(block, 2)
            layers.append(nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(activation(activation_name))
            if size >= 4:  # pool while there is room; tiny inputs (8x8 digits) keep 2x2
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c_in * 4, hidden_size),
            activation(activation_name),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(self.standardize(x))))


def build_cnn(params: Mapping[str, Any], data: Mapping[str, Any]) -> nn.Module:
    """The ``cnn`` family: a ConvNet for images of ``data``, initialised by ``weight_init``."""
    model = ConvNet(
        in_channels=data["channels"], height=data["height"], width=data["width"],
        num_classes=data["outputs"], mean=data["mean"], std=data["std"],
        num_blocks=int(params["num_blocks"]),
        channels=int(params["channels"]),
        kernel_size=int(params["kernel_size"]),
        activation_name=str(params["activation"]),
        batch_norm=bool(params["batch_norm"]),
        dropout=float(params["dropout"]),
        hidden_size=int(params["hidden_size"]),
    )
    return init_weights(model, str(params["weight_init"]))


FAMILIES.add("cnn", Family(
    build_cnn,
    rules={"num_blocks": SIZE, "channels": SIZE, "kernel_size": SIZE, "hidden_size": SIZE,
           "activation": ACTIVATION, "batch_norm": FLAG, "dropout": RATE,
           "weight_init": WEIGHT_INIT},
    inputs=("outputs", "channels", "height", "width", "mean", "std"),
))
