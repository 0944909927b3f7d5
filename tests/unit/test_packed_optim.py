"""A pack's optimizer moves each member's weights as PyTorch's optimizer moves them alone."""

from __future__ import annotations

import pytest
import torch

from mltune.training.optim import make_optimizer
from mltune.training.packed_optim import make_packed_optimizer

MEMBERS = {
    "adam": [{"optimizer": "adam", "learning_rate": 1e-2, "weight_decay": 0.0},
             {"optimizer": "adam", "learning_rate": 3e-3, "weight_decay": 1e-2}],
    "adamw": [{"optimizer": "adamw", "learning_rate": 1e-2, "weight_decay": 0.1},
              {"optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 0.0}],
    "sgd": [{"optimizer": "sgd", "learning_rate": 0.1, "optimizer.momentum": 0.9},
            {"optimizer": "sgd", "learning_rate": 0.05, "optimizer.momentum": 0.0,
             "weight_decay": 1e-3},
            {"optimizer": "sgd", "learning_rate": 0.05, "optimizer.momentum": 0.5,
             "optimizer.nesterov": True}],
    "rmsprop": [{"optimizer": "rmsprop", "learning_rate": 1e-2},
                {"optimizer": "rmsprop", "learning_rate": 1e-3, "optimizer.momentum": 0.9}],
}


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_each_member_moves_as_it_would_alone(name):
    members = MEMBERS[name]
    torch.manual_seed(0)
    start = [torch.randn(5, 3) for _ in members]
    grads = [[torch.randn(5, 3) for _ in members] for _ in range(6)]
    alone = []
    for j, params in enumerate(members):
        weight = torch.nn.Parameter(start[j].clone())
        optimizer = make_optimizer(torch.nn.ParameterList([weight]), dict(params))
        for step in grads:
            weight.grad = step[j].clone()
            optimizer.step()
        alone.append(weight.detach())
    stacked = torch.nn.Parameter(torch.stack(start))
    packed = make_packed_optimizer([stacked], members)
    for step in grads:
        stacked.grad = torch.stack(step)
        packed.step()
    for j in range(len(members)):
        assert torch.allclose(stacked[j].detach(), alone[j], rtol=1e-5, atol=1e-6), name


def test_a_stopped_member_stays_put_and_its_nan_does_not_spread():
    members = MEMBERS["adam"]
    stacked = torch.nn.Parameter(torch.ones(2, 4))
    packed = make_packed_optimizer([stacked], members)
    packed.stop(1)
    stacked.grad = torch.stack([torch.ones(4), torch.full((4,), float("nan"))])
    packed.step()
    assert torch.equal(stacked[1].detach(), torch.ones(4))
    assert torch.isfinite(stacked[0]).all() and not torch.equal(stacked[0].detach(),
                                                                 torch.ones(4))


def test_one_optimizer_type_per_pack():
    with pytest.raises(ValueError, match="share one optimizer type"):
        make_packed_optimizer([torch.nn.Parameter(torch.ones(2, 1))],
                              [{"optimizer": "adam"}, {"optimizer": "sgd"}])
