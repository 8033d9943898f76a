"""Engine and sessions: the one place that knows how to open SQLite and PostgreSQL well.

SQLite runs in WAL mode with ``synchronous=FULL`` and a busy timeout: every commit syncs the WAL
before it returns, so a mail answered 250 (and anything else committed) survives a power cut,
as RFC 5321 section 6.1 asks of a server that accepted a mail. Its write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade (pysqlite's own
transaction handling is switched off, as SQLAlchemy's documentation recommends). PostgreSQL
goes through psycopg 3 with pre-ping, so a restarted server is reconnected transparently.
Connection failures surface as :class:`postdesk.errors.TempFail` at the edges.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import LargeBinary, bindparam, event, func, insert, select, update
from sqlalchemy.schema import Column
from sqlalchemy.engine import Connection, Engine, Row, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, create_engine

from postdesk.errors import TempFail


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every stored time is)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Any datetime as aware UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Database:
    """An engine plus the session factories postdesk uses (write and read-only)."""

    def __init__(self, url: str, *, echo: bool = False, create: bool = True) -> None:
        """``create=False``: a SQLite file that does not exist is an error (see
        :func:`needs_init`), never created; only ``postdesk init`` creates one."""
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = _make_engine(url, echo=echo, sqlite=self.is_sqlite)
        self._readonly = self.engine.execution_options(postdesk_readonly=True)
        self.auto_checkpoints = True
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
        """A write transaction: committed when the block ends, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction on a plain connection, without the ORM's session (the edge's
        group commit: SQLAlchemy Core statements only, at half the CPU of a session's)."""
        with self.engine.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session (no write lock on SQLite)."""
        with Session(self._readonly, expire_on_commit=False) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str, *, echo: bool, sqlite: bool) -> Engine:
    if sqlite:
        engine = create_engine(url, echo=echo, hide_parameters=True,
                               connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
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


def needs_init(exc: BaseException, url: str) -> str | None:
    """Why ``postdesk init`` must run first, when ``exc`` says the database has no postdesk
    schema (no SQLite file, no table, no PostgreSQL database), else None."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).lower()
    if "no such table" in text or getattr(orig, "sqlstate", None) == "42P01":
        return "it has no postdesk tables"
    if ("no such column" in text or "has no column named" in text
            or getattr(orig, "sqlstate", None) == "42703"):
        return "its schema is older than this version of postdesk"
    if getattr(orig, "sqlstate", None) == "3D000" or ('database "' in text
                                                       and '" does not exist' in text):
        return "the PostgreSQL database does not exist (create it first)"
    parsed = make_url(url)
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and "unable to open database file" in text:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            return f"there is no folder {folder} for the database file (create it)"
        if not os.path.exists(path):
            return f"there is no database file {path}"
    return None


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


def _sqlite_begin(connection) -> None:
    readonly = connection.get_execution_options().get("postdesk_readonly")
    connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def execute(session: Session, statement, params: dict | None = None):
    """Run a prebuilt Core ``statement`` on the session's connection, in its transaction.

    The worker's hot path uses this with module-level statements and ``bindparam`` values:
    ``session.execute`` builds, caches and post-processes each statement through the ORM, which
    costs several times the database's own work (measured in docs/performance.md). Pending ORM
    changes are flushed first, as ``session.execute``'s autoflush would. The ORM's identity map
    is not synchronised: use it for rows no loaded object needs to see change.
    """
    session.flush()
    return session.connection().execute(statement, params or {})


def insert_row(session: Session, model: type, values: dict) -> Row:
    """Write a row of ``model``'s table with a prebuilt Core INSERT through ``execute``; returns
    it as written, every column with its default but the binary ones (a mail's or a file's
    bytes are not read back), as a read-only ``Row`` (``.id``, ``.text``...). No model object
    is built (SQLModel's constructor cost more than the INSERT) and nothing is added to the
    session: decide every value before."""
    return execute(session, _insert_of(model), values).one()


@functools.cache
def _insert_of(model: type):
    table = model.__table__
    return insert(table).returning(*(c for c in table.columns
                                     if not isinstance(c.type, LargeBinary)))


# Past this size a stored mail or file is written and read around the drivers' extra copies
# (docs/performance.md, rounds G and H): SQLite copies a bound value twice before it is in the
# row, and assembles a value whole before the driver copies it out; PostgreSQL sends bytea as
# hex text, twice its size, unless asked for binary.
LARGE_VALUE = 1024 * 1024


def writes_in_place(connection: Connection) -> bool:
    """Whether big values go in through :func:`write_in_place` (SQLite) rather than bound."""
    return connection.dialect.name == "sqlite"


def write_in_place(connection: Connection, column: Column, row_id: int, data) -> None:
    """SQLite: put ``data`` (bytes or any buffer) into ``column`` of the row ``row_id``, in the
    caller's transaction, without a copy: the value is made a zeroblob of the right length, then
    filled through incremental blob I/O. This holds only because the big columns are the last
    of their tables (migration 0006): SQLite builds any other zeroblob whole in memory."""
    table = column.table
    connection.execute(update(table).where(table.c.id == row_id)
                       .values({column.key: func.zeroblob(len(data))}))
    driver = connection.connection.driver_connection
    with driver_errors(connection), driver.blobopen(table.name, column.name, row_id) as blob:
        blob.write(data)


