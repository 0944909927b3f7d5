"""The tabm family: the paper's network (checked against the ``tabm`` package), members that
learn apart, one answer that is their average, and a packed trial that trains as it would
alone."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import nn

from mltune.models.ensemble import average
from mltune.models.tabm import TabM
from mltune.spec.build import build_spec
from mltune.tasks import task_for
from mltune.tasks.members import MembersLoss, averaged
from mltune.tasks.tabular.task import encode
from mltune.training.device import seed_everything
from mltune.training.engine import Member, PackTrainer

SMALL = {"k": 4, "n_blocks": 2, "d_block": 32, "dropout": 0.0, "batch_size": 64}


def tabular(source: str = "sklearn:breast_cancer", **params):
    spec = build_spec({"task": "tabular", "data": source, "model": "tabm", "epochs": 1})
    task = task_for(spec)
    data = task.load(spec.data, seed=0)
    return task, data, task.with_defaults({**SMALL, **params})


def trained(task, data, configs, epochs=1):
    """``configs`` trained as one pack by the pack trainer (fused when several), member j
    built after seed j: the networks, each with its weights, and each member's epochs."""
    networks = []
    for j, config in enumerate(configs):
        seed_everything(j)
        networks.append(task.build_model(config, data.meta))
    crew = [Member(c, task.make_loss(c, data)) for c in configs]
    trainer = PackTrainer(data, networks, crew, seed=0, precision="fp32",
                          score=lambda o, y: task.score(o, y, data.meta))
    assert trainer.fused == (len(configs) > 1)  # several TabM trials: one fused network
    history: list[list[dict]] = [[] for _ in configs]
    for _ in range(epochs):
        for j, metrics in trainer.step_epoch().items():
            assert isinstance(metrics, dict), metrics  # trained, not diverged
            history[j].append(metrics)
    nets = [task.build_model(c, data.meta) for c in configs]
    trainer.remove(dict(enumerate(nets)))
    return [n.eval() for n in nets], history


def test_the_network_answers_as_the_tabm_package_does_with_the_same_weights():
    tabm = pytest.importorskip("tabm")
    torch.manual_seed(0)
    ours = TabM(7, 3, k=4, n_blocks=2, d_block=16, dropout=0.0).eval()
    theirs = tabm.TabM.make(n_num_features=7, d_out=3, k=4, n_blocks=2, d_block=16,
                            dropout=0.0).eval()
    # the paper's initialisation, as the package does it: random signs first, ones after
    first, second = ours.body[0], ours.body[3]
    assert set(first.r.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(second.r, torch.ones_like(second.r))
    assert all(torch.equal(layer.s, torch.ones_like(layer.s)) for layer in (first, second))
    assert torch.equal(first.bias, first.bias[:1].expand_as(first.bias))  # one draw for all k
    with torch.no_grad():
        for i, layer in enumerate((first, second)):
            block = theirs.backbone.blocks[i][0]
            for name in ("weight", "r", "s", "bias"):
                getattr(block, name).copy_(getattr(layer, name))
        theirs.output.weight.copy_(ours.head.weight)
        theirs.output.bias.copy_(ours.head.bias)
        x = torch.randn(5, 7)
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_members_differ_after_one_epoch_and_the_answer_is_their_average():
    task, data, params = tabular()
    (network,), (history,) = trained(task, data, [params])
    # the adapters learned apart: every member's own scaling of the second layer
    r = network.body[3].r
    assert not torch.allclose(r, r[:1].expand_as(r))
    x = data.x_val
    with torch.no_grad():
        members = network(x)  # (N, k, classes)
    assert members.shape == (len(x), 4, 2)
    assert not torch.allclose(members[:, 0], members[:, 1])
    # the served answer: the mean of the members' probabilities, labels its argmax
    rows = task.input_example(data)
    served = task.predict(network, {**data.meta, **data.artifacts}, rows)
    with torch.no_grad():
        mean = torch.softmax(network(encode(rows, {**data.meta, **data.artifacts}, "t")),
                             dim=-1).mean(dim=1)
    proba = served[[f"proba_{c}" for c in data.meta["classes"]]].to_numpy()
    assert proba == pytest.approx(mean.numpy(), abs=1e-6)
    # scores are the average's, and each comes with its spread over the members
    scores = task.score(members, data.y_val, data.meta)
    each = [(members[:, i].argmax(dim=1) == data.y_val).float().mean().item() for i in range(4)]
    assert scores["accuracy"] == pytest.approx(
        (averaged(members, True).argmax(dim=1) == data.y_val).float().mean().item())
    assert scores["accuracy_members_std"] == pytest.approx(statistics.pstdev(each))
    assert history[0]["val_accuracy"] == pytest.approx(scores["accuracy"])


def test_a_regression_answers_the_mean_of_the_members_values_in_the_targets_units():
    task, data, params = tabular("sklearn:diabetes")
    (network,), _ = trained(task, data, [params])
    with torch.no_grad():
        members = network(data.x_test)  # (N, k, 1), in the target's units
    mean = members.mean(dim=1)
    scores = task.score(members, data.y_test, data.meta)
    rmse = ((mean - data.y_test) ** 2).mean().sqrt().item()
    assert scores["rmse"] == pytest.approx(rmse, rel=1e-5)
    assert scores["rmse_members_std"] > 0


def test_the_loss_trains_each_member_and_measures_their_average():
    loss = MembersLoss(nn.CrossEntropyLoss(), probabilities=True)
    logits = torch.randn(6, 4, 3, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    each = [nn.functional.cross_entropy(logits[:, i], targets) for i in range(4)]
    assert loss(logits, targets).item() == pytest.approx(torch.stack(each).mean().item())
    measured = logits.detach()
    mean_probability = torch.softmax(measured, dim=-1).mean(dim=1)
    expected = nn.functional.nll_loss(mean_probability.log(), targets)
    assert loss(measured, targets).item() == pytest.approx(expected.item(), rel=1e-5)
    # each member on its own batch (its own targets): the mean of each member's own loss
    own = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2], [0, 0, 1, 1], [1, 1, 2, 2],
                        [2, 2, 0, 0]])
    each = [nn.functional.cross_entropy(logits[:, i], own[:, i]) for i in range(4)]
    assert loss(logits, own).item() == pytest.approx(torch.stack(each).mean().item())
    values, truth = torch.randn(6, 4, 1, requires_grad=True), torch.randn(6, 4, 1)
    regression = MembersLoss(nn.MSELoss(), probabilities=False)
    assert regression(values, truth).item() == pytest.approx(
        torch.stack([nn.functional.mse_loss(values[:, i], truth[:, i])
                     for i in range(4)]).mean().item())
    shared = truth[:, 0]  # (N, 1): one target a row for every member
    assert regression(values, shared).item() == pytest.approx(
        torch.stack([nn.functional.mse_loss(values[:, i], shared)
                     for i in range(4)]).mean().item())
    plain = torch.randn(6, 3)  # an ordinary network's answer passes through
    assert loss(plain, targets) == nn.functional.cross_entropy(plain, targets)


