"""The folds of ``cv: k``: disjoint, covering train + validation, the same for a seed, stratified
for classes, and in time order for a series."""

from __future__ import annotations

import pytest
import torch

from mltune.data.folds import IN_TIME, PLAIN, STRATIFIED, make_folds, smallest_class


def labels(n: int = 103) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(n, generator=generator) < 0.2).long()  # a rare class of ~20%


@pytest.mark.parametrize("kind", [STRATIFIED, PLAIN])
def test_shuffled_folds_are_disjoint_cover_every_row_and_follow_the_seed(kind):
    y = labels()
    folds = make_folds(y, 5, seed=3, kind=kind)
    assert len(folds) == 5
    scored = torch.cat([f.scored for f in folds])
    assert sorted(scored.tolist()) == list(range(len(y)))  # each row scored exactly once
    for fold in folds:
        assert not set(fold.train.tolist()) & set(fold.scored.tolist())
        assert sorted(torch.cat([fold.train, fold.scored]).tolist()) == list(range(len(y)))
    again = make_folds(y, 5, seed=3, kind=kind)
    assert all(torch.equal(a.scored, b.scored) for a, b in zip(folds, again, strict=True))
    other = make_folds(y, 5, seed=4, kind=kind)
    assert any(not torch.equal(a.scored, b.scored) for a, b in zip(folds, other, strict=True))


def test_stratified_folds_keep_the_class_balance():
    y = labels()
    share = float(y.float().mean())
    for fold in make_folds(y, 4, seed=0, kind=STRATIFIED):
        assert abs(float(y[fold.scored].float().mean()) - share) < 0.05
    assert smallest_class(y) == int((y == 1).sum())


def test_time_folds_expand_and_score_only_what_comes_after_their_training_rows():
    folds = make_folds(torch.arange(60).float(), 3, seed=0, kind=IN_TIME, gap=2)
    sizes = [len(f.train) for f in folds]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3  # expanding windows
    for fold in folds:
        assert fold.train.tolist() == list(range(len(fold.train)))  # the past, from the start
        assert int(fold.scored.min()) == int(fold.train.max()) + 3  # two rows left out between
    assert int(folds[-1].scored.max()) == 59  # the last fold is scored on the latest rows


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="allowed: stratified, plain, in_time"):
        make_folds(labels(), 3, seed=0, kind="random")
