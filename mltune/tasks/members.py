"""Networks that answer once per member of an ensemble inside them (``(N, k, outputs)``: the
``tabm`` family): their loss, their averaged answer and the spread of their members' scores.

A family whose networks answer this way says so (``Family.members``); a task that trains one
wraps its loss in ``MembersLoss`` and scores, serves and compares ``averaged`` outputs, so the
training loop, the ensembles, the folds and the promotion gate treat such a network as any
other. An ordinary ``(N, outputs)`` answer passes through each helper unchanged.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from torch import nn

from mltune.models.ensemble import inner_average

MEMBERS = 1  # the members' dimension of a (N, k, outputs) answer


def has_members(outputs: torch.Tensor) -> bool:
    return outputs.dim() == 3


def averaged(outputs: torch.Tensor, probabilities: bool) -> torch.Tensor:
    """The ensemble's answer, ``(N, outputs)`` (``inner_average``); ordinary outputs are
    returned as they are."""
    return inner_average(outputs, probabilities) if has_members(outputs) else outputs


class MembersLoss(nn.Module):
    """``loss`` for a network of members.

    Outputs being trained on (they carry a gradient) are scored as the mean of the members'
    losses: what trains each member as a network of its own. Each member is scored against
    the batch's targets, or, when each member saw its own batch (``(N, k, ...)`` targets, one
    dimension more than one member's), against its own. Outputs only measured (validation, a
    holdout, an ensemble's selection) are scored as what the network answers, the members'
    average, so ``val_loss`` judges the same prediction as every other ``val_`` metric and the
    served model. ``probabilities``: the outputs are class logits (the targets class indices,
    a dimension fewer than the outputs), else values (the targets as many dimensions).
    """

    def __init__(self, loss: nn.Module, probabilities: bool) -> None:
        super().__init__()
        self.loss, self.probabilities = loss, probabilities

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not has_members(outputs):
            return self.loss(outputs, targets)
        if not outputs.requires_grad:
            return self.loss(averaged(outputs, self.probabilities), targets)
        if targets.dim() == outputs.dim() - (1 if self.probabilities else 0):  # their own
            return self.loss(outputs.flatten(0, 1), targets.flatten(0, 1))
        k = outputs.shape[MEMBERS]
        return self.loss(outputs.flatten(0, 1), targets.repeat_interleave(k, dim=0))


def members_spread(outputs: torch.Tensor, targets: torch.Tensor,
                   score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]
                   ) -> dict[str, float]:
    """``<metric>_members_std`` for each metric ``score`` gives: its population standard
    deviation over the members, each scored alone. How far apart the members are: near 0,
    they have collapsed into one network and the ensemble adds nothing."""
    each = [score(outputs[:, i], targets) for i in range(outputs.shape[MEMBERS])]
    return {f"{name}_members_std": statistics.pstdev([m[name] for m in each])
            for name in each[0]}
