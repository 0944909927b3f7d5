"""The recurrent encoder shared by sequence tasks (text, time series).

Variable-length batches are packed, so padding never reaches the recurrence; ``pool`` reduces
the per-step outputs to one vector per sequence (last step, mean or max over real steps).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mltune.core.catalog import Catalog

CELLS: Catalog[type[nn.RNNBase]] = Catalog("cell")
CELLS.add("lstm", nn.LSTM)
CELLS.add("gru", nn.GRU)
CELLS.add("rnn", nn.RNN)
POOLINGS = ("last", "mean", "max")


class RecurrentEncoder(nn.Module):
    """(N, T, F) inputs (+ optional lengths) -> (N, hidden * directions) sequence vectors."""

    def __init__(self, input_size: int, *, cell: str = "lstm", hidden_size: int = 64,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 pool: str = "last") -> None:
        super().__init__()
        if pool not in POOLINGS:
            from mltune.core.errors import SpecError

            raise SpecError(f"pool: unknown pooling {pool!r}; available: {', '.join(POOLINGS)}")
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
        if self.pool == "last":
            if self.rnn.bidirectional:
                half = self.rnn.hidden_size  # the backward direction ends at step 0
                return torch.cat([last[:, :half], outputs[:, 0, half:]], dim=1)
            return last
        if self.pool == "mean":
            if mask is None:
                return outputs.mean(dim=1)
            return (outputs * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        if mask is not None:
            outputs = outputs.masked_fill(~mask, float("-inf"))
        return outputs.max(dim=1).values
