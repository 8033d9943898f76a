"""Engine and sessions: the one place that knows how to open SQLite and PostgreSQL well.

SQLite runs in WAL mode with ``synchronous=FULL`` and a busy timeout: every commit syncs the WAL
before it returns, so a mail answered 250 (and anything else committed) survives a power cut,
as RFC 5321 section 6.1 asks of a server that accepted a mail. Its write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade (pysqlite's own
transaction handling is switched off, as SQLAlchemy's documentation recommends). PostgreSQL
goes through psycopg 3 with pre-ping, so a restarted server is reconnected transparently.
Connection failures surface as :class:`postdesk.errors.TempFail` at the edges
(:mod:`postdesk.store.errors`).

Beside this module, ``store/`` keeps the other concerns of the database: ``clock`` (UTC
times), ``large`` (big values written and read in place), ``locks`` (advisory locks held to the
commit) and ``errors`` (what a database error means).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import urllib.parse
from collections.abc import Iterator

from sqlalchemy import LargeBinary, event, insert
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine

from postdesk.config import SQLITE_SCHEMES
from postdesk.errors import ConfigError


class StoreSession(Session):
    """postdesk's sessions. The store's session listeners (locks held, rows loaded in a
    transaction) are bound to this class, never to SQLAlchemy's ``Session``: importing postdesk
    leaves every other session of the process as it was."""


class Database:
    """An engine plus the session factories postdesk uses (write and read-only)."""

    def __init__(self, url: str, *, echo: bool = False, create: bool = True) -> None:
        """``create=False``: a SQLite file that does not exist is an error (see
        :func:`postdesk.store.errors.needs_init`), never created; only ``postdesk init``
        creates one."""
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = _make_engine(url, echo=echo, sqlite=self.is_sqlite)
        # PostgreSQL's readers run READ ONLY transactions (a write in one is refused), ended by
        # a COMMIT (``reader``).
        self._readonly = self.engine.execution_options(
            postdesk_readonly=True, **({} if self.is_sqlite else {"postgresql_readonly": True}))
        if self.is_sqlite:  # a reader's BEGIN, without the write lock; the dialect sees it begun
            event.listen(self._readonly, "begin", _sqlite_begin_deferred)
        self.auto_checkpoints = True
        # SQLite in ``serve``: the SMTP edge's right of way to the write lock
        # (``store.priority.WritePriority``), which every ``session`` of this process's
        # processing side (worker, sender, scheduler) gives before it begins and announces
        # until it ends. None elsewhere: writers then meet at SQLite's busy handler.
        self.write_priority = None
        if self.is_sqlite:
            event.listen(self.engine, "connect", self._sqlite_checkpoints)
            if not create and self.sqlite_path:
                event.listen(self.engine, "do_connect", _existing_file_only)

    @property
    def sqlite_path(self) -> str | None:
        """The database file of a SQLite store (None for PostgreSQL or an in-memory one)."""
        path = make_url(self.url).database if self.is_sqlite else None
        return path if path and path != ":memory:" else None

    def leave_checkpoints_to_a_thread(self) -> None:
        """This process's SQLite connections stop running WAL checkpoints inside their
        commits; a :class:`postdesk.store.checkpoints.Checkpointer` runs them instead. Pooled
        connections are closed so that every connection from now on is made this way."""
        if self.sqlite_path:
            self.auto_checkpoints = False
            self.engine.dispose()

    def _sqlite_checkpoints(self, dbapi_connection, _record) -> None:
        if not self.auto_checkpoints:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on error; with
        ``write_priority``, begun once the SMTP edge is done, and announced to it until the
        end."""
        priority = self.write_priority
        with priority.writing() if priority else contextlib.nullcontext(), \
                StoreSession(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    def edge_waits(self) -> bool:
        """Whether the SMTP edge waits for the write lock now (``write_priority``): a long
        write transaction of the processing side (a worker's group, a sweep's batch) commits
        what it has done and lets it in."""
        return self.write_priority is not None and self.write_priority.wanted()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction on a plain connection, without the ORM's session (the edge's
        group commit: SQLAlchemy Core statements only, at half the CPU of a session's)."""
        with self.engine.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session (no write lock on SQLite; a ``READ ONLY`` transaction on
        PostgreSQL). On PostgreSQL a block that ends without error ends its transaction with a
        ``COMMIT``, which changes nothing a read-only transaction could: psycopg drops every
        statement it has prepared on the connection at a ``ROLLBACK`` (a rollback may undo the
        schema they were prepared on), so the worker's reader of each batch's mails made its
        hot statements run unprepared, and be prepared again, after every batch."""
        with StoreSession(self._readonly, expire_on_commit=False) as session:
            yield session
            if not self.is_sqlite:
                session.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str, *, echo: bool, sqlite: bool) -> Engine:
    if sqlite:
        parsed = make_url(url)
        if parsed.drivername not in SQLITE_SCHEMES:  # config refuses them first
            raise ConfigError("database.url", f"the driver {parsed.drivername!r} is not supported",
                              'SQLite is opened through Python\'s sqlite3: "sqlite:///PATH"')
        parsed = parsed.set(drivername=f"sqlite+{_SQLiteImmediate.driver}")
        engine = create_engine(parsed, echo=echo, hide_parameters=True,
                               connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        return engine
    # A server that stops answering must not hold an SMTP session forever: bounded connect,
    # TCP keepalives and a TCP user timeout turn a hung database into an error (then 451).
    connect_args = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
                    "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 20000}
    return create_engine(url, echo=echo, hide_parameters=True, pool_pre_ping=True, pool_size=10,
                         max_overflow=20, pool_timeout=10, connect_args=connect_args)


def _existing_file_only(_dialect, _record, cargs, cparams) -> None:
    """Open the SQLite file read-write but never create it (an SQLite URI with ``mode=rw``)."""
    path = urllib.parse.quote(os.path.abspath(cargs[0]))
    cargs[0] = f"file:{path}?mode=rw"
    cparams["uri"] = True


def shown_url(url: str) -> str:
    """The database URL as messages may show it: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class _SQLiteImmediate(SQLiteDialect_pysqlite):
    """pysqlite whose transactions begin with ``BEGIN IMMEDIATE`` (its own transaction handling
    is off: ``_sqlite_connect``). This is the dialect's ``do_begin``, not the engine's ``begin``
    event of SQLAlchemy's recipe, which sent the statement through SQLAlchemy's whole execute
    path and made the engine dispatch its execute events around every statement: 4.4 % of a
    mail's instructions in the worker (docs/performance.md, round U). A reader's transaction
    is begun by its engine's event (``BEGIN``, no write lock) before this runs, which then has
    nothing to do."""

    driver = "postdesk_immediate"
    supports_statement_cache = True

    def do_begin(self, dbapi_connection) -> None:
        if not dbapi_connection.in_transaction:
            dbapi_connection.execute("BEGIN IMMEDIATE")


registry.register(f"sqlite.{_SQLiteImmediate.driver}", __name__, "_SQLiteImmediate")


def _sqlite_begin_deferred(connection) -> None:
    connection.exec_driver_sql("BEGIN")


def execute(session: Session, statement, params: dict | None = None):
    """Run a prebuilt Core ``statement`` on the session's connection, in its transaction.

    The worker's hot path uses this with module-level statements and ``bindparam`` values:
    ``session.execute`` builds, caches and post-processes each statement through the ORM, which
    costs several times the database's own work (measured in docs/performance.md). Pending ORM
    changes are flushed first, as ``session.execute``'s autoflush would. The ORM's identity map
    is not synchronised: use it for rows no loaded object needs to see change.
    """
    session.flush()
    connection = session.info.get(_CONNECTION) or session.connection()
    return connection.execute(statement, params or {})


_CONNECTION = "postdesk_connection"


@event.listens_for(StoreSession, "after_begin")
def _remember_connection(session: StoreSession, _transaction, connection: Connection) -> None:
    """The connection the session's innermost transaction has just begun on, for ``execute``
    (asking the session for it costs a walk through its transactions for every statement)."""
    session.info[_CONNECTION] = connection


@event.listens_for(StoreSession, "after_transaction_create")
@event.listens_for(StoreSession, "after_transaction_end")
def _forget_connection(session: StoreSession, _transaction) -> None:
    """A transaction begun or ended: the next statement asks the session, which begins a
    savepoint's ``SAVEPOINT`` when it is asked for its connection."""
    session.info.pop(_CONNECTION, None)


def insert_row(session: Session, model: type, values: dict) -> tuple:
    """Write a row of ``model``'s table with a prebuilt Core INSERT through ``execute``; returns
    it as written, every column but the binary ones (a mail's or a file's bytes are not kept),
    as a read-only record (``.id``, ``.text``...; a named tuple). No model object is built
    (SQLModel's constructor cost more than the INSERT) and nothing is added to the session:
    decide every value before.

    The database sends back only what it decides itself: the id and the columns with a server
    default. Every other column is what this INSERT wrote: the values given, with the table's
    Python-side defaults as SQLAlchemy applied them (``last_inserted_params``), None where it
    wrote nothing. Returning every column cost the driver a column description, a value to
    load and one to process for each, about 2 µs a column on PostgreSQL: 15 to 20 columns per
    INSERT, of values the caller had just sent (docs/performance.md, round Y)."""
    statement, record, taken = _insert_of(model)
    result = execute(session, statement, values)
    decided = result.one()
    written = result.last_inserted_params()
    return record._make([decided[taken[name]] if name in taken else written.get(name)
                         for name in record._fields])


@functools.cache
def _insert_of(model: type) -> tuple:
    """``model``'s INSERT returning what the database decides (the primary key and the columns
    with a server default), the record type of its rows, and where each returned column is."""
    table = model.__table__
    decided = [c for c in table.columns if c.primary_key or c.server_default is not None]
    record = collections.namedtuple(f"{model.__name__}Row", [
        c.key for c in table.columns if not isinstance(c.type, LargeBinary)])
    return (insert(table).returning(*decided), record,
            {column.key: index for index, column in enumerate(decided)})
