"""WAL checkpoints on a real SQLite file: ``serve``'s connections leave them to a thread.

The commits of ``serve`` must not run a checkpoint (its fsync landed on an SMTP client's 250),
the :class:`Checkpointer` must copy the WAL back without blocking writers, bound it when
passive checkpoints cannot catch up, give up on a reader instead of waiting for it, and leave
an empty WAL when it stops.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from postdesk.store.checkpoints import Checkpointer
from postdesk.store.db import Database

PAGE = 4096


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'desk.db'}")
    with database.session() as session:
        session.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)"))
    yield database
    database.dispose()


def wal_bytes(db: Database) -> int:
    path = db.sqlite_path + "-wal"
    return os.path.getsize(path) if os.path.exists(path) else 0


def write_pages(db: Database, pages: int, per_commit: int = 20) -> None:
    """Commits that add about ``pages`` pages to the WAL (a 4 KiB blob is one overflow page)."""
    for _ in range(pages // per_commit):
        with db.session() as session:
            session.execute(text("INSERT INTO filler (body) VALUES (:body)"),
                            [{"body": os.urandom(PAGE)} for _ in range(per_commit)])


def db_bytes(db: Database) -> int:
    """The database file's size: pages reach it only through a checkpoint."""
    return os.path.getsize(db.sqlite_path)


def test_by_default_commits_checkpoint_and_the_wal_stays_small(db):
    write_pages(db, 3000)
    assert wal_bytes(db) < 1400 * PAGE  # SQLite's automatic checkpoint at 1,000 pages


def test_commits_left_to_a_thread_never_checkpoint(db):
    db.leave_checkpoints_to_a_thread()
    write_pages(db, 3000)
    assert wal_bytes(db) > 2900 * PAGE  # nothing started over
    assert db_bytes(db) < 100 * PAGE  # nothing copied back


def test_a_round_copies_the_wal_back_and_says_whether_to_come_back_soon(db):
    db.leave_checkpoints_to_a_thread()
    checkpointer = Checkpointer(db.sqlite_path)
    connection = checkpointer._connect()
    write_pages(db, 400)
    assert db_bytes(db) < 100 * PAGE
    assert checkpointer.checkpoint(connection) is True
    assert db_bytes(db) >= 400 * PAGE
    assert checkpointer.checkpoint(connection) is False  # nothing new: the idle pace
    connection.close()


def test_a_wal_that_grew_past_the_limit_is_truncated(db):
    db.leave_checkpoints_to_a_thread()
    checkpointer = Checkpointer(db.sqlite_path, truncate_frames=500)
    connection = checkpointer._connect()
    write_pages(db, 600)
    assert checkpointer.checkpoint(connection) is True
    assert checkpointer.truncated == 1 and wal_bytes(db) == 0
    write_pages(db, 100)  # the WAL starts over and the store still takes writes
    with db.reader() as session:
        assert session.execute(text("SELECT count(*) FROM filler")).scalar_one() == 700
    connection.close()


def test_a_long_reader_keeps_the_truncation_out_without_stopping_writers_for_long(db):
    db.leave_checkpoints_to_a_thread()
    write_pages(db, 600)
    reader = sqlite3.connect(db.sqlite_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM filler").fetchone()  # holds its snapshot
    write_pages(db, 100)  # frames the reader's snapshot does not have
    checkpointer = Checkpointer(db.sqlite_path, truncate_frames=500, busy_ms=100)
    connection = checkpointer._connect()
    begun = time.monotonic()
    assert checkpointer.checkpoint(connection) is True  # come back soon
    assert time.monotonic() - begun < 5
    assert checkpointer.truncated == 0 and wal_bytes(db) > 0
    write_pages(db, 20)  # writers were not left blocked
    reader.execute("COMMIT")
    assert checkpointer.checkpoint(connection) is True
    assert checkpointer.truncated == 1
    reader.close()
    connection.close()


def test_the_thread_keeps_up_with_a_writer_and_leaves_an_empty_wal(db):
    db.leave_checkpoints_to_a_thread()
    checkpointer = Checkpointer(db.sqlite_path, interval=0.01, idle_interval=0.01)
    checkpointer.start()
    writer = threading.Thread(target=write_pages, args=(db, 3000))
    writer.start()
    writer.join()
    deadline = time.monotonic() + 10
    while db_bytes(db) < 3000 * PAGE and time.monotonic() < deadline:
        time.sleep(0.02)
    assert db_bytes(db) >= 3000 * PAGE and checkpointer.rounds > 1  # copied while it ran
    checkpointer.stop()
    assert wal_bytes(db) == 0
    with db.reader() as session:
        assert session.execute(text("SELECT count(*) FROM filler")).scalar_one() == 3000


def test_a_thread_stopped_before_its_first_round_still_leaves_an_empty_wal(db):
    db.leave_checkpoints_to_a_thread()
    checkpointer = Checkpointer(db.sqlite_path)  # first round after a second
    checkpointer.start()
    write_pages(db, 200)
    checkpointer.stop()
    assert wal_bytes(db) == 0 and db_bytes(db) >= 200 * PAGE
