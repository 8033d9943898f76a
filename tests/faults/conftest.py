"""Fixtures of the fault tests: a private PostgreSQL cluster we may stop and start at will.

The machine's shared server on 127.0.0.1:5432 is never touched: ``PgCluster`` runs
``initdb`` and ``postgres`` from PostgreSQL's own bin folder as the ``postgres`` user, in a
folder of the system temporary directory (pytest's ``tmp_path`` sits under a 0700 folder the
``postgres`` user cannot enter), on its own port and with its socket in that folder
(``-k``). It stops with SIGINT (PostgreSQL's fast shutdown) and is removed at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from postdesk.store import migrate
from postdesk.store.db import Database
from tests.faults.support import free_port


TEMPLATE = "postdesk_template"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PgCluster:
    """One private PostgreSQL cluster: ``start()``, ``stop()``, ``url`` of its postdesk database."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.user = pwd.getpwnam("postgres")
        self.root = Path(tempfile.mkdtemp(prefix="postdesk-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postdesk"
        self.template_ready = False
        os.chmod(self.root, 0o755)
        os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def _as_postgres(self, args: list[str], **kwargs):
        return dict(args=args, user=self.user.pw_uid, group=self.user.pw_gid,
                    extra_groups=[], cwd=self.root, **kwargs)

    def init(self) -> None:
        subprocess.run(**self._as_postgres(
            [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            check=True, capture_output=True, timeout=60))

    def start(self) -> None:
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(**self._as_postgres(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self.root), "-c", "fsync=off",
             "-c", "max_connections=100"],
            stdout=log, stderr=log, start_new_session=True))
        log.close()
        admin = sa.create_engine(self.url.rsplit("/", 1)[0] + "/postgres",
                                 poolclass=sa.pool.NullPool)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    with admin.connect():
                        return
                except sa.exc.OperationalError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("private PostgreSQL did not start: "
                                           + (self.root / "postgres.log").read_text()[-2000:])
                    time.sleep(0.05)
        finally:
            admin.dispose()

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, the port closes."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def processes(self) -> list[int]:
        """The postmaster and its children (backends are session leaders of their own)."""
        if self.proc is None:
            return []
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                children.append(int(stat.parent.name))
        return [self.proc.pid, *children]

    def freeze(self) -> list[int]:
        """SIGSTOP every process of the cluster: a server that hangs instead of refusing."""
        frozen = self.processes()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        return frozen

    def thaw(self, frozen: list[int]) -> None:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def create_database(self) -> str:
        """A fresh, migrated ``postdesk`` database (dropped first if it exists): a copy of a
        template database migrated once per cluster (Alembic costs far more than the copy)."""
        admin = sa.create_engine(self.url.rsplit("/", 1)[0] + "/postgres",
                                 isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with admin.connect() as conn:
                if not self.template_ready:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
                    conn.exec_driver_sql(f'CREATE DATABASE "{TEMPLATE}"')
                    database = Database(self.url.rsplit("/", 1)[0] + f"/{TEMPLATE}")
                    migrate.upgrade(database)
                    database.dispose()
                    self.template_ready = True
                conn.exec_driver_sql('DROP DATABASE IF EXISTS "postdesk" WITH (FORCE)')
                conn.exec_driver_sql(f'CREATE DATABASE "postdesk" TEMPLATE "{TEMPLATE}"')
        finally:
            admin.dispose()
        return self.url

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    """A running private PostgreSQL cluster for the whole session; tests may stop and start it."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed")
    cluster = PgCluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def private_pg(pg_cluster):
    """The private cluster, running, with a fresh migrated database; restarted if a test stopped it."""
    if pg_cluster.proc is None:
        pg_cluster.start()
    url = pg_cluster.create_database()
    yield pg_cluster, url
    if pg_cluster.proc is None:
        pg_cluster.start()
