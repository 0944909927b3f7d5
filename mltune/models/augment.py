"""Random image augmentation as a layer: on the device, per batch, only while training.

Being part of the network (first, before standardisation) keeps the training loop generic and
the served model unchanged: in ``eval()`` mode the layer is the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Augment(nn.Module):
    """Random shift (fraction of the side), rotation (degrees) and horizontal flip."""

    def __init__(self, shift: float = 0.0, rotation: float = 0.0, flip: bool = False) -> None:
        super().__init__()
        self.shift, self.rotation, self.flip = float(shift), float(rotation), bool(flip)

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.rotation > 0 or self.flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.active:
            return x
        n = x.shape[0]
        angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(self.rotation)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # affine_grid works in [-1, 1] coordinates: a shift of s of the side is 2 * s
        move = (torch.rand(n, 2, device=x.device) * 2 - 1) * 2 * self.shift
        mirror = torch.ones(n, device=x.device)
        if self.flip:
            mirror = torch.where(torch.rand(n, device=x.device) < 0.5, -1.0, 1.0)
        theta = torch.stack([
            torch.stack([cos * mirror, -sin, move[:, 0]], dim=1),
            torch.stack([sin * mirror, cos, move[:, 1]], dim=1),
        ], dim=1).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)
