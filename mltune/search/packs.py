"""How many trials a search trains at once, and which of its hyperparameters may differ inside
a pack.

A pack's members share a shape key: every hyperparameter except the ``FREE`` ones, which live
in tensors the pack stacks (initial weights, dropout rates) or in per-member values of the
loop (learning rate, weight decay, optimizer options such as momentum, the loss). The size is
``pack: N`` when the spec fixes it; under ``pack: auto`` it is measured: on a GPU, as many
members as fit in half of the free memory (one member's dry step on a batch), on the CPU the
size ``benchmarks/packing.py`` showed fastest; at most 16, and at most a quarter of the budget
so that TPE learns between packs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from mltune.core.errors import SpecError
from mltune.data.splits import TaskData
from mltune.models.network import one_line
from mltune.spec.model import SearchSpec
from mltune.spec.space import first_point
from mltune.tasks.base import Task
from mltune.training.fit import batch_layout
from mltune.training.packing import Pack, can_pack

log = logging.getLogger(__name__)

FREE = frozenset({"learning_rate", "weight_decay", "loss", "weight_init", "dropout",
                  "class_weight"})
MAX_PACK = 16
CPU_PACK = 8  # benchmarks/packing.py, 2 cores: 2.3-3.6x the trials/hour of K=1 (MLP, CNN)
MEMORY_SHARE = 0.5  # of the GPU memory free when the pack is sized


def is_free(key: str) -> bool:
    """Whether a (top-level) hyperparameter may differ between the members of a pack."""
    return key in FREE


def structure(network: nn.Module) -> tuple[Any, ...]:
    """What must match for networks to share a pack: every layer's kind and settings, every
    weight's shape (a network whose dropout is 0 may lack the dropout layer altogether)."""
    layers = tuple((name, type(m).__name__, m.extra_repr()) for name, m in
                   network.named_modules() if not isinstance(m, nn.Dropout))
    return layers, tuple((k, tuple(v.shape)) for k, v in network.state_dict().items())


def unpackable(task: Task, data: TaskData, params: Mapping[str, Any]) -> str | None:
    """Why ``task``'s network cannot be packed (None when it can). A user's network, which
    may do anything ``vmap`` has no rule for, must also take a fused step: two members, two
    training samples, forward and backward."""
    network = task.build_model(params, data.meta)
    why = can_pack(network)
    if why is not None or not task.network_in_use.user:
        return why
    try:
        pack = Pack([network, task.build_model(params, data.meta)])
        x = data.x_train[:2]
        pack.to(x.device)(batch_layout(x)).float().sum().backward()
    except Exception as exc:
        return f"a fused step of two members failed: {one_line(exc)}"
    return None


def pack_limit(spec: SearchSpec, task: Task, data: TaskData) -> tuple[int, str | None]:
    """The most members a pack of this search may have, and why it is 1 when it is.

    ``pack: N`` that cannot be honoured is a SpecError naming why; under ``auto`` the search
    runs unpacked and says why once.
    """
    requested = spec.pack
    if requested == 1:
        return 1, None
    reason, tell = None, log.info
    if spec.backend != "local":
        reason = (f"the {spec.backend} backend trains one trial per worker (a pack per worker "
                  "is not built yet)")
    elif spec.compile:
        reason = "compile: true compiles each trial's own network"
    else:
        # a point of the space, not the task's defaults: a space may rule those out
        why = unpackable(task, data, {**task.default_params(), **first_point(spec.space)})
        if why is not None:
            network = task.network_in_use
            if network.user:  # the user wrote it: said as a warning, shown by default
                reason, tell = f"your network ({network.name}) cannot be packed: {why}", log.warning
            else:
                reason = f"the {task.name} task's network cannot be packed: {why}"
    if reason is not None:
        if requested != "auto":
            raise SpecError(f"{requested} is not possible: {reason}; use pack: 1 or auto",
                            field="pack")
        tell("trials run one at a time: %s", reason)
        return 1, reason
    if requested != "auto":
        return int(requested), None
    return max(1, min(MAX_PACK, spec.max_evals // 4)), None


def memory_size(task: Task, data: TaskData, params: Mapping[str, Any],
                device: torch.device, limit: int) -> int:
    """Members of this shape that fit on ``device``: one member's dry step on a batch, then
    as many as half the free memory holds (``limit`` at most; the CPU size on a CPU)."""
    if device.type != "cuda":
        return min(limit, CPU_PACK)
    network = task.build_model(params, data.meta)
    batch = int(params.get("batch_size", 64))
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    pack = Pack([network]).to(device)
    x = data.x_train[:batch]
    outputs = pack(batch_layout(x if isinstance(x, torch.Tensor) else x.to(device)))
    outputs.float().sum().backward()
    peak = torch.cuda.max_memory_allocated(device) - before
    del pack, outputs
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return members_that_fit(free, peak, limit)


def members_that_fit(free_bytes: int, member_bytes: int, limit: int) -> int:
    """``limit`` at most, at least 1, else what ``MEMORY_SHARE`` of the free memory holds."""
    if member_bytes <= 0:
        return limit
    return max(1, min(limit, int(MEMORY_SHARE * free_bytes // member_bytes)))


Sizer = Callable[[Mapping[str, Any]], int]
