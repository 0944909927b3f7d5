"""Pack policy: which hyperparameters may differ inside a pack (the shape key), how many
trials a pack may have at most, and how members are grouped (``structure``).

A pack's members share a shape key: every hyperparameter except the ``FREE`` ones, which live
in tensors the pack stacks (initial weights, dropout rates) or in per-member values of the
loop (learning rate, weight decay, optimizer options such as momentum, the loss). A pack has
at most ``MAX_PACK`` members and a quarter of the budget's trials, so that the sampler learns
between packs; under ``pack: auto`` its size is measured (``sizes``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from mltune.core.errors import SpecError
from mltune.data.layout import batch_layout
from mltune.data.splits import TaskData
from mltune.models.user_code import one_line
from mltune.spec.model import SearchSpec
from mltune.spec.space import first_point
from mltune.tasks.base import Task
from mltune.training.packing import Pack, can_pack

log = logging.getLogger(__name__)

FREE = frozenset({"learning_rate", "weight_decay", "loss", "weight_init", "dropout",
                  "class_weight"})
MAX_PACK = 16

Shape = tuple[tuple[str, str], ...]


def is_free(key: str, task: Task) -> bool:
    """Whether hyperparameter ``key`` (a decoded param, dotted for a choice's option) may
    differ between the members of a pack. For a user's network only the free ones the task
    reads (training ones) may: its own keys, even one called ``dropout``, shape its layers."""
    top = key.split(".")[0]
    if top not in FREE:
        return False
    return not task.network_in_use.user or top in task.param_rules()


def shape(point: Mapping[str, Any], free: Callable[[str], bool]) -> dict[str, Any]:
    """What the members of one pack share, as the values a sampler is asked to keep fixed:
    every top-level param that is not ``free`` (a choice's own options,
    ``optimizer.momentum``, are per-member values of the loop)."""
    return {k: v for k, v in point.items() if "." not in k and not free(k)}


def shape_key(params: Mapping[str, Any], task: Task) -> Shape:
    """``shape`` of ``params`` for ``task`` as a hashable key."""
    fixed = shape(params, lambda key: is_free(key, task))
    return tuple(sorted((k, repr(v)) for k, v in fixed.items()))


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
    if spec.compile:
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
    return max(1, min(MAX_PACK, spec.planned_trials // 4)), None