def read_large(connection: Connection, column: Column, row_id: int) -> bytes:
    """The value of ``column`` in the row ``row_id`` with one copy in memory, not two or three:
    on SQLite through incremental blob I/O, on PostgreSQL in binary (b"" when NULL or no row)."""
    table = column.table
    driver = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        present = connection.execute(select(column.is_not(None)).where(table.c.id == row_id))
        if not present.scalar():
            return b""
        with driver_errors(connection), driver.blobopen(table.name, column.name, row_id,
                                                        readonly=True) as blob:
            return blob.read()
    query = select(column).where(table.c.id == bindparam("row_id"))
    with driver_errors(connection), driver.cursor(binary=True) as cursor:
        cursor.execute(str(query.compile(dialect=connection.dialect)), {"row_id": row_id})
        found = cursor.fetchone()
    return bytes(found[0]) if found and found[0] is not None else b""


@contextlib.contextmanager
def driver_errors(connection: Connection) -> Iterator[None]:
    """Around calls made on the driver's own connection: its errors are raised as SQLAlchemy
    raises them (``OperationalError`` for a full disk or a lost server...), so that
    :func:`is_unavailable` and :func:`temp_fail_on_outage` judge them as they judge the rest."""
    error = connection.dialect.loaded_dbapi.Error
    try:
        yield
    except error as exc:
        raise DBAPIError.instance(None, None, exc, error) from exc


# PostgreSQL's answers when a write met another transaction's: unique_violation (both wrote the
# same key; the second waited for the first's commit), serialization_failure, deadlock_detected.
_CONFLICTS = frozenset({"23505", "40001", "40P01"})


def held_locks(session: Session) -> set[str]:
    """The names of the locks this session's transaction holds: the row locks of
    ``tickets.get_for_update`` (``ticket:<id>``) and the advisory locks below. A commit gives
    them all back; a rolled-back savepoint gives back those taken inside it, and since the set
    does not say which, it is emptied then (taking a lock held already costs a query, no harm)."""
    return session.info.setdefault(_HELD_LOCKS, set())


class LockBusy(Exception):
    """A lock asked for without waiting (``nowait_locks``) is held by another transaction."""


def nowait_locks(session: Session) -> None:
    """From now on, ``session`` never waits for an advisory lock: ``LockBusy`` instead. The
    scheduler's sweeps lock tickets before addresses while workers lock addresses before
    tickets; a sweep that waited could deadlock with a worker, one that skips cannot."""
    session.info[_NOWAIT] = True


def lock_until_commit(session: Session, name: str) -> None:
    """Hold a lock named ``name`` until the transaction ends, so that another transaction
    asking for the same name waits for this one's commit (a PostgreSQL advisory lock). SQLite
    needs none: its write transactions begin with ``BEGIN IMMEDIATE`` and run one at a time.
    A name already locked in this transaction costs no query."""
    if session.get_bind().dialect.name != "postgresql":
        return
    held = held_locks(session)
    if name in held:
        return
    digest = hashlib.sha256(name.encode()).digest()
    key = {"key": int.from_bytes(digest[:8], "big", signed=True)}
    if session.info.get(_NOWAIT):
        if not session.execute(_TRY_ADVISORY_LOCK, key).scalar():
            raise LockBusy(f"{name} is held by another transaction")
    else:
        session.execute(_ADVISORY_LOCK, key)
    held.add(name)


def lock_address(session: Session, address: str) -> None:
    """Hold the lock of one mail address until the transaction ends: the limits that count
    what was received from it (the inbound flood limit) or sent to it (automatic replies) take
    it before they count, so that several workers never pass a limit together."""
    lock_until_commit(session, f"address:{address.lower()}")


_ADVISORY_LOCK = select(func.pg_advisory_xact_lock(bindparam("key")))
_TRY_ADVISORY_LOCK = select(func.pg_try_advisory_xact_lock(bindparam("key")))
_HELD_LOCKS = "postdesk_held_locks"
_NOWAIT = "postdesk_nowait_locks"


@event.listens_for(OrmSession, "after_commit")
def _forget_locks_at_commit(session: OrmSession) -> None:
    if not session.in_nested_transaction():  # releasing a savepoint keeps the locks
        session.info.pop(_HELD_LOCKS, None)


@event.listens_for(OrmSession, "after_soft_rollback")
def _forget_locks_at_rollback(session: OrmSession, _previous) -> None:
    session.info.pop(_HELD_LOCKS, None)


def is_conflict(exc: BaseException) -> bool:
    """True when a write failed because a concurrent transaction wrote first (PostgreSQL; SQLite
    has one writer at a time, so this never happens there): doing the work again sees what the
    other one committed."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _CONFLICTS


def is_unavailable(exc: BaseException) -> bool:
    """True when a database error means "cannot reach or write the store right now"."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@contextlib.contextmanager
def temp_fail_on_outage(what: str) -> Iterator[None]:
    """Turn a store outage into :class:`TempFail` so the edge answers "try again later"."""
    try:
        yield
    except (OperationalError, DBAPIError, OSError) as exc:
        if isinstance(exc, OSError) or is_unavailable(exc):
            raise TempFail(f"{what}: {_short(exc)}") from exc
        raise


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
