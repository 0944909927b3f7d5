"""A recurrent forecaster: the last ``window`` steps in, all ``horizon`` future steps out at once.

Inputs hold the *longest* window of the search (``max_window`` steps); the network reads only
its own last ``window`` of them. So one set of tensors serves every trial, whatever window it
samples, and every trial is scored on exactly the same validation targets.

The head predicts a correction to the last observed value (channel 0 is the target), so an
untrained network starts near the naive last-value forecast rather than near zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mltune.core.errors import SpecError
from mltune.models.families import FAMILIES, SIZE, Family
from mltune.models.init import init_weights
from mltune.models.layers import activation
from mltune.models.rnn import RECURRENT_RULES, RecurrentEncoder


class Forecaster(nn.Module):
    """(N, T >= window, F) scaled inputs -> (N, horizon) scaled forecasts of channel 0."""

    def __init__(self, input_size: int, *, window: int, max_window: int, horizon: int,
                 cell: str = "lstm", hidden_size: int = 64, num_layers: int = 1,
                 dropout: float = 0.0, activation_name: str = "relu") -> None:
        super().__init__()
        if not 1 <= window <= max_window:
            raise SpecError(
                f"window: {window} is not allowed; expected a whole number from 1 to "
                f"data.max_window={max_window} (raise data.max_window to use longer windows)")
        self.window = window
        self.horizon = horizon
        self.encoder = RecurrentEncoder(input_size, cell=cell, hidden_size=hidden_size,
                                        num_layers=num_layers, dropout=dropout, pool="last")
        self.head = nn.Sequential(
            nn.Linear(self.encoder.output_size, hidden_size),
            activation(activation_name),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, horizon),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        recent = x[:, -self.window:]
        return recent[:, -1, :1] + self.head(self.encoder(recent))


def build_forecaster(params: Mapping[str, Any], data: Mapping[str, Any]) -> nn.Module:
    """The ``forecaster`` family: windows of ``data["features"]`` series (``max_window`` steps)
    in, the next ``data["horizon"]`` values of the first out."""
    model = Forecaster(
        data["features"],
        window=int(round(params["window"])),
        max_window=int(data["max_window"]),
        horizon=int(data["horizon"]),
        cell=str(params["cell"]),
        hidden_size=int(params["hidden_size"]),
        num_layers=int(params["num_layers"]),
        dropout=float(params["dropout"]),
        activation_name=str(params["activation"]),
    )
    return init_weights(model, str(params["weight_init"]))


FAMILIES.add("forecaster", Family(
    build_forecaster,
    rules={**RECURRENT_RULES, "window": SIZE},
    inputs=("features", "max_window", "horizon"),
))
