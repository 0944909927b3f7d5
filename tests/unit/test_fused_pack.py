"""A pack is its members: the same outputs, their own statistics and dropout rates, and each
member unstacked into its own ordinary network."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional

from mltune.models.cnn import ConvNet
from mltune.models.mlp import MLP
from mltune.training.engine import Member, train
from mltune.training.packing import Pack, can_pack


def mlp(seed: int, dropout: float = 0.2, norm: str = "batch") -> nn.Module:
    torch.manual_seed(seed)
    return MLP(6, 3, num_layers=2, hidden_size=8, dropout=dropout, norm=norm)


def cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return ConvNet(in_channels=1, height=8, width=8, num_classes=4, mean=[0.5], std=[2.0],
                   num_blocks=2, channels=4, dropout=0.3, hidden_size=8)


@pytest.mark.parametrize(("make", "shape"), [(mlp, (5, 6)), (cnn, (5, 1, 8, 8))])
def test_outputs_in_eval_mode_are_each_members_own(make, shape):
    members = [make(seed) for seed in range(3)]
    pack = Pack(members).eval()
    x = torch.randn(*shape)
    outputs = pack(x)
    assert outputs.shape[0] == 3
    for j, member in enumerate(members):
        assert torch.allclose(outputs[j], member.eval()(x), atol=1e-5)


def test_training_updates_each_members_batchnorm_statistics_and_unstacks_into_its_network():
    members = [mlp(seed) for seed in range(2)]
    pack = Pack(members).train()
    pack(torch.randn(16, 6) * 3 + 1)
    state = pack.member_state(1)
    assert set(state) == set(members[1].state_dict())  # nothing of the pack's own leaks in
    assert not torch.equal(state["body.1.running_mean"], members[1].state_dict()[
        "body.1.running_mean"])
    fresh = pack.load_into(1, mlp(99))
    assert torch.equal(fresh.state_dict()["body.1.running_mean"], state["body.1.running_mean"])


def test_each_member_keeps_its_dropout_rate():
    members = [mlp(0, dropout=0.0001), mlp(1, dropout=0.9)]
    pack = Pack(members).train()
    outputs = pack(torch.ones(2000, 6))
    # the second member drops almost every unit: its outputs vary far more between rows
    assert outputs[1].std(dim=0).mean() > 5 * outputs[0].std(dim=0).mean()


def test_members_of_different_shapes_cannot_be_packed():
    with pytest.raises(ValueError, match="share a shape"):
        Pack([mlp(0), MLP(6, 3, num_layers=3, hidden_size=8, dropout=0.2, norm="batch")])


def test_recurrent_networks_cannot_be_packed_and_say_why():
    assert can_pack(mlp(0)) is None
    reason = can_pack(nn.Sequential(nn.GRU(3, 4)))
    assert reason is not None and "GRU" in reason


class Pruned(Exception):
    """What a pruning rule raises from a member's ``on_epoch``."""


def _fit(networks: list[nn.Module], rates: list[float], epochs: int,
         pruned_at: dict[int, int]) -> tuple[Pack, list[Member]]:
    torch.manual_seed(0)
    x = torch.randn(96, 6)
    y = (x[:, 0] + x[:, 1] > 0).long()
    data = SimpleNamespace(x_train=x[:64], y_train=y[:64], x_val=x[64:], y_val=y[64:])

    def on_epoch(j: int):
        def done(epoch: int, metrics: dict[str, float]) -> None:
            if pruned_at.get(j) == epoch:
                raise Pruned(f"pruned at epoch {epoch}")
        return done

    members = [Member({"learning_rate": lr, "optimizer": "adam", "batch_size": 16},
                      functional.cross_entropy, on_epoch(j)) for j, lr in enumerate(rates)]
    pack = Pack(networks)
    train(pack, members, data, epochs=epochs, seed=0, precision="fp32",
             score=lambda out, y: {"accuracy": float((out.argmax(1) == y).float().mean())})
    return pack, members


def test_a_member_that_stops_leaves_the_pack_and_the_others_train_as_without_it():
    def net(seed: int) -> nn.Module:
        return mlp(seed, dropout=0.0, norm="none")

    three, members = _fit([net(0), net(1), net(2)], [1e-2, 3e-2, 3e-3], epochs=3,
                          pruned_at={1: 1})
    assert three.slots == []  # every member left: the pruned one after epoch 1
    assert isinstance(members[1].error, Pruned) and len(members[1].result.history) == 1
    assert [len(m.result.history) for m in (members[0], members[2])] == [3, 3]
    two, _ = _fit([net(0), net(2)], [1e-2, 3e-3], epochs=3, pruned_at={})
    one, _ = _fit([net(1)], [3e-2], epochs=1, pruned_at={})
    for kept, (pack, row) in {0: (two, 0), 2: (two, 1), 1: (one, 0)}.items():
        got, expected = three.member_state(kept), pack.member_state(row)
        for key, value in expected.items():
            assert torch.allclose(got[key], value, atol=1e-5), (kept, key)
    alone = three.load_into(1, net(5))  # the set-aside member unstacks like any other
    assert torch.equal(alone.state_dict()["body.0.weight"], one.member_state(0)["body.0.weight"])
