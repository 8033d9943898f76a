"""Tools shared by the fault tests: a ``postdesk serve`` we can kill, a store we can read, a clock.

Everything here talks to loopback only, bounds every wait, and cleans up what it started.
``Serve`` runs the real ``postdesk`` command in a subprocess on a fixed free port (so a
restart after SIGKILL listens where the clients already send); ``Store`` reads the database
directly with SQLAlchemy, because counting 2,000 mails through ``tickets show`` would take
minutes; ``peak_rss_growth`` measures the memory one call needed (Linux ``clear_refs``).
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from postdesk import config
from postdesk.runtime.app import App
from postdesk.runtime.processing import READY_SECONDS
from postdesk.store import migrate
from postdesk.store.db import Database
from tests.conftest import write_config
from tests.helpers import run_cli, wait_until  # noqa: F401 - shared with the fault tests

POSTDESK = [sys.executable, "-m", "postdesk"]
REPO = Path(__file__).resolve().parents[2]
MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.I | re.M)
# ``serve`` listens once its processing child is ready, or READY_SECONDS after starting it
# without (it then accepts mail anyway); its own start-up comes first. Waiting READY_SECONDS
# in all raced serve's own bound: at a load average of 10 on 2 cores a niced child took 51 s
# to start its threads, and the test gave up while serve still rightly waited for it.
# A hang guard, not a measure: a start returns as soon as the port answers.
STARTS_WITHIN = 2 * READY_SECONDS


_GROUPS: dict[int, Path] = {}  # group of each serve this process started -> its folder


def kill_leftovers() -> None:
    """SIGKILL what is left of every ``Serve`` this process started (run after each test).

    Each serve runs in its own process group: the serve, its processing child and the child's
    resource tracker. A test's own kills reach the serve only (that is what they test); after
    the test, a child that outlived its serve (one whose serve was killed while it was still
    starting) must not go on polling a database that later tests use. Only processes of that
    group working in that serve's folder are killed: a group's number can be reused."""
    groups = dict(_GROUPS)
    _GROUPS.clear()
    if not groups:
        return
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            group = int(stat.read_text().rsplit(")", 1)[1].split()[2])
            if group in groups and Path(stat.parent, "cwd").resolve() == groups[group]:
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def desk_config(folder: Path, db_url: str, extra: str = "", port: int | None = None) -> Path:
    """tests.conftest's postdesk.toml, listening on ``port`` (a fixed one, for restarts)."""
    path = write_config(folder, db_url, extra)
    if port is not None:
        text = path.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
        path.write_text(text)
    return path


