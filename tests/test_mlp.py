"""The MLP family: every norm and activation trains, and a one-row batch does not break it."""

from __future__ import annotations

import pytest
import torch

from mltune.core.errors import SpecError
from mltune.models.init import INITS, init_weights
from mltune.models.layers import ACTIVATIONS
from mltune.models.mlp import MLP, NORMS


@pytest.mark.parametrize(("norm", "activation"),
                         zip(NORMS.names(), ["gelu", "tanh", "relu"], strict=True))
def test_every_norm_learns_a_simple_rule(norm, activation):
    torch.manual_seed(0)
    x = torch.randn(128, 6)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = MLP(6, 2, num_layers=2, hidden_size=16, activation_name=activation, norm=norm)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert (model(x).argmax(dim=1) == y).float().mean() > 0.9


def test_layers_follow_the_params():
    model = MLP(5, 1, num_layers=3, hidden_size=8, dropout=0.2, norm="layer")
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 8), (8, 8), (8, 8), (8, 1)]
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules()) == 3
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 3
    assert MLP(5, 3, num_layers=0)(torch.randn(4, 5)).shape == (4, 3)  # a linear model


def test_batch_norm_takes_a_one_row_training_batch():
    model = MLP(4, 2, norm="batch").train()
    assert model(torch.randn(1, 4)).shape == (1, 2)


@pytest.mark.parametrize("scheme", INITS.names())
def test_every_weight_init_applies(scheme):
    model = init_weights(MLP(4, 2, num_layers=2, hidden_size=8), scheme)
    assert torch.isfinite(model(torch.randn(3, 4))).all()


def test_unknown_norm_lists_the_available_ones():
    with pytest.raises(SpecError, match="norm: unknown norm 'group'; available: batch, layer, "
                                        "none"):
        MLP(4, 2, norm="group")
    assert "relu" in ACTIVATIONS
