"""The recurrent encoder shared by sequence tasks (text, time series).

Variable-length batches are packed, so padding never reaches the recurrence; ``pool`` reduces
the per-step outputs to one vector per sequence (last step, mean or max over real steps).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mltune.core.catalog import Catalog
from mltune.models.families import ACTIVATION, RATE, SIZE, WEIGHT_INIT
from mltune.spec.rules import OneOf

CELLS: Catalog[type[nn.RNNBase]] = Catalog("cell")
CELLS.add("lstm", nn.LSTM)
CELLS.add("gru", nn.GRU)
CELLS.add("rnn", nn.RNN)

# (per-step outputs (N, T, H), mask of real steps (N, T, 1) or None, last real step's
# output (N, H), the recurrence) -> one vector per sequence
Pooling = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor, nn.RNNBase], torch.Tensor]
POOLINGS: Catalog[Pooling] = Catalog("pooling")


@POOLINGS.register("last")
def _last(outputs: torch.Tensor, mask: torch.Tensor | None, last: torch.Tensor,
          rnn: nn.RNNBase) -> torch.Tensor:
    """The output at each sequence's last step (a bidirectional's backward half: its first)."""
    if rnn.bidirectional:
        half = rnn.hidden_size  # the backward direction ends at step 0
        return torch.cat([last[:, :half], outputs[:, 0, half:]], dim=1)
    return last


@POOLINGS.register("mean")
def _mean(outputs: torch.Tensor, mask: torch.Tensor | None, last: torch.Tensor,
          rnn: nn.RNNBase) -> torch.Tensor:
    """The mean of the outputs over each sequence's steps (padding left out)."""
    if mask is None:
        return outputs.mean(dim=1)
    return (outputs * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


@POOLINGS.register("max")
def _max(outputs: torch.Tensor, mask: torch.Tensor | None, last: torch.Tensor,
         rnn: nn.RNNBase) -> torch.Tensor:
    """The largest output over each sequence's steps, feature by feature (padding left out)."""
    if mask is not None:
        outputs = outputs.masked_fill(~mask, float("-inf"))
    return outputs.max(dim=1).values

# The hyperparameters of every recurrent family (text_rnn, forecaster) and what they allow.
RECURRENT_RULES = {"cell": OneOf.catalog(CELLS), "hidden_size": SIZE, "num_layers": SIZE,
                   "dropout": RATE, "activation": ACTIVATION, "weight_init": WEIGHT_INIT}


class RecurrentEncoder(nn.Module):
    """(N, T, F) inputs (+ optional lengths) -> (N, hidden * directions) sequence vectors."""

    def __init__(self, input_size: int, *, cell: str = "lstm", hidden_size: int = 64,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 pool: str = "last") -> None:
        super().__init__()
        self.pooling = POOLINGS.get(pool, field="pool")
        self.rnn = CELLS.get(cell, field="cell")(
            input_size, hidden_size, num_layers=num_layers, batch_first=True,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.pool = pool
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            outputs, _ = self.rnn(x)
            mask = None
            last = outputs[:, -1]
        else:
            lengths = lengths.clamp(min=1)
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            packed_out, _ = self.rnn(packed)
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True,
                                             total_length=x.shape[1])
            steps = torch.arange(x.shape[1], device=x.device)
            mask = (steps[None, :] < lengths[:, None].to(x.device)).unsqueeze(-1)
            last = outputs[torch.arange(len(x), device=x.device), lengths.to(x.device) - 1]
        return self.pooling(outputs, mask, last, self.rnn)
