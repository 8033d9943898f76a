"""SQLite's write lock on a real file: a write transaction holds it from its first statement, a
read never takes it.

postdesk's SQLite dialect begins every transaction with ``BEGIN IMMEDIATE`` (two writers that
both read first would otherwise deadlock on the lock upgrade and one would fail); the store's
readers begin with a plain ``BEGIN``. Another process is played by a plain ``sqlite3``
connection that asks for the write lock without waiting.
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from postdesk import config
from postdesk.errors import ConfigError
from postdesk.store.db import Database


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'desk.db'}")
    with database.session() as session:
        session.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"))
    yield database
    database.dispose()


def others_can_write(db: Database) -> bool:
    other = sqlite3.connect(db.sqlite_path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        other.close()


def test_a_session_holds_the_write_lock_from_its_first_read(db):
    assert others_can_write(db)
    with db.session() as session:
        assert session.scalar(text("SELECT count(*) FROM note")) == 0
        assert not others_can_write(db)
    assert others_can_write(db)


def test_a_core_transaction_holds_the_write_lock_from_its_first_read(db):
    with db.transaction() as connection:
        connection.execute(text("SELECT count(*) FROM note"))
        assert not others_can_write(db)
    assert others_can_write(db)


def test_a_reader_never_takes_the_write_lock(db):
    with db.reader() as session:
        assert session.scalar(text("SELECT count(*) FROM note")) == 0
        assert others_can_write(db)
    # The same pooled connection then serves a writer, which takes the lock again.
    with db.session() as session:
        session.execute(text("SELECT 1"))
        assert not others_can_write(db)


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///desk.db", "sqlite+pysqlcipher:///desk.db"])
def test_another_sqlite_driver_is_refused_with_the_fix(url, tmp_path):
    with pytest.raises(ConfigError, match=r"database\.url: .*not supported.*sqlite:///PATH"):
        Database(url)
    config_file = tmp_path / "postdesk.toml"
    config_file.write_text(f'[database]\nurl = "{url}"\n')
    with pytest.raises(ConfigError, match=r"database\.url: .*not supported.*sqlite:///PATH"):
        config.load(config_file, environ={})
