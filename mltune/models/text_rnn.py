"""The text RNN family: token embedding, recurrent encoder, dense head.

The network takes the one LongTensor the training loop hands it: lengths in column 0, token ids
after (see ``mltune.tasks.vocab``). Padding never reaches the recurrence: the shared
``RecurrentEncoder`` packs the sequences by their real lengths. Word dropout replaces random
tokens by the out-of-vocabulary id while training, so that id's embedding is learned: without
it, words first seen at serving time feed an untrained vector into the recurrence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mltune.models.families import FAMILIES, FLAG, RATE, SIZE, Family
from mltune.models.init import init_weights
from mltune.models.layers import activation
from mltune.models.rnn import POOLINGS, RECURRENT_RULES, RecurrentEncoder
from mltune.spec.rules import OneOf

PAD, UNK = 0, 1  # token ids with a fixed meaning: padding, any out-of-vocabulary token


class TextRNN(nn.Module):
    """(N, 1 + T) packed token ids -> (N, num_classes) logits."""

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        embedding_dim: int = 64,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pool: str = "max",
        activation_name: str = "relu",
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.word_dropout = word_dropout
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        with torch.no_grad():
            self.embedding.weight[UNK].zero_()  # unknown words start neutral
        self.embedding_dropout = nn.Dropout(dropout)
        self.encoder = RecurrentEncoder(embedding_dim, cell=cell, hidden_size=hidden_size,
                                        num_layers=num_layers, bidirectional=bidirectional,
                                        dropout=dropout, pool=pool)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.encoder.output_size, hidden_size),
            activation(activation_name),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        # Packing needs the lengths on the CPU anyway; read them once and trim the batch to
        # its longest text, so short batches do not embed columns of padding.
        lengths = packed[:, 0].cpu()
        width = max(int(lengths.max()), 1) if len(lengths) else 1
        tokens = packed[:, 1:1 + width]
        if self.training and self.word_dropout > 0:
            dropped = torch.rand(tokens.shape, device=tokens.device) < self.word_dropout
            tokens = tokens.masked_fill(dropped & (tokens != PAD), UNK)
        return self.head(self.encoder(self.embedding_dropout(self.embedding(tokens)), lengths))


def init_text_rnn(model: TextRNN, scheme: str) -> TextRNN:
    """Initialise encoder and head with ``scheme``; embeddings keep N(0, 1), padding row 0.

    ``orthogonal`` makes each gate's recurrent matrix (``weight_hh``: one H x H block per
    gate) orthogonal, the form that keeps gradients through time from exploding or vanishing
    at the start; the shared scheme alone would only make the stacked gates jointly so.
    """
    init_weights(model.encoder, scheme)
    init_weights(model.head, scheme)
    if scheme == "orthogonal":
        for name, weight in model.encoder.rnn.named_parameters():
            if name.startswith("weight_hh"):
                for block in weight.data.split(weight.shape[1]):
                    nn.init.orthogonal_(block)
    return model


def build_text_rnn(params: Mapping[str, Any], data: Mapping[str, Any]) -> nn.Module:
    """The ``text_rnn`` family: token ids of a ``data["vocab_size"]`` vocabulary in,
    ``data["outputs"]`` logits out."""
    model = TextRNN(
        vocab_size=data["vocab_size"],
        num_classes=data["outputs"],
        embedding_dim=int(params["embedding_dim"]),
        cell=str(params["cell"]),
        hidden_size=int(params["hidden_size"]),
        num_layers=int(params["num_layers"]),
        bidirectional=bool(params["bidirectional"]),
        dropout=float(params["dropout"]),
        pool=str(params["pool"]),
        activation_name=str(params["activation"]),
        word_dropout=float(params["word_dropout"]),
    )
    return init_text_rnn(model, str(params["weight_init"]))


FAMILIES.add("text_rnn", Family(
    build_text_rnn,
    rules={**RECURRENT_RULES, "embedding_dim": SIZE, "bidirectional": FLAG,
           "pool": OneOf.catalog(POOLINGS), "word_dropout": RATE},
    inputs=("vocab_size", "outputs"),
))
