"""Shared fixtures: a fresh postdesk database on SQLite and on PostgreSQL, settings, an App.

PostgreSQL runs on 127.0.0.1:5432 on these machines (trust auth, user postgres). Each test run
creates its own database, named after the process, and drops it at the end; each test empties the
tables and restarts their sequences so ticket numbers start at 1. Set POSTDESK_TEST_PG_URL to use
another server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from postdesk import config
from postdesk.runtime.app import App
from postdesk.store import migrate
from postdesk.store.db import Database
from postdesk.store.models import SQLModel

PG_ADMIN_URL = os.environ.get("POSTDESK_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def migrated_pg_database() -> Iterator[str]:
    """A new migrated PostgreSQL database, as its URL; dropped when the block ends."""
    name = f"postdesk_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc.orig}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        database = Database(url)
        migrate.upgrade(database)
        database.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL database for this test run, migrated once, dropped at the end."""
    with migrated_pg_database() as url:
        yield url


@pytest.fixture(autouse=True)
def _no_serve_left_behind():
    """After each test, kill what is left of the ``postdesk serve`` processes it started
    (``tests.faults.support.Serve``), so that nothing keeps working on a later test's store."""
    yield
    support = sys.modules.get("tests.faults.support")
    if support is not None:
        support.kill_leftovers()


_SEQUENCES = """
    SELECT pg_get_serial_sequence(quote_ident(table_name), column_name)
    FROM information_schema.columns
    WHERE table_schema = 'public'
      AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL
"""
_resets: dict[str, str] = {}


def _truncate(url: str) -> None:
    """Empty every table and restart every id sequence at 1, as ``TRUNCATE ... RESTART
    IDENTITY`` does. DELETE in child-first order plus ``setval`` costs ~0.06 s on these small
    tables; TRUNCATE costs ~0.7 s, as it makes and syncs new files for all 15 tables and
    their sequences, and it ran before every PostgreSQL test."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if url not in _resets:
                sequences = sorted(conn.exec_driver_sql(_SEQUENCES).scalars())
                deletes = "".join(f'DELETE FROM "{table.name}";'
                                  for table in reversed(SQLModel.metadata.sorted_tables))
                setvals = ", ".join(f"setval('{seq}', 1, false)" for seq in sequences)
                _resets[url] = deletes + (f"SELECT {setvals}" if setvals else "")
            conn.exec_driver_sql(_resets[url])
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """An empty SQLite store migrated once per run; tests get copies (Alembic costs ~0.3 s)."""
    path = tmp_path_factory.mktemp("migrated") / "postdesk.db"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database)
    database.dispose()  # checkpoints the WAL: the one file is the whole store
    return path


def fresh_sqlite(template: Path, folder: Path) -> str:
    """A copy of the migrated store in ``folder``, as its URL."""
    path = folder / "postdesk.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """A migrated, empty database: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return fresh_sqlite(request.getfixturevalue("migrated_sqlite"), tmp_path)
    url = request.getfixturevalue("pg_url")
    _truncate(url)
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_db_url(request, tmp_path_factory):
    """A migrated database of one test module's own, on each store, for data that the module
    builds once and its tests only read (a test that writes takes ``db_url``)."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("module")
        yield fresh_sqlite(request.getfixturevalue("migrated_sqlite"), folder)
    else:
        with migrated_pg_database() as url:
            yield url


@pytest.fixture
def sqlite_url(tmp_path, migrated_sqlite):
    return fresh_sqlite(migrated_sqlite, tmp_path)


def write_config(folder: Path, db_url: str, extra: str = "") -> Path:
    """A postdesk.toml for tests: desk at support@desk.test, outbound Maildir in ``folder``."""
    path = folder / "postdesk.toml"
    outbound = "" if "[outbound]" in extra else f'[outbound]\nfolder = "{folder / "outbound"}"\n'
    path.write_text(f'''
[desk]
name = "Test Desk"
address = "support@desk.test"

[database]
url = "{db_url}"

[smtp]
listen = "127.0.0.1:0"

{outbound}
{extra}
''', encoding="utf-8")
    return path


@pytest.fixture
def database(db_url):
    """A ``Database`` on the test's store, disposed at the end."""
    found = Database(db_url)
    yield found
    found.dispose()


@pytest.fixture
def make_app(tmp_path, db_url):
    """Build an App on the test database; ``make_app(extra_toml)``."""
    apps = []

    def build(extra: str = "") -> App:
        path = write_config(tmp_path, db_url, extra)
        app = App(config.load(path, environ={}))
        apps.append(app)
        return app

    yield build
    for app in apps:
        if "db" in app.__dict__:
            app.db.dispose()
