"""A small residual CNN for the image task: your own network, tuned by mltune.

mltune calls ``build(params, data)`` once per trial. ``params`` holds every hyperparameter of
the trial, decoded (``width``, ``depth`` and the training ones: ``learning_rate``...); ``data``
describes the image task's data (``mltune.ImageData``: channels, height, width, classes, and the
train split's per-channel mean and std). The network takes float pixels (N, C, H, W) on the
data's own scale and returns (N, classes) logits.

Tuned on the bundled 8x8 digits by ``examples/custom.yaml``:

    mltune tune --config examples/custom.yaml

This file travels with every model the search logs, so the served model needs neither it nor
this repository.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """conv -> norm -> relu -> conv -> norm, added to its input, then relu."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class SmallResNet(nn.Module):
    def __init__(self, channels: int, classes: int, width: int, depth: int,
                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        # the statistics are buffers: they are saved with the weights and served with them
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).clamp(min=1e-6).view(1, -1, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.Sequential(*[Block(width) for _ in range(depth)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem((x - self.mean) / self.std)))


def build(params, data) -> nn.Module:
    """The network for one trial: its own ``width`` and ``depth``, the data's shape."""
    return SmallResNet(data.channels, data.classes, width=int(params["width"]),
                       depth=int(params["depth"]), mean=data.mean, std=data.std)


# The hyperparameters this network reads, beside mltune's training ones: a key of the spec's
# space that is neither is refused as a typo ("space.widht: ... did you mean width?"). Without
# this line every key of the space is passed to the network unchecked.
build.hyperparameters = ("width", "depth")
