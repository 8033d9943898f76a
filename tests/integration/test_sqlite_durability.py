"""Every SQLite connection postdesk opens syncs each commit (``synchronous=FULL``).

A 250, an ``ingest`` exit 0 or an IMAP \\Seen flag follows a commit; with ``synchronous=NORMAL``
in WAL mode a power cut could still take that commit back. Real files, every way a connection
is made: write sessions, read-only sessions, and the connections made again after ``serve``
leaves checkpoints to a thread.
"""

from __future__ import annotations

from sqlalchemy import text

from postdesk.store.db import Database

FULL = 2


def settings(session) -> tuple:
    return tuple(session.execute(text(f"PRAGMA {name}")).scalar_one()
                 for name in ("journal_mode", "synchronous", "foreign_keys", "wal_autocheckpoint"))


def test_write_and_read_sessions_sync_every_commit(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'desk.db'}")
    try:
        with db.session() as session:
            assert settings(session) == ("wal", FULL, 1, 1000)
        with db.reader() as session:
            assert settings(session) == ("wal", FULL, 1, 1000)
    finally:
        db.dispose()


def test_connections_without_automatic_checkpoints_still_sync_every_commit(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'desk.db'}")
    try:
        with db.session() as session:
            session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        db.leave_checkpoints_to_a_thread()
        with db.session() as session:
            assert settings(session) == ("wal", FULL, 1, 0)
            session.execute(text("INSERT INTO t DEFAULT VALUES"))
        with db.reader() as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    finally:
        db.dispose()
