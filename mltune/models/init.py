"""Weight initialisation schemes, chosen by the ``weight_init`` hyperparameter."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mltune.core.catalog import Catalog

Initializer = Callable[..., object]
INITS: Catalog[Initializer | None] = Catalog("weight_init")
INITS.add("default", None)  # PyTorch's own per-layer defaults
INITS.add("xavier_uniform", nn.init.xavier_uniform_)
INITS.add("xavier_normal", nn.init.xavier_normal_)
INITS.add("kaiming_uniform", lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"))
INITS.add("kaiming_normal", lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))
INITS.add("orthogonal", nn.init.orthogonal_)
INITS.add("normal", lambda w: nn.init.normal_(w, mean=0.0, std=0.02))

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding, nn.RNNBase)


def init_weights(model: nn.Module, scheme: str) -> nn.Module:
    """Initialise every weight matrix of ``model`` with ``scheme``; biases start at zero."""
    init = INITS.get(scheme, field="weight_init")
    if init is None:
        return model
    for module in model.modules():
        if not isinstance(module, _WEIGHTED):
            continue
        for name, param in module.named_parameters(recurse=False):
            if name.startswith("weight") and param.dim() >= 2:
                init(param.data)
            elif name.startswith("bias"):
                nn.init.zeros_(param.data)
    return model
