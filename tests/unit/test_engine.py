"""The pack trainer: a pack of one trains exactly as a plain torch loop would, packed members as
they would alone (joined late, on their own rows, after a copy), recurrent packs through the
plain path, with a gradient scaler; a diverged member is reported, not raised."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional

from mltune.data.folds import Rows, make_folds
from mltune.models.mlp import MLP
from mltune.training.engine import Member, PackTrainer
from mltune.training.fit import DivergedError
from mltune.training.packing import Pack

PARAMS = {"learning_rate": 1e-2, "optimizer": "adam", "batch_size": 16}


def data() -> SimpleNamespace:
    torch.manual_seed(0)
    x = torch.randn(96, 6)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return SimpleNamespace(x_train=x[:64], y_train=y[:64], x_val=x[64:], y_val=y[64:])


def mlp(seed: int, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(6, 2, num_layers=2, hidden_size=8, dropout=dropout, norm="none")


def accuracy(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    return {"accuracy": float((out.argmax(1) == y).float().mean())}


def members(rates: list[float], rows: list[Rows | None] | None = None, **params) -> list[Member]:
    rows = rows or [None] * len(rates)
    return [Member({**PARAMS, **params, "learning_rate": lr}, functional.cross_entropy, r)
            for lr, r in zip(rates, rows, strict=True)]


def trainer(networks: list[nn.Module], rates: list[float], d=None, fuse: bool = True,
            **options) -> PackTrainer:
    return PackTrainer(d or data(), networks, members(rates, **options), score=accuracy, seed=0,
                       precision="fp32", fuse=fuse)


def train(t: PackTrainer, epochs: int) -> dict[int, list[dict]]:
    """Every live member's metrics, epoch by epoch."""
    history: dict[int, list[dict]] = {}
    for _ in range(epochs):
        for j, metrics in t.step_epoch().items():
            history.setdefault(j, []).append(metrics)
    return history


def alone(seed: int, rate: float, epochs: int, d=None, **params) -> tuple[list[dict], dict]:
    """What one network trains to by itself: its history and weights."""
    t = trainer([mlp(seed)], [rate], d, **params)
    return train(t, epochs)[0], t.weights(0)