class Serve:
    """``postdesk serve`` in a subprocess: start, SIGKILL, restart, read its log."""

    def __init__(self, folder: Path, db_url: str, extra: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.config = desk_config(folder, db_url, extra, self.port)
        self.extra_env = env or {}
        self.env = {**os.environ, **self.extra_env}
        self.log = folder / "serve.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def run(self, *args: str, input: bytes | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """``postdesk ARGS`` on this desk: in-process (click's runner), but ``ingest`` in a real
        process, the way an MTA runs it, and every command when ``env`` holds more than
        ``POSTDESK_*`` settings (e.g. a ``PYTHONPATH`` that changes the interpreter)."""
        if (args and args[0] == "ingest") or any(not key.startswith("POSTDESK_")
                                                 for key in self.extra_env):
            result = subprocess.run([*POSTDESK, "--config", str(self.config), *args],
                                    input=input, capture_output=True, timeout=timeout,
                                    cwd=self.folder, env=self.env)
        else:
            result = run_cli("--config", str(self.config), *args, input=input, cwd=self.folder,
                             env=self.extra_env)
        if check and result.returncode != 0:
            raise AssertionError(f"postdesk {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.decode(errors='replace')}")
        return result

    def start(self, *flags: str, timeout: float = STARTS_WITHIN,
              log_level: str | None = None) -> None:
        level = ["--log-level", log_level] if log_level else []
        with self.log.open("ab") as handle:
            handle.write(f"\n=== start {self.starts + 1} {' '.join(flags)} ===\n".encode())
            self.proc = subprocess.Popen([*POSTDESK, "--config", str(self.config), *level,
                                          "serve", *flags],
                                         stdout=handle, stderr=handle, cwd=self.folder,
                                         env=self.env, start_new_session=True)
        _GROUPS[self.proc.pid] = Path(self.folder).resolve()
        self.starts += 1
        if "--no-smtp" in flags:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError("postdesk serve exited: " + self.log_text()[-4000:])
                time.sleep(0.05)
        raise AssertionError("postdesk serve did not start: " + self.log_text()[-4000:])

    def kill(self) -> None:
        """SIGKILL, and reap the process (a zombie would still look alive to the worker)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def serving(folder: Path, db_url: str, extra: str = "", *flags: str,
            env: dict[str, str] | None = None):
    """A started ``Serve`` that is always killed at the end of the block."""
    serve = Serve(folder, db_url, extra, env)
    try:
        serve.start(*flags)
        yield serve
    finally:
        serve.kill()


class Store:
    """Read the postdesk database directly (counts by Message-ID, statuses)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def close(self) -> None:
        self.engine.dispose()

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def inbound_statuses(self) -> Counter:
        return Counter(dict(self.rows("SELECT status, count(*) FROM inbound GROUP BY status")))

    def unfinished(self) -> int:
        return self.scalar("SELECT count(*) FROM inbound WHERE status IN ('received', 'processing')")

    def inbound_by_message_id(self) -> Counter:
        """How many inbound rows hold each Message-ID (read from the stored raw bytes)."""
        found: Counter = Counter()
        for raw, in self.rows("SELECT raw FROM inbound"):
            match = MESSAGE_ID.search(bytes(raw or b"")[:8192])
            found[match.group(1).decode() if match else None] += 1
        return found

    def incoming_messages(self) -> Counter:
        return Counter(mid for mid, in self.rows(
            "SELECT message_id FROM message WHERE direction = 'in'"))

    def tickets_by_requester(self) -> Counter:
        return Counter(r for r, in self.rows("SELECT requester FROM ticket"))


def peak_rss_growth(call: Callable[[], object]) -> tuple[object, float, float]:
    """Run ``call``; return its result, the seconds it took and the MB of peak RSS it added."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
    before = _status_kb("VmRSS")
    started = time.monotonic()
    result = call()
    elapsed = time.monotonic() - started
    return result, elapsed, max(0, _status_kb("VmHWM") - before) / 1024


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def figures(title: str, values: dict) -> str:
    """One printable block of figures; also used in assertion messages."""
    width = max(len(k) for k in values)
    lines = [f"  {k:<{width}}  {v}" for k, v in values.items()]
    return f"\n[{title}]\n" + "\n".join(lines)


def sqlite_app(folder: Path, extra: str = "", environ: dict[str, str] | None = None):
    """An App on a fresh, migrated SQLite database in ``folder`` (in-process pipeline tests);
    ``environ`` holds ``POSTDESK_<SECTION>__<KEY>`` overrides (e.g. of the ``[desk]`` keys)."""
    shutil.copyfile(_migrated_sqlite(), folder / "postdesk.db")
    return App(config.load(desk_config(folder, f"sqlite:///{folder / 'postdesk.db'}", extra),
                           environ=environ or {}))


@functools.cache
def _migrated_sqlite() -> Path:
    """An empty SQLite store migrated once per process, which ``sqlite_app`` copies."""
    folder = Path(tempfile.mkdtemp(prefix="postdesk-migrated-"))
    atexit.register(shutil.rmtree, folder, True)
    database = Database(f"sqlite:///{folder / 'postdesk.db'}")
    migrate.upgrade(database)
    database.dispose()
    return folder / "postdesk.db"


def dead_pid() -> int:
    """The pid of a process that has just ended (and was reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


class Sink:
    """A loopback SMTP server (aiosmtpd) that keeps every mail it gets; start and stop at will."""

    def __init__(self, port: int | None = None, auth_password: str | None = None) -> None:
        self.port = port or free_port()
        self.mails: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []
        self.expected_password = auth_password  # (aiosmtpd takes auth_* attributes for mechanisms)
        self._controller = None

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 kept"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
        self.logins.append(login)
        password = auth_data.password
        password = password.decode() if isinstance(password, bytes) else password
        ok = password == self.expected_password
        return AuthResult(success=ok, handled=False)  # handled=True would send no reply

    def start(self) -> None:
        options = {}
        if self.expected_password is not None:
            options = {"authenticator": self._authenticate, "auth_require_tls": False,
                       "auth_exclude_mechanism": ["LOGIN"]}  # smtplib's LOGIN fallback stalls
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                      ready_timeout=10, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def message_ids(self) -> Counter:
        found: Counter = Counter()
        for _, _, raw in self.mails:
            match = MESSAGE_ID.search(raw)
            found[match.group(1).decode() if match else None] += 1
        return found


class SilentServer:
    """Accepts TCP connections and never answers (a relay that hangs before its greeting)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)

    def close(self) -> None:
        if self._stop:
            return
        self._stop = True
        self._thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.sock.close()
