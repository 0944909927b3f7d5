"""A pack's optimizer moves each member's weights as PyTorch's optimizer moves them alone."""

from __future__ import annotations

import pytest
import torch

from mltune.training.optim import make_optimizer, make_packed_optimizer

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


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_members_cut_by_keep_go_on_as_they_would_alone(name):
    """A pack sets stopped members aside: the optimizer keeps the others' values and state."""
    members = [MEMBERS[name][0], MEMBERS[name][1], MEMBERS[name][-1]]  # the middle one stops
    torch.manual_seed(1)
    start = [torch.randn(4, 2) for _ in members]
    grads = [[torch.randn(4, 2) for _ in members] for _ in range(5)]
    alone = []
    for j in (0, 2):
        weight = torch.nn.Parameter(start[j].clone())
        optimizer = make_optimizer(torch.nn.ParameterList([weight]), dict(members[j]))
        for step in grads:
            weight.grad = step[j].clone()
            optimizer.step()
        alone.append(weight.detach())
    stacked = torch.nn.Parameter(torch.stack(start))
    packed = make_packed_optimizer([stacked], members)
    for i, step in enumerate(grads):
        if i == 2:  # member 1 leaves after two steps: its row is cut from weights and state
            stacked = torch.nn.Parameter(stacked.detach()[[0, 2]])
            packed.keep([0, 2], [stacked])
        rows = [0, 1, 2] if i < 2 else [0, 2]
        stacked.grad = torch.stack([step[j] for j in rows])
        packed.step()
    assert stacked.shape[0] == 2
    for row, expected in enumerate(alone):
        assert torch.allclose(stacked[row].detach(), expected, rtol=1e-5, atol=1e-6), name


def test_one_optimizer_type_per_pack():
    with pytest.raises(ValueError, match="share one optimizer type"):
        make_packed_optimizer([torch.nn.Parameter(torch.ones(2, 1))],
                              [{"optimizer": "adam"}, {"optimizer": "sgd"}])
