"""Fresh postdesk databases for the benchmarks, on SQLite and on PostgreSQL, cloned from a template.

A template is migrated and seeded once (the seed tickets #1..#N that the corpus replies name);
every timed run gets its own clone (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
PostgreSQL), so runs never see each other's rows. Every PostgreSQL database made here is
dropped by :meth:`Stores.close`. Also here: the ``postdesk.toml`` of a benchmark desk and the
``App`` built from it, exactly as ``postdesk serve`` builds its own.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from bench.corpus import DESK, seed_mails
from postdesk import config
from postdesk.mail.envelope import Envelope
from postdesk.runtime.app import App
from postdesk.store import migrate
from postdesk.store.db import Database

PG_ADMIN_URL = os.environ.get("POSTDESK_BENCH_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
KINDS = ("sqlite", "postgres")


def write_config(folder: Path, url: str, port: int = 0, extra: str = "") -> Path:
    """The benchmark desk: support@desk.test, outbound Maildir in ``folder`` unless ``extra``
    has its own ``[outbound]``; the default INFO logging."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "postdesk.toml"
    outbound = "" if "[outbound]" in extra else f'[outbound]\nfolder = "{folder / "outbound"}"\n'

    path.write_text(f'''[desk]
name = "Bench Desk"
address = "{DESK}"

[database]
url = "{url}"

[smtp]
listen = "127.0.0.1:{port}"

{outbound}
{extra}
''', encoding="utf-8")
    return path


def make_app(folder: Path, url: str, extra: str = "") -> App:
    return App(config.load(write_config(folder, url, extra=extra), environ={}))


def seed(app: App, count: int) -> None:
    """Open tickets #1..#count, one mail at a time, so ticket k belongs to seed mail k."""
    intake, worker = app.intake(), app.worker()
    for mail in seed_mails(count):
        intake.store(mail.raw, Envelope(mail.sender, (DESK,), "smtp", "127.0.0.1"))
        worker.process_until_idle()


class Stores:
    """Makes and cleans up the databases of one benchmark session under ``workdir``."""

    def __init__(self, workdir: Path, admin_url: str = PG_ADMIN_URL) -> None:
        self.workdir = workdir
        self.admin_url = admin_url
        self.prefix = f"postdesk_bench_{os.getpid()}"
        self._admin = None
        self._numbers = itertools.count(1)
        self._pg_made: list[str] = []
        self._templates: dict[tuple[str, int], str] = {}

    def template(self, kind: str, seeds: int) -> str:
        """The URL of a migrated database holding ``seeds`` seed tickets (made once)."""
        key = (kind, seeds)
        if key not in self._templates:
            url = self.empty(kind, f"tmpl{seeds}")
            app = make_app(self.workdir / f"tmpl-{kind}-{seeds}", url)
            seed(app, seeds)
            app.db.dispose()
            self._templates[key] = url
        return self._templates[key]

    def empty(self, kind: str, label: str = "db") -> str:
        """A new migrated database with no rows."""
        url = self._new(kind, label)
        database = Database(url)
        migrate.upgrade(database)
        database.dispose()
        return url

    def clone(self, kind: str, seeds: int, label: str = "run") -> str:
        """A copy of the template with ``seeds`` seed tickets, for one timed run."""
        return self.copy(self.template(kind, seeds), label)

    def copy(self, source: str, label: str = "copy") -> str:
        """A new database with the rows of ``source`` (which nobody may be writing to)."""
        if source.startswith("sqlite"):
            target = self.workdir / f"{label}-{next(self._numbers)}.db"
            _checkpoint(source)
            shutil.copyfile(source.removeprefix("sqlite:///"), target)
            return f"sqlite:///{target}"
        name = f"{self.prefix}_{label}_{next(self._numbers)}"
        self._admin_sql(f'CREATE DATABASE "{name}" TEMPLATE "{_db_name(source)}"')
        self._pg_made.append(name)
        return self._pg_url(name)

    def drop(self, url: str) -> None:
        """Forget one database now (the large sweep data sets are not kept to the end)."""
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
            return
        name = _db_name(url)
        self._admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self._pg_made:
            self._pg_made.remove(name)
        self._templates = {k: v for k, v in self._templates.items() if v != url}

    def close(self) -> None:
        for name in list(self._pg_made):
            self._admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._pg_made.clear()
        if self._admin is not None:
            self._admin.dispose()

    def _new(self, kind: str, label: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.workdir / f'{label}-{next(self._numbers)}.db'}"
        name = f"{self.prefix}_{label}_{next(self._numbers)}"
        self._admin_sql(f'CREATE DATABASE "{name}"')
        self._pg_made.append(name)
        return self._pg_url(name)

    def _pg_url(self, name: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def _admin_sql(self, sql: str) -> None:
        if self._admin is None:
            self._admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.exec_driver_sql(sql)


def _db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _checkpoint(url: str) -> None:
    """Fold the WAL into the main file so a plain copy of it is the whole database."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def versions(admin_url: str = PG_ADMIN_URL) -> dict[str, str]:
    """SQLite's and PostgreSQL's versions, for the report."""
    found = {"sqlite": sqlite3.sqlite_version}
    try:
        engine = sa.create_engine(admin_url)
        with engine.connect() as conn:
            found["postgres"] = conn.exec_driver_sql("SHOW server_version").scalar()
            found["postgres_settings"] = ", ".join(
                f"{name}={conn.exec_driver_sql(f'SHOW {name}').scalar()}"
                for name in ("fsync", "synchronous_commit", "shared_buffers"))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        found["postgres"] = f"unreachable: {exc.orig}"
    return found
