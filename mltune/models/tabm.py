"""The TabM family (Gorishniy et al., ICLR 2025): an ensemble of k MLPs inside one network.

Every hidden layer is a BatchEnsemble linear layer: one weight matrix shared by the k members,
and per member an input scaling ``r``, an output scaling ``s`` and a bias,
``((x * r) @ W.T) * s + bias``; each block is that layer, an activation and dropout. Each
member has its own head. The initialisation is the paper's: ``W`` and the biases uniform in
±1/sqrt(fan-in), the k biases of a layer one draw; the first layer's ``r`` random signs (the
members see the input differently from the first step on, which is what makes them differ),
every other ``r`` and every ``s`` ones.

The network answers ``(N, k, outputs)``, in training and in evaluation: each member's own
answer. What to make of k answers is the task's (``mltune.tasks.members``): the training loss
is the mean of the members' losses; scores, early stopping, pruning and the served model use
their average (the mean of the members' probabilities for classes, of their values for a
regression). In training each member sees its own batch order (the paper's setting): the
network declares ``batch_orders = k``, the training loop then draws k permutations of the rows
an epoch and feeds ``(N, k, in)``, member i's rows from order i. ``shared_batches: true``
(``batch_orders = 1``) feeds one ``(N, in)`` batch to every member instead (the ``tabm``
package's ``share_training_batches=True``): faster, slightly worse. In evaluation the input is
``(N, in)``, every member answering for every row.

Written here rather than imported from the ``tabm`` package (which packs as well: it is a plain
module under ``torch.func``): a registered model rebuilds its network from mltune's own code,
which travels inside it, so it serves with mltune's pinned requirements alone and stays
loadable whatever a later ``tabm`` release renames. ``tests/unit/test_tabm_network.py`` checks this
module against ``tabm.TabM`` (same weights, same outputs) where that package is installed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mltune.models.families import ACTIVATION, FAMILIES, FLAG, RATE, SIZE, Family
from mltune.models.layers import activation

K = 32  # members: the paper's default, which its tuning never changed


def _uniform(tensor: torch.Tensor, fan_in: int) -> None:
    bound = 1 / math.sqrt(fan_in)
    nn.init.uniform_(tensor, -bound, bound)


class BatchEnsembleLinear(nn.Module):
    """k linear layers sharing one weight matrix: (N, k, in) -> (N, k, out).

    ``random_signs``: the input scaling ``r`` starts as random ±1 (TabM's first layer), else
    ones, as the output scaling ``s`` always does.
    """

    def __init__(self, in_features: int, out_features: int, k: int, *,
                 random_signs: bool) -> None:
        super().__init__()
        self.in_features, self.out_features, self.k = in_features, out_features, k
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.r = nn.Parameter(torch.ones(k, in_features))
        self.s = nn.Parameter(torch.ones(k, out_features))
        self.bias = nn.Parameter(torch.empty(k, out_features))
        _uniform(self.weight.data, in_features)
        shared = torch.empty(out_features)
        _uniform(shared, in_features)
        self.bias.data.copy_(shared.expand(k, -1))  # one draw: a shared bias, k deltas of 0
        if random_signs:
            self.r.data.bernoulli_(0.5).mul_(2).sub_(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, (x * self.r) @ self.weight.T, self.s)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, k={self.k}"


class MemberHeads(nn.Module):
    """k independent linear heads: (N, k, in) -> (N, k, out), member i through head i."""

    def __init__(self, in_features: int, out_features: int, k: int) -> None:
        super().__init__()
        self.in_features, self.out_features, self.k = in_features, out_features, k
        self.weight = nn.Parameter(torch.empty(k, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(k, out_features))
        _uniform(self.weight.data, in_features)
        _uniform(self.bias.data, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.transpose(0, 1) @ self.weight).transpose(0, 1) + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, k={self.k}"


class TabM(nn.Module):
    """(N, in_features) floats in (every member sees every row) or (N, k, in_features) (member
    i sees row [:, i]: its own batch), (N, k, out_features) out: each member's logits or
    values. ``batch_orders``: how many batch orders training draws for it (k, or 1 under
    ``shared_batches``).

    Dropout layers are there even at rate 0, so that members of one fused pack (whose
    dropout rates may differ, 0 included) share one structure.
    """

    def __init__(self, in_features: int, out_features: int, *, k: int = K, n_blocks: int = 3,
                 d_block: int = 512, dropout: float = 0.1,
                 activation_name: str = "relu", shared_batches: bool = False) -> None:
        super().__init__()
        self.k = k
        self.batch_orders = 1 if shared_batches else k
        layers: list[nn.Module] = []
        width = in_features
        for i in range(n_blocks):
            layers += [BatchEnsembleLinear(width, d_block, k, random_signs=i == 0),
                       activation(activation_name), nn.Dropout(dropout)]
            width = d_block
        self.body = nn.Sequential(*layers)
        self.head = MemberHeads(width, out_features, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        members = x.unsqueeze(-2).expand(-1, self.k, -1) if x.dim() == 2 else x
        return self.head(self.body(members))


def build_tabm(params: Mapping[str, Any], data: Mapping[str, Any]) -> nn.Module:
    """The ``tabm`` family: ``data["features"]`` in, ``k`` answers of ``data["outputs"]``
    out."""
    # shared_batches: only training reads it; a model logged before it existed builds without
    return TabM(data["features"], data["outputs"], k=int(params["k"]),
                n_blocks=int(params["n_blocks"]), d_block=int(params["d_block"]),
                dropout=float(params["dropout"]), activation_name=str(params["activation"]),
                shared_batches=bool(params.get("shared_batches", False)))


FAMILIES.add("tabm", Family(
    build_tabm,
    rules={"k": SIZE, "n_blocks": SIZE, "d_block": SIZE, "activation": ACTIVATION,
           "dropout": RATE, "shared_batches": FLAG},
    inputs=("features", "outputs"),
    members=True,
))
