"""``python -m bench.floor``: what the worker's CPU per mail would be if its statements cost only
the driver's own work — the floor under issue 24's CPU target for the statements it sends.

    python -m bench.floor --store sqlite --runs 3
    python -m bench.floor --store postgres --runs 3

The same stored 3 KB corpus mails as ``bench.compare`` (``bench.process._prepared``), on five
copies of one store:

1. **timed**: the worker processes them (warmed up, ``process_until_idle``); the CPU it spends
   inside SQLAlchemy's ``Connection`` calls (``execute``, ``scalar``, ``commit`` …: SQLAlchemy,
   the driver and, on SQLite, the database) is told apart from the rest (parsing, composing,
   the ORM session's own work …) by timing each outermost call;
2. **recorded**: the worker processes them again, its statements recorded as the driver
   received them (``before_cursor_execute``: the SQL text SQLAlchemy compiled and its bound
   parameters), with each connection's transactions (``begin``, ``commit``, ``rollback``, the
   pool's reset);
3. **replayed**: those statements sent again, in the same order, on DBAPI connections of their
   own (``Engine.raw_connection``, made as the worker's are), rows fetched, transactions ended
   as recorded, and nothing else: the CPU of the statements without SQLAlchemy.

Two more copies then measure a design rather than a bound, in alternating order:

4. **plain**: the worker processes them, nothing timed or recorded;
5. **thin**: the worker processes them with ``postdesk.store.db.execute``'s statements sent on
   the DB-API cursor (``bench.thin``): SQLAlchemy still compiles them and the column types
   still convert the values both ways, but SQLAlchemy's execution around the cursor is gone.
   The run stops unless it leaves as many rows in each table the worker writes, and as many
   processed mails, as the plain pass (counts: not the values).

The floor is (1)'s CPU outside ``Connection`` calls plus (3)'s CPU: the worker's cost if
SQLAlchemy's execution cost nothing and the same statements were sent. It is an estimate, not a
bound from below: ORM work done outside ``Connection`` calls stays in it, as do the pool's
checkouts and pre-pings; the replay's time includes making its own connections and fetching
every row where the worker often reads one: all of which make the floor a little high.
Timing the calls adds about a microsecond to each, counted inside them. Thin ÷ plain, by
contrast, is a design measured: what a hot path written on the cursor would gain on the whole
worker. Figures only: nothing passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import ExecuteStyle

from bench import thin
from bench.compare import SEEDS
from bench.process import _prepared
from bench.stats import median
from bench.stores import Stores, make_app
from postdesk.store.db import Database

# Connection's methods that run statements and begin and end transactions; an outermost call is
# timed whole (nested ones run inside it). A session's transaction begins and ends through the
# connection's ``_begin_impl``, ``_commit_impl`` and ``_rollback_impl``, not its public
# ``commit``: those are timed too (SQLAlchemy 2.0's names), or SQLite's commits, with their
# fsync, would count as the ORM's work.
TIMED = ("execute", "exec_driver_sql", "scalar", "scalars", "commit", "rollback", "close",
         "_begin_impl", "_commit_impl", "_rollback_impl")
WRITTEN = ("ticket", "contact", "message", "participant", "outbox", "event", "attachment")
BEGIN, COMMIT, ROLLBACK, STATEMENT = "begin", "commit", "rollback", "statement"


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.floor",
                                     description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--mails", type=int, default=500, help="stored mails processed per run")
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args(argv)


class ConnectionTimer:
    """CPU seconds spent inside the outermost calls of :data:`TIMED` on any ``Connection``,
    while installed (it wraps the class's methods, and puts them back at :meth:`remove`)."""

    def __init__(self) -> None:
        self.seconds, self.calls, self._depth = 0.0, 0, 0
        self._originals = {name: getattr(Connection, name) for name in TIMED}
        for name, original in self._originals.items():
            setattr(Connection, name, self._timed(original))

    def _timed(self, original):
        def timed(connection, *args, **kwargs):
            if self._depth:
                return original(connection, *args, **kwargs)
            self._depth += 1
            began = time.process_time()
            try:
                return original(connection, *args, **kwargs)
            finally:
                self.seconds += time.process_time() - began
                self.calls += 1
                self._depth -= 1
        return timed

    def remove(self) -> None:
        for name, original in self._originals.items():
            setattr(Connection, name, original)


class Recorder:
    """Every statement the engine's connections send, as the driver receives it, with their
    transactions' boundaries: ``(connection number, what, statement, parameters, many)``."""

    def __init__(self, engine) -> None:
        self.engine, self.log, self._numbers = engine, [], {}
        self._listeners = [("before_cursor_execute", self._statement), ("begin", self._begin),
                           ("commit", self._commit), ("rollback", self._rollback),
                           ("reset", self._reset)]
        for name, listener in self._listeners:
            event.listen(engine, name, listener)

    def remove(self) -> None:
        for name, listener in self._listeners:
            event.remove(self.engine, name, listener)

    def _number(self, dbapi_connection) -> int:
        return self._numbers.setdefault(id(dbapi_connection), len(self._numbers))

    def _statement(self, connection, _cursor, statement, parameters, context, _many) -> None:
        # The cursor's own method: an INSERT of several rows as one VALUES list
        # ("insertmanyvalues") comes with ``many`` true but is one ``execute``.
        many = context is not None and context.execute_style is ExecuteStyle.EXECUTEMANY
        self.log.append((self._number(connection.connection.dbapi_connection), STATEMENT,
                         statement, parameters, many))

    def _begin(self, connection) -> None:
        self.log.append((self._number(connection.connection.dbapi_connection), BEGIN,
                         connection.get_execution_options().get("postdesk_readonly", False),
                         None, False))

    def _commit(self, connection) -> None:
        self.log.append((self._number(connection.connection.dbapi_connection), COMMIT, None,
                         None, False))

    def _rollback(self, connection) -> None:
        self.log.append((self._number(connection.connection.dbapi_connection), ROLLBACK, None,
                         None, False))

    def _reset(self, dbapi_connection, connection_record, reset_state) -> None:  # noqa: ARG002
        self.log.append((self._number(dbapi_connection), ROLLBACK, None, None, False))

    def statements(self) -> int:
        return sum(1 for entry in self.log if entry[1] == STATEMENT)


def replay(log: list, engine, sqlite: bool) -> tuple[float, float]:
    """CPU seconds, and the kernel's share of them, to send ``log``'s statements again on DBAPI
    connections of ``engine``'s making, one per recorded connection, fetching every row."""
    pooled: dict[int, object] = {}
    connections: dict[int, object] = {}
    began, usage = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    for number, what, statement, parameters, many in log:
        connection = connections.get(number)
        if connection is None:
            pooled[number] = engine.raw_connection()
            connection = connections[number] = pooled[number].driver_connection
        if what == STATEMENT:
            cursor = connection.cursor()
            if many:
                cursor.executemany(statement, parameters)
            else:
                cursor.execute(statement, parameters)
            if cursor.description is not None:
                cursor.fetchall()
            cursor.close()
        elif what == BEGIN:
            # SQLite's writer begins with BEGIN IMMEDIATE (the dialect's do_begin, sent to no
            # cursor); a reader's BEGIN was recorded as a statement. psycopg begins by itself.
            if sqlite and not statement and not connection.in_transaction:
                connection.execute("BEGIN IMMEDIATE")
        elif what == COMMIT:
            connection.commit()
        else:
            connection.rollback()
    spent = time.process_time() - began
    system = resource.getrusage(resource.RUSAGE_SELF).ru_stime - usage.ru_stime
    for connection in pooled.values():
        connection.close()
    return spent, system


def one_run(stores: Stores, store: str, mails: int, folder: Path, number: int = 0) -> dict:
    """The five passes of the module's docstring on five copies of one stored corpus; the
    plain and thin passes in turns by ``number``, the run's."""
    source, app = _prepared(stores, store, "3k", mails, SEEDS, folder)
    app.db.dispose()
    copies = [stores.copy(source, label)
              for label in ("timed", "recorded", "replayed", "plain", "thin")]
    found: dict = {}
    try:
        timed_app = make_app(folder / "timed", copies[0])
        worker = timed_app.worker()
        worker.warm_up()
        timer = ConnectionTimer()
        try:
            began = time.process_time()
            done = worker.process_until_idle()
            total = time.process_time() - began
        finally:
            timer.remove()
        timed_app.db.dispose()

        recorded_app = make_app(folder / "recorded", copies[1])
        worker = recorded_app.worker()
        worker.warm_up()
        recorder = Recorder(recorded_app.db.engine)
        try:
            recorded = worker.process_until_idle()
        finally:
            recorder.remove()
        recorded_app.db.dispose()

        replay_app = make_app(folder / "replayed", copies[2])
        spent, system = replay(recorder.log, replay_app.db.engine, replay_app.db.is_sqlite)
        replay_app.db.dispose()
        if _rows(copies[1]) != _rows(copies[2]):  # the replay must have done the same work
            raise SystemExit(f"the replay left other rows: {_rows(copies[1])} against "
                             f"{_rows(copies[2])}")

        took, counts = {}, None
        for label in (("plain", "thin") if number % 2 == 0 else ("thin", "plain")):
            app = make_app(folder / label, copies[3 if label == "plain" else 4])
            worker = app.worker()
            worker.warm_up()
            with thin.installed() if label == "thin" else contextlib.nullcontext() as counted:
                began = time.process_time()
                processed = worker.process_until_idle()
                took[label] = (time.process_time() - began, processed)
            counts = counted or counts
            app.db.dispose()
        if _rows(copies[3]) != _rows(copies[4]):
            raise SystemExit(f"the thin pass left other rows: {_rows(copies[4])} against "
                             f"{_rows(copies[3])}")

        statements = recorder.statements()
        found = {"mails": done, "recorded_mails": recorded, "total": total * 1e3 / done,
                 "inside": timer.seconds * 1e3 / done,
                 "outside": (total - timer.seconds) * 1e3 / done,
                 "replayed": spent * 1e3 / recorded, "replayed_in_kernel": system * 1e3 / recorded,
                 "statements": statements / recorded,
                 "per_statement_inside": timer.seconds * 1e6 / (statements * done / recorded),
                 "per_statement_replayed": spent * 1e6 / statements}
        found["floor"] = found["outside"] + found["replayed"]
        found["plain"] = took["plain"][0] * 1e3 / took["plain"][1]
        found["thin"] = took["thin"][0] * 1e3 / took["thin"][1]
        found["thin_ratio"] = found["thin"] / found["plain"]
        found["thin_share"] = counts.thin / (counts.thin + counts.through_sqlalchemy)
    finally:
        for url in (source, *copies):
            stores.drop(url)
    return found


def _rows(url: str) -> dict[str, int]:
    """How many rows the tables the worker writes hold, and how many mails it finished."""
    database = Database(url, create=False)
    try:
        with database.engine.connect() as connection:
            found = {table: connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
                     for table in WRITTEN}
            found["processed"] = connection.exec_driver_sql(
                "SELECT count(*) FROM inbound WHERE status = 'processed'").scalar()
        return found
    finally:
        database.dispose()


ROWS = (("worker's CPU per mail", "total", "ms"),
        ("  inside SQLAlchemy's Connection calls", "inside", "ms"),
        ("  outside them", "outside", "ms"),
        ("statements per mail", "statements", ""),
        ("the same statements replayed on the driver alone", "replayed", "ms"),
        ("  of which in the kernel (system time)", "replayed_in_kernel", "ms"),
        ("CPU per statement inside Connection calls", "per_statement_inside", "µs"),
        ("CPU per statement replayed", "per_statement_replayed", "µs"),
        ("**floor**: outside + replayed", "floor", "ms"),
        ("worker's CPU per mail, nothing timed (plain)", "plain", "ms"),
        ("with execute's statements on the cursor (thin)", "thin", "ms"),
        ("  share of the statements sent on the cursor", "thin_share", ""),
        ("**thin ÷ plain**", "thin_ratio", ""))


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="postdesk-floor-") as work:
        stores = Stores(Path(work))
        try:
            for number in range(args.runs):
                runs.append(one_run(stores, args.store, args.mails, Path(work) / f"run-{number}",
                                    number))
                print(f"run {number + 1}: " + ", ".join(f"{key} {value:.3f}" for key, value
                                                       in runs[-1].items()), flush=True)
        finally:
            stores.close()
    print(f"\n{args.store}, {args.mails} mails of 3 KB, median of {args.runs} runs\n")
    print("| | median | min–max |\n|---|---|---|")
    for label, key, unit in ROWS:
        values = [run[key] for run in runs]
        print(f"| {label} | {median(values):.3f} {unit} | {min(values):.3f}–{max(values):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
