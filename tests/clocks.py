"""A clock for tests of the parts that read the time (worker, sender, leases, IMAP poller):
it moves only when the test says so, so a test advances it instead of sleeping."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from postdesk.store.clock import utcnow


class Clock:
    """A wall clock (aware UTC, for ``clock=``) and a monotonic one (seconds, for
    ``monotonic=``), read from any thread; :meth:`advance` moves both, or one of them."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._wall = start or utcnow()
        self._seconds = 1000.0

    def now(self) -> datetime:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._seconds

    def advance(self, seconds: float, *, wall: bool = True, monotonic: bool = True) -> None:
        with self._lock:
            if wall:
                self._wall += timedelta(seconds=seconds)
            if monotonic:
                self._seconds += seconds
