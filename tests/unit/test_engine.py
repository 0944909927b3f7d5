"""The one engine: a pack of one trains exactly as a plain torch loop would, packed members as
they would alone, recurrent packs through the plain path, and with a gradient scaler."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional

from mltune.models.mlp import MLP
from mltune.training.engine import Exploit, Member, PlainPack, make_pack, train
from mltune.training.packing import Pack

PARAMS = {"learning_rate": 1e-2, "optimizer": "adam", "batch_size": 16}


def data() -> SimpleNamespace:
    torch.manual_seed(0)
    x = torch.randn(96, 6)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return SimpleNamespace(x_train=x[:64], y_train=y[:64], x_val=x[64:], y_val=y[64:])


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(6, 2, num_layers=2, hidden_size=8, dropout=0.0, norm="none")


def accuracy(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    return {"accuracy": float((out.argmax(1) == y).float().mean())}


def members(n: int, rates: list[float] | None = None) -> list[Member]:
    rates = rates or [PARAMS["learning_rate"]] * n
    return [Member({**PARAMS, "learning_rate": lr}, functional.cross_entropy, lambda e, m: None)
            for lr in rates]


def test_a_pack_of_one_trains_exactly_like_a_plain_torch_loop():
    d = data()
    pack = make_pack([mlp(0)])
    assert isinstance(pack, PlainPack)
    train(pack, members(1), d, score=accuracy, epochs=2, seed=0, precision="fp32")
    reference = mlp(0)  # what ``fit`` did: the same seed, batch order and torch optimizer
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
        assert torch.equal(pack.member_state(0)[key], value), key


def test_a_packed_members_metrics_equal_the_same_config_trained_alone():
    rates = [1e-2, 3e-3, 3e-2]
    fused = make_pack([mlp(j) for j in range(3)])
    assert isinstance(fused, Pack)
    together = members(3, rates)
    train(fused, together, data(), score=accuracy, epochs=2, seed=0, precision="fp32")
    for j, rate in enumerate(rates):
        alone = members(1, [rate])
        train(make_pack([mlp(j)]), alone, data(), score=accuracy, epochs=2, seed=0,
              precision="fp32")
        for got, expected in zip(together[j].result.history, alone[0].result.history,
                                 strict=True):
            for key, value in expected.items():
                assert abs(got[key] - value) < 1e-5, (j, key)


class Recurrent(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.gru, self.head = nn.GRU(1, 4, batch_first=True), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(x.unsqueeze(-1))[0][:, -1])


def test_a_recurrent_pack_of_two_trains_through_the_plain_path():
    pack = make_pack([Recurrent(0), Recurrent(1)])
    assert isinstance(pack, PlainPack)
    both = members(2)
    train(pack, both, data(), score=accuracy, epochs=2, seed=0, precision="fp32")
    assert [len(m.result.history) for m in both] == [2, 2]
    assert all(m.error is None for m in both)


def test_the_gradient_scaler_path_runs_on_the_cpu(monkeypatch):
    from mltune.training.precision import Precision

    monkeypatch.setattr(Precision, "scaler",
                        lambda self: torch.amp.GradScaler("cpu", enabled=True))
    for pack, n in ((make_pack([mlp(0)]), 1), (make_pack([mlp(0), mlp(1)]), 2)):
        trained = members(n)
        before = pack.member_state(0)["body.0.weight"].clone()
        train(pack, trained, data(), score=accuracy, epochs=1, seed=0, precision="fp32")
        assert all(m.error is None for m in trained)
        assert not torch.equal(pack.member_state(0)["body.0.weight"], before)


def test_a_member_that_stops_leaves_and_the_others_go_on():
    class Stop(Exception):
        pass

    def stop_at_1(epoch: int, metrics: dict[str, float]) -> None:
        raise Stop

    pack = make_pack([mlp(0), mlp(1)])
    both = members(2)
    both[1].on_epoch = stop_at_1
    left: list[int] = []
    train(pack, both, data(), score=accuracy, epochs=3, seed=0, precision="fp32",
          on_leave=left.extend)
    assert left == [1, 0] and pack.slots == []  # member 1 after epoch 1, member 0 when done
    assert isinstance(both[1].error, Stop) and len(both[1].result.history) == 1
    assert len(both[0].result.history) == 3


def exploiting(at: int, source: int, values: dict):
    def on_epoch(epoch: int, metrics: dict[str, float]) -> Exploit | None:
        return Exploit(source, values) if epoch == at else None
    return on_epoch


@pytest.mark.parametrize("fused", [True, False])
def test_an_exploiting_member_trains_on_as_its_source_with_the_new_values(fused):
    networks = [mlp(j) for j in range(3)]
    pack = Pack(networks) if fused else PlainPack(networks)
    three = members(3, [1e-2, 3e-3, 3e-2])
    three[1].on_epoch = exploiting(1, 0, {"learning_rate": 1e-2})  # the source's own lr
    three[2].on_epoch = exploiting(1, 0, {"learning_rate": 5e-2})  # a new lr
    train(pack, three, data(), score=accuracy, epochs=3, seed=0, precision="fp32")
    source, copy, changed = (pack.member_state(j) for j in range(3))
    for key, value in source.items():  # weights and optimizer state copied: the same path
        assert torch.allclose(copy[key], value, atol=1e-6), key
    assert three[1].result.history[1:] == pytest.approx(three[0].result.history[1:])
    assert three[2].params["learning_rate"] == 5e-2
    assert not torch.allclose(changed["body.0.weight"], source["body.0.weight"])
    # and the new lr is what trains it: the source's row continued with lr 5e-2 by hand
    reference = members(1, [1e-2])
    reference[0].on_epoch = exploiting(1, 0, {"learning_rate": 5e-2})
    alone = make_pack([mlp(0)])
    train(alone, reference, data(), score=accuracy, epochs=3, seed=0, precision="fp32")
    for key, value in alone.member_state(0).items():
        assert torch.allclose(changed[key], value, atol=1e-5), key


def assert_same_history(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == pytest.approx(theirs, abs=1e-5)


def stop_at(at: int):
    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if epoch == at:
            raise RuntimeError(f"stopped at {epoch}")
    return on_epoch


@pytest.mark.parametrize("fused", [True, False])
def test_a_member_that_joins_a_running_pack_trains_exactly_as_it_would_alone(fused):
    networks = [mlp(0), mlp(1)]
    pack = Pack(networks) if fused else PlainPack(networks)
    running = members(2, [1e-2, 3e-3])
    running[1].on_epoch = stop_at(1)  # leaves after its first epoch: a slot is free
    joining = members(1, [3e-2])[0]
    offers = [[(mlp(7), joining)]]
    asked: list[int] = []

    def refill(free: int):
        asked.append(free)
        return offers.pop() if offers else []

    train(pack, running, data(), score=accuracy, epochs=3, seed=0, precision="fp32",
          refill=refill)
    assert asked[0] == 1 and len(running) == 3 and running[2] is joining
    assert len(joining.result.history) == 3 and joining.error is None  # its own 3 epochs
    alone = members(1, [3e-2])
    single = make_pack([mlp(7)])
    train(single, alone, data(), score=accuracy, epochs=3, seed=0, precision="fp32")
    assert_same_history(joining.result.history, alone[0].result.history)
    for key, value in single.member_state(0).items():
        assert torch.allclose(pack.member_state(2)[key], value, atol=1e-5), key
    # the members that were there are untouched by the newcomer
    first = members(1, [1e-2])
    train(make_pack([mlp(0)]), first, data(), score=accuracy, epochs=3, seed=0,
          precision="fp32")
    assert_same_history(running[0].result.history, first[0].result.history)


def test_a_refilled_pack_stays_full_while_points_remain():
    pack = make_pack([mlp(j) for j in range(3)])
    group = members(3)
    for m, epochs in zip(group, (1, 2, 6), strict=True):  # they end at different epochs
        m.epochs = epochs
    supply = list(range(10, 16))  # six more members of the same shape
    live: list[int] = []

    def refill(free: int):
        taken, supply[:] = supply[:free], supply[free:]
        joining = [(mlp(seed), members(1)[0]) for seed in taken]
        for _, m in joining:
            m.epochs = 2
        return joining

    def count(epoch: int, measured) -> None:
        live.append(len(measured))

    train(pack, group, data(), score=accuracy, epochs=6, seed=0, precision="fp32",
          refill=refill, on_epoch_all=count)
    assert len(group) == 9 and supply == []
    assert [len(m.result.history) for m in group] == [1, 2, 6] + [2] * 6
    assert live == [3, 3, 3, 3, 3, 3, 2, 1]  # full while points remained, then it drains


def test_past_the_deadline_every_member_ends_finished_at_its_epoch_end():
    pack = make_pack([mlp(0), mlp(1)])
    both = members(2)
    offered: list[int] = []
    train(pack, both, data(), score=accuracy, epochs=5, seed=0, precision="fp32",
          deadline=time.monotonic() - 1, refill=lambda free: offered.append(free) or [])
    assert all(m.error is None and m.result.stopped == "time_budget" for m in both)
    assert [len(m.result.history) for m in both] == [1, 1] and offered == []


@pytest.mark.parametrize("fused", [True, False])
def test_an_exploit_that_changes_dropout_sets_the_members_own_rate(fused):
    def net(seed: int, dropout: float) -> nn.Module:
        torch.manual_seed(seed)
        return MLP(6, 2, num_layers=2, hidden_size=8, dropout=dropout, norm="none")

    pack = Pack([net(0, 0.1), net(1, 0.1)]) if fused else PlainPack([net(0, 0.1), net(1, 0.1)])

    def rates(j: int) -> set[float]:
        if isinstance(pack, Pack):
            row = pack.slots.index(j)
            return {round(float(b[row]), 6) for name, b in pack._buffers_by_name().items()
                    if name.endswith(".p")}
        return {m.p for m in pack.networks[j].modules() if isinstance(m, nn.Dropout)}

    seen: dict[int, set[float]] = {}

    def watch(at: int, then):
        def on_epoch(epoch: int, metrics: dict[str, float]):
            if epoch == 2:
                seen.update({j: rates(j) for j in (0, 1)})
            return then(epoch, metrics)
        return on_epoch

    two = members(2)
    for m in two:
        m.params = {**m.params, "dropout": 0.1}
        m.rebuild = lambda params: net(9, params["dropout"])
    two[1].on_epoch = watch(2, exploiting(1, 0, {"dropout": 0.4}))
    train(pack, two, data(), score=accuracy, epochs=2, seed=0, precision="fp32")
    assert two[1].params["dropout"] == 0.4 and two[0].params["dropout"] == 0.1
    assert seen == {0: {0.1}, 1: {0.4}}  # member 1 trained epoch 2 at its new rate


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", ["stratified", "in_time"])
def test_a_fold_member_trains_exactly_as_alone_on_its_folds_rows(fused, kind):
    """Cross-validation: each member trains on its own fold's rows and is scored on its own
    held-out rows, in one pack; the folds differ in size (expanding time folds by a lot), so
    a member whose rows are spent sits the rest of the epoch out, untouched."""
    from mltune.data.folds import make_folds

    d = data()
    folds = make_folds(d.y_train, 3, seed=0, kind=kind)
    assert len({len(f.train) for f in folds}) > 1  # sizes differ: the masking is exercised
    together = [Member(PARAMS, functional.cross_entropy, lambda e, m: None, fold=fold)
                for fold in folds]
    pack = make_pack([mlp(7) for _ in folds]) if fused else PlainPack([mlp(7) for _ in folds])
    assert isinstance(pack, Pack) == fused
    train(pack, together, d, score=accuracy, epochs=3, seed=0, precision="fp32")
    for i, fold in enumerate(folds):
        alone = members(1)
        own = SimpleNamespace(x_train=d.x_train[fold.train], y_train=d.y_train[fold.train],
                              x_val=d.x_train[fold.val], y_val=d.y_train[fold.val])
        single = make_pack([mlp(7)])
        train(single, alone, own, score=accuracy, epochs=3, seed=0, precision="fp32")
        for got, expected in zip(together[i].result.history, alone[0].result.history,
                                 strict=True):
            for key, value in expected.items():
                assert abs(got[key] - value) < 1e-5, (i, key)
        for key, value in single.member_state(0).items():
            assert torch.allclose(pack.member_state(i)[key], value, atol=1e-5), (i, key)
