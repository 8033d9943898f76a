"""SQLite's WAL checkpoints, run by a thread of their own instead of inside a commit.

In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them back into
the database file and syncs it. By default SQLite runs one inside whichever commit takes the
WAL past 1,000 pages: under ``serve`` that was the edge's group commit, whose SMTP clients
then waited 15–20 ms more for their 250, once every 90 commits or so (docs/performance.md,
round F). ``serve`` therefore turns that off on its own connections
(:meth:`postdesk.store.db.Database.leave_checkpoints_to_a_thread`) and runs a
:class:`Checkpointer`:

* every ``interval`` while the WAL grows (every ``idle_interval`` while it does not), a
  ``PASSIVE`` checkpoint: it copies what no reader still needs and never blocks a writer;
* when the WAL still holds ``truncate_frames`` pages or more after that — a long reader or a
  sustained burst can keep passive checkpoints from ever catching up, and SQLite starts the
  WAL over only once one has — a ``TRUNCATE`` checkpoint. It makes new writers wait while it
  copies, so it waits at most ``busy_ms`` for readers and gives up otherwise (tried again on
  the next round): the WAL stays bounded at the price of a rare pause, as SQLite's own
  documentation describes for checkpoint starvation.

The thread is supervised (:mod:`postdesk.supervision`): should it die, it is started again.

Other processes on the same file (``ingest``, the ``scheduler`` daemon, the CLI) keep SQLite's
automatic checkpoints; checkpoints from several connections take turns on SQLite's checkpoint
lock, so they do not conflict.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from postdesk.supervision import Supervised, fault_point

log = logging.getLogger("postdesk.store")

INTERVAL = 0.05
IDLE_INTERVAL = 1.0
TRUNCATE_FRAMES = 10_000  # 40 MB of 4 KiB pages: ten times SQLite's automatic threshold
BUSY_MS = 200


class Checkpointer:
    def __init__(self, path: str, *, interval: float = INTERVAL,
                 idle_interval: float = IDLE_INTERVAL, truncate_frames: int = TRUNCATE_FRAMES,
                 busy_ms: int = BUSY_MS) -> None:
        self.path = path
        self.interval = interval
        self.idle_interval = idle_interval
        self.truncate_frames = truncate_frames
        self.busy_ms = busy_ms
        self.rounds = 0  # checkpoints that found new pages
        self.truncated = 0
        self._frames = 0
        self._stop = threading.Event()
        self._thread = Supervised("checkpointer", self._run, stopping=self._stop.is_set)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        connection = None
        wait = self.idle_interval
        while not self._stop.wait(wait):
            try:
                connection = connection or self._connect()
                wait = self.interval if self.checkpoint(connection) else self.idle_interval
                fault_point("checkpointer")
            except sqlite3.Error as exc:  # the next commits keep the WAL; try again later
                log.warning("WAL checkpoint failed: %s", exc)
                if connection is not None:
                    connection.close()
                connection, wait = None, self.idle_interval
        try:  # the writers are done: leave an empty WAL to the next start
            connection = connection or self._connect()
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed: %s", exc)
        if connection is not None:
            connection.close()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=self.busy_ms / 1000)
        connection.execute("PRAGMA wal_autocheckpoint=0")
        return connection

    def checkpoint(self, connection: sqlite3.Connection) -> bool:
        """One round; True when the WAL changed since the last one or still has pages to copy
        (writers are busy: come back soon)."""
        _, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= self.truncate_frames:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                self.truncated += 1
                self._frames = 0
                log.info("WAL truncated at %d pages (passive checkpoints fell behind)", frames)
                return True
            log.debug("WAL at %d pages; readers kept the truncating checkpoint out", frames)
        active = frames != self._frames or copied < frames
        if frames != self._frames:
            self.rounds += 1
        self._frames = frames
        return active
