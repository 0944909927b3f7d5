"""Where a trial computes, and how it is made repeatable: the device, the seeds."""

from __future__ import annotations

import random

import numpy as np
import torch

from mltune.core.errors import SpecError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an unavailable device is a SpecError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpecError(f"device: {name!r} asked for, but this machine has no CUDA device; "
                        "use device: auto or cpu")
    if device.type == "cuda" and device.index is not None \
            and device.index >= torch.cuda.device_count():
        raise SpecError(f"device: {name!r} does not exist; this machine has "
                        f"{torch.cuda.device_count()} CUDA device(s)")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
