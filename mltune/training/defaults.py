"""The training hyperparameters' defaults, defined once: a trial whose space leaves them out
trains the same alone, packed, or measured for a pack's size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BATCH_SIZE = 64
LEARNING_RATE = 1e-3


def batch_size(params: Mapping[str, Any]) -> int:
    return int(params.get("batch_size", BATCH_SIZE))


def learning_rate(params: Mapping[str, Any]) -> float:
    return float(params.get("learning_rate", LEARNING_RATE))


def optimizer_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """``optimizer.momentum`` -> ``momentum``: the chosen optimizer's own options."""
    return {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("optimizer.")}
