"""The worker with its prebuilt statements sent on the DB-API cursor: a measuring instrument for
``bench.floor``, not a part of postdesk (docs/performance.md, round AE, says why it is not one).

While :func:`installed` is active, every module of postdesk that runs statements through
``postdesk.store.db.execute`` runs them through :func:`_thin` instead. What SQLAlchemy still
does: it compiles each statement, once per statement, dialect and set of parameter names
(``ClauseElement.compile``), and the column types convert every value both ways (their
``bind_processor`` and ``result_processor`` for the dialect). What goes: SQLAlchemy's execution
around the cursor — the statement's cache key, the execution context, the result object and its
rows, the engine's events. Rows come back as named tuples with the same fields, and a database
error as the same SQLAlchemy exception class, so the worker runs unchanged. A statement it does
not take (a list of parameter sets, an expanding ``IN``, a Python-side default that is not a
plain value) goes through SQLAlchemy as before, and is counted.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import sys
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError

from postdesk.store import db


class _Unsupported(Exception):
    """A statement the thin path does not take."""


class Counts:
    """How many statements went to the cursor, and how many through SQLAlchemy."""

    def __init__(self) -> None:
        self.thin = self.through_sqlalchemy = 0


@contextlib.contextmanager
def installed() -> Iterator[Counts]:
    """Route postdesk's ``execute`` through the cursor until the block ends."""
    original, counts = db.execute, Counts()
    compiled: dict[tuple, _Statement | None] = {}

    def thin(session, statement, params=None):
        if params is None or isinstance(params, dict):
            params = params or {}
            session.flush()
            connection = session.info.get(db._CONNECTION) or session.connection()  # noqa: SLF001
            dialect = connection.dialect
            key = (statement, dialect.name, tuple(params))
            if key not in compiled:
                try:
                    compiled[key] = _Statement(statement, dialect, params)
                except _Unsupported:
                    compiled[key] = None
            prepared = compiled[key]
            if prepared is not None:
                counts.thin += 1
                return prepared.run(connection, params)
        counts.through_sqlalchemy += 1
        return original(session, statement, params)

    modules = [module for name, module in list(sys.modules.items())
               if name.startswith("postdesk") and getattr(module, "execute", None) is original]
    for module in modules:
        module.execute = thin
    try:
        yield counts
    finally:
        for module in modules:
            module.execute = original


class _Statement:
    """One statement compiled for one dialect and one set of parameter names."""

    def __init__(self, statement, dialect, params: dict) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(params))
        binds = compiled.binds
        if any(bind.expanding for bind in binds.values()):
            raise _Unsupported
        self.sql, self.positional, self.dialect = compiled.string, compiled.positional, dialect
        self.names = list(compiled.positiontup) if self.positional else list(binds)
        self.defaults = {}
        for column, default in (*((c, c.default) for c in compiled.insert_prefetch),
                                *((c, c.onupdate) for c in compiled.update_prefetch)):
            if default is None or not default.is_scalar:
                raise _Unsupported
            self.defaults[column.key] = default.arg
        # The values written into the statement (a status compared with, a LIMIT); a required
        # parameter the caller left out is a KeyError at ``run``, never a NULL sent.
        self.fixed = {name: bind.value for name, bind in binds.items()
                      if name not in params and name not in self.defaults and not bind.required}
        self.processors = {}
        for name, bind in binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor
        self.record, self.results = None, None
        # A SELECT's columns, or what DML returns; their result processors are asked for at the
        # first run, with the type codes of the cursor's description, as SQLAlchemy does
        # (psycopg's numeric types choose their conversion by them).
        self.columns = list(statement.exported_columns)
        if self.columns:
            self.record = _record(tuple(column.key for column in self.columns))

    def run(self, connection, params: dict):
        values = {**self.fixed, **params}
        for key, value in self.defaults.items():
            values.setdefault(key, value)
        processors = self.processors
        converted = {name: processors[name](values[name]) if name in processors else values[name]
                     for name in self.names}
        sent = [converted[name] for name in self.names] if self.positional else converted
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, sent)
            rows = None
            if self.record is not None:
                if self.results is None:
                    self.results = [
                        column.type.dialect_impl(self.dialect).result_processor(
                            self.dialect, description[1])
                        for column, description in zip(self.columns, cursor.description)]
                make, results = self.record._make, self.results
                rows = [make([process(value) if process else value
                              for process, value in zip(results, row)])
                        for row in cursor.fetchall()]
            return _Result(rows, cursor.rowcount, values)
        except self.dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(self.sql, sent, error, self.dialect.loaded_dbapi.Error,
                                      hide_parameters=connection.engine.hide_parameters,
                                      dialect=self.dialect) from error
        finally:
            cursor.close()


@functools.cache
def _record(keys: tuple[str, ...]) -> type:
    """A named tuple of ``keys`` that also answers ``_mapping``, as SQLAlchemy's rows do."""
    base = collections.namedtuple("ThinRow", keys, rename=True)
    return type("ThinRow", (base,), {"__slots__": (),
                                     "_mapping": property(lambda row: row._asdict())})


class _Result:
    """What postdesk asks of a statement's result."""

    def __init__(self, rows: list | None, rowcount: int, values: dict) -> None:
        self.rows, self.rowcount, self.values = rows or [], rowcount, values

    def __iter__(self):
        return iter(self.rows)

    def first(self):
        return self.rows[0] if self.rows else None

    def one(self):
        if len(self.rows) != 1:
            raise ValueError(f"{len(self.rows)} rows where one was expected")
        return self.rows[0]

    def all(self) -> list:
        return list(self.rows)

    def scalar(self):
        return self.rows[0][0] if self.rows else None

    def scalars(self) -> list:
        return [row[0] for row in self.rows]

    def last_inserted_params(self) -> dict:
        return self.values