def assert_same(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == pytest.approx(theirs, abs=1e-5)


def assert_weights(got: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert torch.allclose(got[key], value, atol=1e-5), key


def test_a_pack_of_one_trains_exactly_like_a_plain_torch_loop():
    d = data()
    t = trainer([mlp(0)], [PARAMS["learning_rate"]], d)
    assert not t.fused
    train(t, 2)
    reference = mlp(0)  # the same seed, batch order and torch optimizer
    optimizer = torch.optim.Adam(reference.parameters(), lr=PARAMS["learning_rate"])
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        order = torch.randperm(64, generator=generator)
        for start in range(0, 64, 16):
            index = order[start:start + 16]
            loss = functional.cross_entropy(reference(d.x_train[index]), d.y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    for key, value in reference.state_dict().items():
        assert torch.equal(t.weights(0)[key], value), key


def test_packed_members_train_as_the_same_configs_alone():
    rates = [1e-2, 3e-3, 3e-2]
    t = trainer([mlp(j) for j in range(3)], rates)
    assert t.fused and isinstance(t.pack, Pack)
    together = train(t, 2)
    for j, rate in enumerate(rates):
        history, weights = alone(j, rate, 2)
        assert_same(together[j], history)
        assert_weights(t.weights(j), weights)


def test_a_member_that_leaves_gives_its_weights_and_the_others_go_on():
    t = trainer([mlp(0), mlp(1)], [1e-2, 3e-3])
    first = train(t, 1)
    kept = mlp(99)
    t.remove({1: kept})
    assert t.live == [0]
    assert_weights(kept.state_dict(), alone(1, 3e-3, 1)[1])
    rest = train(t, 2)
    assert_same(first[0] + rest[0], alone(0, 1e-2, 3)[0])


def test_a_diverged_member_is_reported_and_the_others_are_untouched():
    t = trainer([mlp(0), mlp(1)], [1e-2, 1e9], optimizer="sgd")
    results = train(t, 3)
    assert isinstance(results[1][0], DivergedError)
    assert "train_loss became" in str(results[1][0])
    assert_same(results[0], alone(0, 1e-2, 3, optimizer="sgd")[0])


class Recurrent(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.gru, self.head = nn.GRU(1, 4, batch_first=True), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(x.unsqueeze(-1))[0][:, -1])


def test_a_recurrent_pack_of_two_trains_through_the_plain_path():
    t = trainer([Recurrent(0), Recurrent(1)], [1e-2, 1e-2])
    assert not t.fused
    history = train(t, 2)
    assert [len(history[j]) for j in (0, 1)] == [2, 2]
    assert all(isinstance(m, dict) for m in history[0] + history[1])


def test_the_gradient_scaler_path_runs_on_the_cpu(monkeypatch):
    from mltune.training.precision import Precision

    monkeypatch.setattr(Precision, "scaler",
                        lambda self: torch.amp.GradScaler("cpu", enabled=True))
    for networks in ([mlp(0)], [mlp(0), mlp(1)]):
        t = trainer(networks, [1e-2] * len(networks))
        before = t.weights(0)["body.0.weight"].clone()
        assert all(isinstance(m, dict) for m in t.step_epoch().values())
        assert not torch.equal(t.weights(0)["body.0.weight"], before)


@pytest.mark.parametrize("fused", [True, False])
def test_a_copied_member_trains_on_as_its_source_with_the_new_values(fused):
    t = trainer([mlp(j) for j in range(3)], [1e-2, 3e-3, 3e-2], fuse=fused)
    assert t.fused == fused
    train(t, 1)
    t.copy(0, 1, {"learning_rate": 1e-2})  # the source's own lr: the same path from here
    t.copy(0, 2, {"learning_rate": 5e-2})  # a new lr
    after = train(t, 2)
    assert_same(after[1], after[0])
    assert_weights(t.weights(1), t.weights(0))
    assert t.members[2].params["learning_rate"] == 5e-2
    assert not torch.allclose(t.weights(2)["body.0.weight"], t.weights(0)["body.0.weight"])
    # the new lr is what trains it: member 0's row continued with lr 5e-2, alone
    single = trainer([mlp(0)], [1e-2])
    train(single, 1)
    single.optimizers.copy(0, 0, {"learning_rate": 5e-2})
    train(single, 2)
    assert_weights(t.weights(2), single.weights(0))


@pytest.mark.parametrize("fused", [True, False])
def test_a_member_that_joins_a_running_pack_trains_exactly_as_it_would_alone(fused):
    t = trainer([mlp(0), mlp(1)], [1e-2, 3e-3], fuse=fused)
    first = train(t, 1)
    t.remove({1: None})  # a slot is free
    [joined] = t.add([mlp(7)], members([3e-2]))
    assert joined == 2 and t.live == [0, 2]
    rest = train(t, 3)
    assert_same(rest[2], alone(7, 3e-2, 3)[0])  # its own 3 epochs, its own batch order
    assert_weights(t.weights(2), alone(7, 3e-2, 3)[1])
    assert_same(first[0] + rest[0], alone(0, 1e-2, 4)[0])  # the others untouched by it


@pytest.mark.parametrize("fused", [True, False])
def test_a_copy_that_changes_dropout_sets_the_members_own_rate(fused):
    t = trainer([mlp(0, 0.1), mlp(1, 0.1)], [1e-2, 1e-2], fuse=fused, dropout=0.1)

    def rates(j: int) -> set[float]:
        if t.fused:
            row = t.pack.slots.index(j)
            return {round(float(b[row]), 6) for name, b in t.pack._buffers_by_name().items()
                    if name.endswith(".p")}
        return {m.p for m in t.pack.networks[j].modules() if isinstance(m, nn.Dropout)}

    train(t, 1)
    t.copy(0, 1, {"dropout": 0.4}, rates_from=mlp(9, 0.4))
    assert t.members[1].params["dropout"] == 0.4 and t.members[0].params["dropout"] == 0.1
    assert (rates(0), rates(1)) == ({0.1}, {0.4})


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", ["stratified", "in_time"])
def test_a_member_on_its_own_rows_trains_exactly_as_alone_on_them(fused, kind):
    """Cross-validation's members: each trains on its fold's rows and is scored on its own
    held-out rows, in one pack; the folds differ in size (expanding time folds by a lot), so
    a member whose rows are spent sits the rest of the epoch out, untouched."""
    d = data()
    folds = make_folds(d.y_train, 3, seed=0, kind=kind)
    assert len({len(f.train) for f in folds}) > 1  # sizes differ: the masking is exercised
    t = trainer([mlp(7) for _ in folds], [PARAMS["learning_rate"]] * 3, d, fuse=fused,
                rows=folds)
    assert t.fused == fused
    together = train(t, 3)
    for i, fold in enumerate(folds):
        own = SimpleNamespace(x_train=d.x_train[fold.train], y_train=d.y_train[fold.train],
                              x_val=d.x_train[fold.scored], y_val=d.y_train[fold.scored])
        history, weights = alone(7, PARAMS["learning_rate"], 3, own)
        assert_same(together[i], history)
        assert_weights(t.weights(i), weights)
