"""The tabular task's default space and hyperparameters, one pair per network family that suits
it (``model: mlp``, the default, or ``model: tabm``), written once here.

TabM's are its paper's (Gorishniy et al., ICLR 2025: the tuning space its authors used, and
the defaults of their ``tabm`` package): ``n_blocks`` 1-5, ``d_block`` 64-1024 by 16, learning
rate log 1e-4-5e-3, weight decay 0 or log 1e-4-1e-1, dropout 0 or 0-0.5; 3 blocks of 512, AdamW
at 2e-3 with weight decay 3e-4, dropout 0.1, k = 32 members (not tuned: the paper never did),
each with its own batch order (``shared_batches: false``, the paper's setting).
Its batch size is 256 (the paper's on all but its largest tables), not tuned either: it is part
of a pack's shape, and one value lets any two TabM trials of one size share a pack.
"""

from __future__ import annotations

from typing import Any


def mlp_space(losses: list[str]) -> dict[str, Any]:
    return {
        "num_layers": {"quniform": [1, 4, 1]},
        "hidden_size": {"choice": [32, 64, 128, 256]},
        "activation": {"choice": ["relu", "gelu", "silu", "tanh", "leaky_relu"]},
        "dropout": {"uniform": [0.0, 0.5]},
        "norm": {"choice": ["none", "batch", "layer"]},
        "weight_init": {"choice": ["default", "xavier_uniform", "kaiming_uniform",
                                   "orthogonal"]},
        "learning_rate": {"loguniform": [1.0e-4, 3.0e-2]},
        "weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
        "optimizer": {"choice": [{"name": "adam"}, {"name": "adamw"},
                                 {"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
        "batch_size": {"choice": [32, 64, 128, 256]},
        "loss": {"choice": list(losses)},
    }


def mlp_params(losses: list[str]) -> dict[str, Any]:
    return {"num_layers": 2, "hidden_size": 64, "activation": "relu", "dropout": 0.1,
            "norm": "batch", "weight_init": "default", "learning_rate": 3e-3,
            "weight_decay": 1e-4, "optimizer": "adam", "batch_size": 64, "loss": losses[0]}


def tabm_space(losses: list[str]) -> dict[str, Any]:
    """The fixed values are written here too: a trial trains with the values of its point
    (the training loop reads ``optimizer`` and ``batch_size`` from it, not from the task's
    defaults), and its run shows them."""
    return {
        "k": 32,
        "shared_batches": False,
        "n_blocks": {"quniform": [1, 5, 1]},
        "d_block": {"quniform": [64, 1024, 16]},
        "activation": "relu",
        "dropout": {"choice": [0.0, {"uniform": [0.0, 0.5]}]},
        "learning_rate": {"loguniform": [1.0e-4, 5.0e-3]},
        "weight_decay": {"choice": [0.0, {"loguniform": [1.0e-4, 1.0e-1]}]},
        "optimizer": "adamw",
        "batch_size": 256,
        "loss": {"choice": list(losses)},
    }


def tabm_params(losses: list[str]) -> dict[str, Any]:
    return {"k": 32, "shared_batches": False, "n_blocks": 3, "d_block": 512,
            "activation": "relu", "dropout": 0.1, "learning_rate": 2e-3, "weight_decay": 3e-4,
            "optimizer": "adamw", "batch_size": 256, "loss": losses[0]}


SPACES = {"mlp": (mlp_space, mlp_params), "tabm": (tabm_space, tabm_params)}
