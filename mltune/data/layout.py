"""How a batch is laid out for the network, wherever a batch is made (training, scoring, a
pack's size probe, a user's network's dry run)."""

from __future__ import annotations

import torch


def batch_layout(x: torch.Tensor) -> torch.Tensor:
    """Image batches in channels_last on CUDA (what its convolution kernels are fastest on);
    streamed pixels (uint8, a quarter of the bytes to copy) become floats on the device."""
    if x.dtype == torch.uint8:  # pixels; token ids (int64) stay as they are
        x = x.float()
    if x.is_cuda and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
