"""The edge's right of way to SQLite's single write lock.

SQLite lets one writer in at a time, and a writer that finds the lock taken sleeps and polls
(its busy handler). The worker, which starts its next transaction the moment it commits the
last, therefore won nearly every race against the SMTP edge's group commit: with the worker in
another process, ``serve`` still accepted only 52 mails/s and answered DATA in 0.66 s at p99.

:class:`WritePriority` is a pair of counters shared by the two processes of ``serve``: the edge
raises one while it waits for and holds a write transaction; the processing side raises the
other around each of its write transactions (``Database.session`` with ``write_priority``: the
worker's groups and its claims, the claims' renewals, the sender's and the scheduler's
writes), after waiting (at most ``max_wait``) while the edge's is raised, and the worker,
between two mails, ends its group while it is. The edge then waits for at most the one mail
being processed, or one short transaction. A write transaction the edge was not told of made it
meet SQLite's busy handler instead, which sleeps 1, 2, 5, 10 ms… between tries: the worker's
claims and the sender's writes, unannounced, put the p99 DATA→250 at 17–24 ms at 100 mails/s
(docs/performance.md, round AD).
PostgreSQL locks rows, not the database, and needs none of this; ``ingest`` and other gateways
do not take part (they keep SQLite's busy handler).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections.abc import Iterator


class WritePriority:
    def __init__(self, context=None) -> None:
        context = context or multiprocessing
        # Plain shared integers, no cross-process lock: a process killed while holding such a
        # lock would leave it held for ever. Only the edge's process writes ``_waiting`` and
        # only the processing side's writes ``_writing``, each process's threads one at a time
        # (a lock of its own); an aligned int is read and written whole.
        self._waiting = context.Value("i", 0, lock=False)
        self._writing = context.Value("i", 0, lock=False)
        self._edge_lock = threading.Lock()
        self._one_writer = threading.RLock()
        self._nesting = threading.local()  # how deep this thread is in ``writing``

    def __getstate__(self) -> dict:
        return {"_waiting": self._waiting, "_writing": self._writing}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._edge_lock = threading.Lock()
        self._one_writer = threading.RLock()
        self._nesting = threading.local()

    @contextlib.contextmanager
    def announce(self, max_wait: float = 1.0) -> Iterator[None]:
        """Held by the edge around a write transaction (wait for the lock, write, commit).

        It first waits for the worker to commit (bounded by ``max_wait``), polling every half
        millisecond: SQLite's own busy handler sleeps up to 25 ms a time and would add that to
        every SMTP reply."""
        with self._edge_lock:
            self._waiting.value += 1
        try:
            _wait_while(lambda: self._writing.value, max_wait)
            yield
        finally:
            with self._edge_lock:
                self._waiting.value -= 1

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held by the processing side around a write transaction: begun once the edge is
        done (``give_way``), announced until it ends. The process's threads (worker, sender,
        scheduler) take turns here, as they would for SQLite's lock, but without its busy
        handler's sleeps, which the edge would wait through: the edge waits for the one
        transaction in progress (re-entrant: a thread's nested transaction, which SQLite
        would make wait for its own lock, is not made to wait here as well)."""
        with self._one_writer:
            depth = getattr(self._nesting, "depth", 0)
            if not depth:  # a nested one: the edge already waits for the outer one
                self.give_way()
            self._nesting.depth = depth + 1
            self._writing.value += 1
            try:
                yield
            finally:
                self._writing.value -= 1
                self._nesting.depth = depth

    def worker_gone(self) -> None:
        """The processing process died (maybe inside a transaction, which SQLite rolled
        back): none of its writers is left."""
        self._writing.value = 0

    def wanted(self) -> bool:
        """True while the edge is waiting for the write lock or holds it."""
        return self._waiting.value > 0

    def give_way(self, max_wait: float = 0.25) -> None:
        """Wait until the edge is done (bounded, so a stuck edge never stops the worker)."""
        _wait_while(self.wanted, max_wait)


def _wait_while(condition, max_wait: float) -> None:
    """Poll ``condition`` every half millisecond until it is false or ``max_wait`` is over."""
    deadline = time.monotonic() + max_wait
    while condition() and time.monotonic() < deadline:
        time.sleep(0.0005)
