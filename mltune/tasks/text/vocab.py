"""Tokenisation and vocabulary for text: fitted on the train split, carried as plain JSON.

scikit-learn's ``CountVectorizer`` does the tokenising (a regex, optional lowercasing) and
chooses the vocabulary (minimum document frequency, maximum size). What it learns is kept as a
list of tokens, so the served model rebuilds the same encoder from the model's metadata alone.

Ids: 0 is padding, 1 stands for every out-of-vocabulary token, 2.. are the vocabulary, most
frequent first. Encoded batches are one LongTensor (N, 1 + T): the length of each text in
column 0, its token ids after it, right-padded with 0 (the training loop takes one tensor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from sklearn.feature_extraction.text import CountVectorizer

from mltune.models.text_rnn import UNK

RESERVED = 2  # ids below this are PAD and UNK
TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]"  # words, and each punctuation mark on its own ("!")


class EmptyVocabularyError(ValueError):
    """No token passes ``min_freq`` on the training texts."""


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id mapping plus the tokenising rules that produced it."""

    tokens: tuple[str, ...]
    lowercase: bool = True
    token_pattern: str = TOKEN_PATTERN
    max_length: int = 200

    @classmethod
    def fit(cls, texts: Iterable[str], *, max_size: int, min_freq: int, lowercase: bool,
            max_length: int) -> Vocabulary:
        """The ``max_size`` most frequent tokens found in at least ``min_freq`` texts."""
        vectorizer = CountVectorizer(lowercase=lowercase, token_pattern=TOKEN_PATTERN,
                                     min_df=min_freq, max_features=max_size)
        try:
            counts = np.asarray(vectorizer.fit_transform(texts).sum(axis=0)).ravel()
        except ValueError as exc:  # "empty vocabulary" / "max_df corresponds to < documents"
            raise EmptyVocabularyError(str(exc)) from None
        names = vectorizer.get_feature_names_out()
        order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
        return cls(tuple(str(names[i]) for i in order), lowercase, TOKEN_PATTERN, max_length)

    def __len__(self) -> int:
        """Embedding rows needed: the tokens plus padding and out-of-vocabulary."""
        return len(self.tokens) + RESERVED

    @cached_property
    def _index(self) -> dict[str, int]:
        return {token: i + RESERVED for i, token in enumerate(self.tokens)}

    @cached_property
    def analyzer(self) -> Callable[[str], list[str]]:
        """text -> tokens, exactly as during fitting (no fitted state needed)."""
        return CountVectorizer(lowercase=self.lowercase,
                               token_pattern=self.token_pattern).build_analyzer()

    def ids(self, text: str) -> list[int]:
        """Token ids of one text, truncated to ``max_length``."""
        index = self._index
        return [index.get(token, UNK) for token in self.analyzer(text)[: self.max_length]]

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (N, 1 + T) LongTensor: lengths in column 0, padded ids after."""
        rows = [self.ids(text) for text in texts]
        width = max((len(row) for row in rows), default=0)
        packed = np.zeros((len(rows), 1 + max(width, 1)), dtype=np.int64)
        for i, row in enumerate(rows):
            packed[i, 0] = len(row)
            packed[i, 1:1 + len(row)] = row
        return torch.from_numpy(packed)

    def to_meta(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "lowercase": self.lowercase,
                "token_pattern": self.token_pattern, "max_length": self.max_length}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Vocabulary:
        return cls(tuple(meta["tokens"]), bool(meta["lowercase"]), str(meta["token_pattern"]),
                   int(meta["max_length"]))
