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
from mltune.training.engine import Member, PackTrainer
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


def _fit(networks: list[nn.Module], rates: list[float], epochs: int,
         pruned_at: dict[int, int]) -> tuple[PackTrainer, dict[int, nn.Module]]:
    """The members trained by the pack trainer, those in ``pruned_at`` removed after that
    epoch (their weights into a network each, as a trial takes them)."""
    torch.manual_seed(0)
    x = torch.randn(96, 6)
    y = (x[:, 0] + x[:, 1] > 0).long()
    data = SimpleNamespace(x_train=x[:64], y_train=y[:64], x_val=x[64:], y_val=y[64:])
    members = [Member({"learning_rate": lr, "optimizer": "adam", "batch_size": 16},
                      functional.cross_entropy) for lr in rates]
    trainer = PackTrainer(data, networks, members, seed=0, precision="fp32",
                          score=lambda out, y: {"accuracy": float((out.argmax(1) == y)
                                                                  .float().mean())})
    taken: dict[int, nn.Module] = {}
    for epoch in range(1, epochs + 1):
        trainer.step_epoch()
        leaving = {j: mlp(99, dropout=0.0, norm="none") for j, at in pruned_at.items()
                   if at == epoch}
        trainer.remove(leaving)
        taken.update(leaving)
    return trainer, taken


def test_a_member_that_stops_leaves_the_pack_and_the_others_train_as_without_it():
    def net(seed: int) -> nn.Module:
        return mlp(seed, dropout=0.0, norm="none")

    three, taken = _fit([net(0), net(1), net(2)], [1e-2, 3e-2, 3e-3], epochs=3,
                        pruned_at={1: 1})
    assert three.fused and three.live == [0, 2]  # the pruned one left after epoch 1
    two, _ = _fit([net(0), net(2)], [1e-2, 3e-3], epochs=3, pruned_at={})
    one, _ = _fit([net(1)], [3e-2], epochs=1, pruned_at={})
    for kept, row in {0: 0, 2: 1}.items():
        got, expected = three.weights(kept), two.weights(row)
        for key, value in expected.items():
            assert torch.allclose(got[key], value, atol=1e-5), (kept, key)
    for key, value in one.weights(0).items():  # the member that left unstacks like any other
        assert torch.allclose(taken[1].state_dict()[key], value, atol=1e-5), key
