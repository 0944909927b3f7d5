"""A search's own stop: asked for by a signal, a failed lane or a driver, acted on where it is
checked; one search's stop never stops another's."""

from __future__ import annotations

import os
import signal

import pytest

from mltune.core.interrupts import Stop, stop_on_signals


def test_a_stop_keeps_its_first_reason_and_raises_it_where_checked():
    stop = Stop()
    stop.check()  # nothing asked: goes on
    assert stop.request("SIGTERM") and not stop.request("another lane failed")
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        stop.check()
    assert Stop().reason is None  # another search's stop is its own


def test_a_signal_asks_the_searchs_stop_and_the_handler_is_put_back():
    before = signal.getsignal(signal.SIGTERM)
    stop, other = Stop(), Stop()
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.reason == "SIGTERM" and other.reason is None
    assert signal.getsignal(signal.SIGTERM) is before
