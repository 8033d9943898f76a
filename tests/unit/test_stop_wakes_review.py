"""Review of serve's stop: a stop that lands between a loop's look at ``stop`` and its
``wake.clear()`` had its wake-up drained by that clear, and the loop then slept a whole poll
interval before it saw the stop (worker and sender alike)."""

from __future__ import annotations

import threading

import pytest

from postdesk.gateway.worker import Worker
from postdesk.runtime.parts import Parts

POLL = """
[worker]
poll_interval = "10m"

[outbound]
poll_interval = "10m"
"""


class RacingWake(threading.Event):
    """The stop (``stop.set()`` then a ring, as ``Parts.stop`` does it) lands just before the
    loop's first ``clear``, which drains the ring. Records the waits longer than a moment
    instead of sleeping them."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop
        self.long_waits: list[float] = []

    def clear(self) -> None:
        if not self.stop.is_set():
            self.stop.set()
            self.set()
        super().clear()

    def wait(self, timeout=None) -> bool:
        if timeout is None or timeout > 1:
            self.long_waits.append(timeout)
            return super().wait(0)
        return super().wait(timeout)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("part", ["worker", "sender"])
def test_a_stop_drained_by_the_loops_clear_still_ends_it_at_once(make_app, monkeypatch, part):
    monkeypatch.setattr(Worker, "warm_up", lambda self: None)
    app = make_app(POLL)
    stop = threading.Event()
    wake = RacingWake(stop)
    parts = Parts(app, worker=part == "worker", sender=part == "sender", scheduler=False,
                  stop_event=stop, worker_wake=wake if part == "worker" else threading.Event())
    if part == "sender":
        parts.sender_wake = wake
    parts.start()
    for thread in parts.threads:
        thread.join(timeout=30)
    parts.stop()
    assert wake.long_waits == []
