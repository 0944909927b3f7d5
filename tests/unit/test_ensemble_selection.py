"""Greedy ensemble selection (with replacement, stopping when nothing improves) on hand-made
predictions, and the averaged network's outputs."""

from __future__ import annotations

import torch

from mltune.core.outcomes import TrialOutcome
from mltune.core.terms import Direction, TrialStatus
from mltune.models.ensemble import Averaged
from mltune.search.selection.ensemble import candidates, greedy_selection


def mse_to(target: list[float]):
    y = torch.tensor(target)
    return lambda outputs: float(((outputs - y) ** 2).mean())


def test_it_picks_with_replacement_and_stops_when_nothing_improves():
    predictions = [torch.tensor([1.0]), torch.tensor([-2.0]), torch.tensor([5.0])]
    # 1: p0 alone (mse 1); 2: p0 + p1 -> -0.5 (0.25); 3: p0 again -> 0 (0); 4: nothing improves
    counts = greedy_selection(predictions, mse_to([0.0]), Direction.MIN, 10, False)
    assert counts == [2, 1, 0]


def test_at_most_size_additions():
    predictions = [torch.tensor([1.0]), torch.tensor([-2.0]), torch.tensor([5.0])]
    assert greedy_selection(predictions, mse_to([0.0]), Direction.MIN, 2, False) == [1, 1, 0]
    assert greedy_selection(predictions, mse_to([0.0]), Direction.MIN, 1, False) == [1, 0, 0]


def test_a_single_best_stays_alone_when_no_addition_improves():
    predictions = [torch.tensor([3.0]), torch.tensor([0.0]), torch.tensor([-5.0])]
    assert greedy_selection(predictions, mse_to([0.0]), Direction.MIN, 5, False) == [0, 1, 0]


def test_a_score_to_maximise_and_averaged_probabilities():
    # two samples of class 0 then 1; each model is right on one sample, confidently wrong on
    # none: their averaged probabilities are right on both
    logits = [torch.tensor([[4.0, 0.0], [0.5, 0.0]]), torch.tensor([[0.0, 0.5], [0.0, 4.0]]),
              torch.tensor([[0.0, 3.0], [3.0, 0.0]])]
    targets = torch.tensor([0, 1])

    def accuracy(outputs: torch.Tensor) -> float:
        return float((outputs.argmax(dim=1) == targets).float().mean())

    assert greedy_selection(logits, accuracy, Direction.MAX, 4, True) == [1, 1, 0]


def test_the_averaged_network_answers_the_log_of_the_weighted_probabilities():
    torch.manual_seed(0)
    members = [torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)]
    x = torch.randn(5, 3)
    out = Averaged(members, [0.25, 0.75], probabilities=True)(x)
    expected = 0.25 * torch.softmax(members[0](x), 1) + 0.75 * torch.softmax(members[1](x), 1)
    torch.testing.assert_close(torch.softmax(out, 1), expected)
    torch.testing.assert_close(out.exp(), expected)
    raw = Averaged(members, [0.25, 0.75], probabilities=False)(x)
    torch.testing.assert_close(raw, 0.25 * members[0](x) + 0.75 * members[1](x))


def test_candidates_are_the_best_four_per_member_finished_with_a_model():
    def trial(number: int, value: float, status: str = "FINISHED", uri: str | None = "m"):
        return TrialOutcome(number, f"r{number}", {}, TrialStatus(status),
                            {"val_loss": value}, model_uri=uri)

    trials = [trial(1, 0.5), trial(2, 0.1, "PRUNED"), trial(3, 0.2), trial(4, 0.3, uri=None),
              trial(5, 0.2), *[trial(n, 0.9 + n / 100) for n in range(6, 12)]]
    chosen = candidates(trials, "val_loss", Direction.MIN, 1)
    assert [t.number for t in chosen] == [3, 5, 1, 6]  # a tie: the earliest first
    assert len(candidates(trials, "val_loss", Direction.MIN, 3)) == 9  # all there are
