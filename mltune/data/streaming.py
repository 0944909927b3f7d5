"""Data that does not fit in memory: a split read from disk batch by batch.

A ``Streamed`` split stands where a tensor of inputs would (``TaskData.x_train`` ...). The
training loop asks it for batches in its shuffled order: a DataLoader decodes them in worker
processes, into pinned memory when the device is a GPU, and each batch is copied to the device
without blocking. Slicing it (``x[:2]``: input examples) decodes in this process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch.utils.data import DataLoader, Dataset


def default_workers() -> int:
    """Decoding processes per split: the cores there are, up to 8, at least 1."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True)
class Streamed:
    """A split of ``dataset`` (each item one input tensor), read in batches on ``device``."""

    dataset: Dataset[torch.Tensor]
    device: torch.device = torch.device("cpu")
    workers: int = 0  # 0: decode in this process (tiny data, tests)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def to(self, device: torch.device | str) -> Streamed:
        return replace(self, device=torch.device(device))

    def cpu(self) -> Streamed:
        return self.to("cpu")

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def dim(self) -> int:
        return self.dataset[0].dim() + 1

    def __getitem__(self, index: slice) -> torch.Tensor:
        """A few items, decoded here (input examples, a look at the data)."""
        items = range(len(self))[index]
        return torch.stack([self.dataset[i] for i in items]).to(self.device)

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
        """Batches of the items in ``order``, decoded by worker processes, on the device."""
        loader = DataLoader(self.dataset, batch_size=batch_size,
                            sampler=order.cpu().tolist(), num_workers=self.workers,
                            pin_memory=self.is_cuda, persistent_workers=False,
                            prefetch_factor=4 if self.workers else None)
        for batch in loader:
            yield batch.to(self.device, non_blocking=True)


def batches(x: torch.Tensor | Streamed, order: torch.Tensor,
            batch_size: int) -> Iterator[torch.Tensor]:
    """The inputs of ``order``'s items, ``batch_size`` at a time: slices of a tensor already
    on the device, or batches read by a ``Streamed`` split."""
    if isinstance(x, Streamed):
        if order.dim() > 1:
            raise ValueError("a streamed split is read in one batch order at a time")
        yield from x.batches(order, batch_size)
        return
    for start in range(0, len(order), batch_size):
        yield x[order[start:start + batch_size]]
