"""PostgreSQL's readers (``Database.reader``): READ ONLY transactions, ended by a COMMIT.

psycopg prepares a statement on the server after a few runs of it on a connection, and drops
every statement it prepared at a ``ROLLBACK``. A reader used to end with one (the session was
closed without a commit), so the worker's reader of each batch's mails made the hot statements
run unprepared again after every batch, and be prepared again (docs/performance.md, round Y).
"""

from __future__ import annotations

import pytest
from sqlalchemy import exc, text

from postdesk.store.db import Database

_PREPARED = text("SELECT count(*) FROM pg_prepared_statements")


pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@pytest.fixture
def db(db_url):
    """An empty database (``db_url`` truncates the run's PostgreSQL database first)."""
    database = Database(db_url)
    yield database
    database.dispose()


def _prepared_now(session) -> int:
    return session.execute(_PREPARED).scalar_one()


def test_a_reader_keeps_the_statements_psycopg_prepared(db):
    with db.session() as session:
        for _ in range(8):  # past psycopg's prepare_threshold (5)
            session.execute(text("SELECT count(*) FROM contact WHERE address = :a"),
                            {"a": "nobody@example.test"}).scalar_one()
        assert _prepared_now(session) >= 1
        connection_pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with db.reader() as session:
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() == connection_pid
        assert session.execute(text("SELECT count(*) FROM contact")).scalar_one() == 0
    with db.session() as session:  # the same pooled connection, writing again after the reader
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() == connection_pid
        assert _prepared_now(session) >= 1
        session.execute(text("INSERT INTO contact (address, name, created_at) "
                             "VALUES ('a@example.test', 'A', now())"))
    with db.reader() as session:
        assert session.execute(text("SELECT count(*) FROM contact")).scalar_one() == 1


def test_a_reader_refuses_to_write(db):
    with pytest.raises(exc.DBAPIError, match="read-only transaction"):
        with db.reader() as session:
            session.execute(text("INSERT INTO contact (address, name, created_at) "
                                 "VALUES ('b@example.test', 'B', now())"))
    with db.reader() as session:
        assert session.execute(text("SELECT count(*) FROM contact "
                                    "WHERE address = 'b@example.test'")).scalar_one() == 0


def test_a_reader_that_fails_leaves_the_connection_usable(db):
    with pytest.raises(RuntimeError), db.reader() as session:
        session.execute(text("SELECT 1")).scalar_one()
        raise RuntimeError("the caller's own error")
    with db.session() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1
