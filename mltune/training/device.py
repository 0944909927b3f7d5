"""Where a trial computes, and how it is made repeatable: the devices, the seeds.

A search may train on several devices at once (one pack loop per device, in threads of one
process), so seeding is scoped: ``seeded`` holds one lock while the global generators are
seeded and read (a network's initial weights), and seeds the CPU's generator and the trial's
own device's only, never another GPU's, whose loop may be drawing dropout masks from it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from mltune.core.errors import SpecError

RNG_LOCK = threading.RLock()  # held while the process-wide generators are seeded and read


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an unavailable device is a SpecError. One
    device: the first of ``resolve_devices`` (what runs a single trial, a refit)."""
    return resolve_devices(name)[0]


def resolve_devices(name: str) -> list[torch.device]:
    """Every device a search trains on, one pack loop each: ``auto`` -> every visible GPU,
    else the CPU; ``cuda`` -> every visible GPU; ``cpu``, ``cuda:N``, ``mps`` -> that one;
    ``cuda:0,cuda:2`` (a list in YAML) -> those, in order (``cpu,cpu``: two loops on the CPU).
    An unavailable device is a SpecError."""
    names = [part.strip() for part in name.split(",")]
    if len(names) == 1 and names[0] in ("auto", "cuda"):
        if names[0] == "auto" and not torch.cuda.is_available():
            return [torch.device("cpu")]
        _check_cuda(names[0])
        count = torch.cuda.device_count()
        # one GPU keeps the name it always had (``cuda``: the tag on its trials)
        return [torch.device("cuda")] if count == 1 else [torch.device("cuda", i)
                                                          for i in range(count)]
    devices = [torch.device(part) for part in names]
    for part, device in zip(names, devices, strict=True):
        if device.type == "cuda":
            _check_cuda(part)
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise SpecError(f"device: {part!r} does not exist; this machine has "
                                f"{torch.cuda.device_count()} CUDA device(s)")
    return devices


def _check_cuda(name: str) -> None:
    if not torch.cuda.is_available():
        raise SpecError(f"device: {name!r} asked for, but this machine has no CUDA device; "
                        "use device: auto or cpu")


def device_labels(devices: list[torch.device]) -> list[str]:
    """What each pack loop's trials are tagged with (``mltune.device``): the device, and
    ``#k`` after it when the search runs several loops on one device (``cpu#1``, ``cpu#2``)."""
    return numbered([str(d) for d in devices])


def numbered(names: list[str]) -> list[str]:
    """``names`` with ``#k`` after those that occur more than once (``cpu#1``, ``cpu#2``)."""
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(f"{name}#{seen[name]}" if names.count(name) > 1 else name)
    return labels


def seed_everything(seed: int, device: torch.device | None = None) -> None:
    """Python's, NumPy's and the CPU's generators, and ``device``'s when it is a GPU (every
    GPU's without one); one thread at a time (``RNG_LOCK``)."""
    with RNG_LOCK:
        _seed(seed, device)


def _seed(seed: int, device: torch.device | None) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if device is None:
        torch.manual_seed(seed)
        return
    if device.type not in ("cpu", "cuda"):  # mps...: every generator, as torch seeds them
        torch.manual_seed(seed)
        return
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):  # this GPU's generator alone
            torch.cuda.manual_seed(seed)


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Within: the generators seeded (``seed_everything``), and no other thread's ``seeded``
    block between the seeding and what the block draws (a network built: its initial weights
    are the seed's, whichever pack loop built it and whatever the others were doing).

    Two loops on one CPU still share its generator for their dropout masks, drawn while they
    train: a ``cpu,cpu`` search's dropout is not repeatable; every GPU has a generator of
    its own."""
    with RNG_LOCK:
        seed_everything(seed, device)
        yield
