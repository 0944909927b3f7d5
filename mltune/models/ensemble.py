"""Several trained networks answering as one: the weighted average of their outputs.

Classification averages class probabilities (each member's softmax) and answers their log, so
a softmax of its output is the averaged probabilities and every task decodes it as it decodes
one network's logits; regression and forecasting average the raw outputs. A forecaster reads
the last ``window`` steps it is given: the ensemble's window is its members' longest, each
member still reading its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class Averaged(nn.Module):
    """``members`` (trained networks of one task and data) weighted by ``weights`` (> 0,
    summing to 1); ``probabilities``: average softmax outputs (classification), else raw."""

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float],
                 probabilities: bool) -> None:
        super().__init__()
        if not members or len(members) != len(weights):
            raise ValueError("an ensemble needs one weight per member, and a member")
        self.members = nn.ModuleList(members)
        self.weights = [float(w) for w in weights]
        self.probabilities = probabilities
        windows = [getattr(m, "window", None) for m in members]
        if all(isinstance(w, int) for w in windows):
            self.window = max(windows)  # type: ignore[type-var]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return average([m(x) for m in self.members], self.weights, self.probabilities)


def average(outputs: Sequence[torch.Tensor], weights: Sequence[float],
            probabilities: bool) -> torch.Tensor:
    """Members' outputs (one tensor each, same shape) as the ensemble answers them: the log of
    the weighted average of their softmax (``probabilities``), else their weighted average.

    Networks that answer once per inner member (TabM: ``(N, k, outputs)``) are averaged member
    by member, which averages the same probabilities; when their ``k`` differ, each is first
    reduced to its own members' average (``(N, 1, outputs)``)."""
    if len({o.shape for o in outputs}) > 1 and all(o.dim() == 3 for o in outputs):
        outputs = [inner_average(o, probabilities, keepdim=True) for o in outputs]
    if probabilities:  # log of sum_i w_i softmax_i, computed in log space
        logs = torch.stack([torch.log_softmax(o.float(), dim=-1) + math.log(w)
                            for o, w in zip(outputs, weights, strict=True)])
        return torch.logsumexp(logs, dim=0)
    total = torch.zeros_like(outputs[0], dtype=torch.float32)
    for o, w in zip(outputs, weights, strict=True):
        total = total + w * o.float()
    return total


def inner_average(outputs: torch.Tensor, probabilities: bool,
                  keepdim: bool = False) -> torch.Tensor:
    """A network's answer of k inner members (TabM: ``(N, k, outputs)``) as one: for classes
    (``probabilities``) the log of the mean of their probabilities (its softmax is that mean,
    so it decodes as one network's logits), else the mean of their values; ``(N, outputs)``,
    or ``(N, 1, outputs)`` with ``keepdim``."""
    if probabilities:
        logs = torch.log_softmax(outputs.float(), dim=-1)
        return torch.logsumexp(logs, dim=1, keepdim=keepdim) - math.log(outputs.shape[1])
    return outputs.float().mean(dim=1, keepdim=keepdim)
