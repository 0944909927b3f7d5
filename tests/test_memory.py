"""Memory between trials: a finished trial's network and optimizer do not outlive it."""

from __future__ import annotations

import gc

import mltune
from mltune.models.cnn import ConvNet


def live_networks() -> int:
    return sum(isinstance(o, ConvNet) for o in gc.get_objects())


def test_no_network_outlives_its_trial(client):
    gc.collect()
    before = live_networks()
    alive_after_trial: list[int] = []

    def progress(outcome, best) -> None:
        alive_after_trial.append(live_networks() - before)

    spec = mltune.load_spec(None, {"max_evals": 5, "epochs": 1, "seed": 2, "algo": "rand",
                                   "device": "cpu"})
    result = mltune.tune(spec, progress=progress)

    assert result.finished == 5
    # at most this trial's network (its model may still be logging in the background) and
    # the previous one's: never one per trial so far
    assert len(alive_after_trial) == 5 and max(alive_after_trial) <= 2
    gc.collect()
    assert live_networks() == before