def inputs_of_one_epoch(task, data, params, seed=0):
    """What a TabM trained alone for one epoch received, batch by batch (a forward hook)."""
    network = task.build_model(params, data.meta)
    seen: list[torch.Tensor] = []
    network.register_forward_hook(
        lambda module, args, out: seen.append(args[0].detach().clone()) if module.training
        else None)
    trainer = PackTrainer(data, [network], [Member(params, task.make_loss(params, data))],
                          seed=seed, precision="fp32",
                          score=lambda o, y: task.score(o, y, data.meta))
    assert isinstance(trainer.step_epoch()[0], dict)
    return seen


def same_rows(seen: torch.Tensor, rows: torch.Tensor) -> bool:
    """Whether ``seen`` holds the rows of ``rows``, each once, in any order."""
    key = torch.randn(rows.shape[1], dtype=rows.dtype)
    return seen.shape == rows.shape and torch.equal(seen[(seen @ key).argsort()],
                                                    rows[(rows @ key).argsort()])


def test_each_member_sees_its_own_batch_order_unless_the_batches_are_shared():
    task, data, params = tabular()
    assert params["shared_batches"] is False  # the paper's setting is the default
    own = inputs_of_one_epoch(task, data, params)
    first = own[0]  # (batch, k, features): member i's rows in column i
    assert first.shape == (64, 4, data.x_train.shape[1])
    assert not torch.equal(first[:, 0], first[:, 1])
    for i in range(4):  # over the epoch each member saw every training row once
        assert same_rows(torch.cat([batch[:, i] for batch in own]), data.x_train)
    again = inputs_of_one_epoch(task, data, params)  # seeded: the same orders again
    assert all(torch.equal(a, b) for a, b in zip(own, again, strict=True))
    other = inputs_of_one_epoch(task, data, params, seed=1)
    assert not torch.equal(other[0], first)

    shared = inputs_of_one_epoch(task, data, {**params, "shared_batches": True})
    assert shared[0].shape == (64, data.x_train.shape[1])  # one batch, every member's
    assert same_rows(torch.cat(shared), data.x_train)


def test_a_pack_refuses_members_that_train_on_different_numbers_of_batch_orders():
    task, data, params = tabular()
    configs = [params, {**params, "shared_batches": True}]
    networks = [task.build_model(c, data.meta) for c in configs]
    crew = [Member(c, task.make_loss(c, data)) for c in configs]
    with pytest.raises(ValueError, match="batch orders"):
        PackTrainer(data, networks, crew, seed=0, precision="fp32",
                    score=lambda o, y: task.score(o, y, data.meta))


@pytest.mark.parametrize("shared_batches", [False, True])
def test_a_packed_tabm_trial_equals_the_same_configuration_trained_alone(shared_batches):
    """fp32 on the CPU, the same seeds and batch orders, no dropout (a pack draws each
    member's masks from one stream): the same metrics, fused or alone, whether each inner
    member has its own batch order or they share one."""
    task, data, params = tabular(shared_batches=shared_batches)
    configs = [{**params, "learning_rate": lr, "weight_decay": wd}
               for lr, wd in ((2e-3, 3e-4), (5e-4, 0.0), (4e-3, 1e-2))]
    packed = trained(task, data, configs, epochs=2)[1]
    for j, config in enumerate(configs):
        seed_everything(j)
        network = task.build_model(config, data.meta)
        trainer = PackTrainer(data, [network], [Member(config, task.make_loss(config, data))],
                              seed=0, precision="fp32",
                              score=lambda o, y: task.score(o, y, data.meta))
        alone = [trainer.step_epoch()[0] for _ in range(2)]
        for p, a in zip(packed[j], alone, strict=True):
            assert set(p) == set(a)
            for metric in p:
                assert p[metric] == pytest.approx(a[metric], abs=1e-4), metric


def test_networks_with_different_numbers_of_members_average_into_one_answer():
    four, eight = torch.randn(5, 4, 3), torch.randn(5, 8, 3)
    answer = average([four, eight], [0.25, 0.75], probabilities=True)
    mean = (0.25 * torch.softmax(four, -1).mean(1) + 0.75 * torch.softmax(eight, -1).mean(1))
    assert torch.allclose(torch.softmax(averaged(answer, True), dim=-1), mean, atol=1e-6)
