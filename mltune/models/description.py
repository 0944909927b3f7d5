"""What a network is told about the data: one small, frozen description per task.

Every network of a task, a built-in family's or the user's own (``model: nets.py:build``), is
built by a callable ``build(params, data)`` where ``data`` is the task's description below. It
reads as attributes (``data.classes``) and as a mapping (``data["classes"]``, ``dict(data)``).
The names are a contract with users' code: add fields, never rename them.

Each says what a batch looks like going in and what the network must give back; ``outputs`` is
the width of that answer (the dry forward before a search checks ``(2, outputs)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any


class DataDescription(Mapping[str, Any]):
    """The fields of a task's description, readable as attributes or as a mapping."""

    @property
    def outputs(self) -> int:
        """Values per row of the network's output."""
        raise NotImplementedError

    @property
    def answer(self) -> str:
        """What the task trains the output as, in words (for messages)."""
        raise NotImplementedError

    def _keys(self) -> tuple[str, ...]:
        return (*(f.name for f in fields(self)), "outputs")  # type: ignore[arg-type]

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


@dataclass(frozen=True, eq=True)
class ImageData(DataDescription):
    """``task: image``. In: float32 ``(N, channels, height, width)`` pixels on the data's own
    scale (0..16 for ``sklearn:digits``, 0..255 for image folders), not standardised: ``mean``
    and ``std`` (per channel, of the train split) are there to do it. Out: ``(N, classes)``
    logits."""

    channels: int
    height: int
    width: int
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def outputs(self) -> int:
        return self.classes

    @property
    def answer(self) -> str:
        return "one logit per class"


@dataclass(frozen=True, eq=True)
class TextData(DataDescription):
    """``task: text``. In: int64 ``(N, 1 + T)``: column 0 holds each text's length in tokens,
    the columns after it its token ids, right-padded with ``padding_idx``; ``T`` is at most
    ``max_length`` and varies between batches. Ids run from 0 to ``vocab_size - 1``;
    ``unknown_idx`` stands for every word outside the vocabulary. Out: ``(N, classes)``
    logits."""

    vocab_size: int
    padding_idx: int
    unknown_idx: int
    max_length: int
    classes: int

    @property
    def outputs(self) -> int:
        return self.classes

    @property
    def answer(self) -> str:
        return "one logit per class"


@dataclass(frozen=True, eq=True)
class TimeseriesData(DataDescription):
    """``task: timeseries``. In: float32 ``(N, T, features)`` past steps, oldest first, each
    column standardised by the train segment's mean and std; column 0 is the target, the others
    the covariates. ``T`` is ``max_window`` in training and ``window`` when served: read the
    last ``window`` steps (``x[:, -data.window:]``). Out: ``(N, horizon)`` forecasts of the
    target's next steps, on the same standardised scale."""

    window: int
    max_window: int
    features: int
    horizon: int

    @property
    def outputs(self) -> int:
        return self.horizon

    @property
    def answer(self) -> str:
        return "one forecast per step of the horizon"


@dataclass(frozen=True, eq=True)
class TabularData(DataDescription):
    """``task: tabular``. In: float32 ``(N, features)``: the table's columns encoded (numbers
    imputed and standardised, categories one-hot). Out: ``(N, classes)`` logits, or for a
    regression target (``classes`` is None) ``(N, 1)`` values on the target's standardised
    scale (mltune multiplies by the train split's std and adds its mean). A family whose
    networks are ensembles inside (``Family.members``: TabM) answers ``(N, k, outputs)``."""

    features: int
    classes: int | None

    @property
    def regression(self) -> bool:
        return self.classes is None

    @property
    def outputs(self) -> int:
        return 1 if self.classes is None else self.classes

    @property
    def answer(self) -> str:
        return "one standardised value" if self.classes is None else "one logit per class"
