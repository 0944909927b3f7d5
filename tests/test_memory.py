"""Memory between trials: a finished trial's network and optimizer do not outlive it."""

from __future__ import annotations

import gc

import mltune
from mltune.models.cnn import ConvNet
from mltune.tracking.background import Finisher


def live_networks() -> int:
    return sum(isinstance(o, ConvNet) for o in gc.get_objects())


def test_no_network_outlives_its_trial(client):
    gc.collect()
    before = live_networks()
    alive_after_trial: list[int] = []

    def progress(outcome, best) -> None:
        # the networks something still holds: not those in cyclic garbage the collector has
        # yet to free (an exception MLflow's sqlite store catches keeps its frames, and the
        # logging job's networks with them, until a full collection: every 16 packs)
        gc.collect()
        alive_after_trial.append(live_networks() - before)

    spec = mltune.load_spec(None, {"max_evals": 12, "epochs": 1, "seed": 2, "algo": "rand",
                                   "device": "cpu", "pack": 1, "pruning": "none",
                                   "space.channels": 8, "space.hidden_size": 16})
    result = mltune.tune(spec, progress=progress)

    assert result.finished == 12
    # at most the networks whose models are still to be logged in the background (the
    # finisher's backlog, the one it logs, this trial's): never one per trial so far
    assert len(alive_after_trial) == 12
    assert max(alive_after_trial) <= Finisher().backlog + 2 < 12
    gc.collect()
    assert live_networks() == before
