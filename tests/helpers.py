"""Small builders shared by tests: a real RFC 5322 mail as bytes, the outbound Maildir's mails,
the ``postdesk`` command run in-process."""

from __future__ import annotations

import contextlib
import email
import email.policy
import logging
import mailbox
import os
import shutil
import subprocess
import time
import traceback
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from postdesk.mail.envelope import Envelope


def make_mail(sender: str = "alice@example.com", subject: str = "Cannot log in",
              body: str = "Hello, the login page says error 500.\n", *,
              to: str = "support@desk.test", cc: str | None = None,
              message_id: str | None = "auto", in_reply_to: str | None = None,
              references: str | None = None, headers: dict | None = None,
              name: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>" if name else sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    if message_id == "auto":
        message_id = make_msgid(domain="example.com")
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references or in_reply_to:
        msg["References"] = references or in_reply_to
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


def deliver(app, raw: bytes, mail_from: str = "x@example.com",
            rcpts: tuple[str, ...] = ("support@desk.test",), *, source: str = "smtp",
            peer: str | None = None) -> int:
    """Store ``raw`` as a mail received over SMTP, then run the worker until nothing is left;
    returns the inbound id."""
    stored = app.intake().store(raw, Envelope(mail_from, tuple(rcpts), source, peer))
    app.worker().process_until_idle()
    return stored


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               every: float = 0.1, log: Path | None = None):
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds
    (with the tail of ``log``, e.g. a server's, in the message)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
        time.sleep(every)


def outbound_mails(folder: Path) -> list[email.message.EmailMessage]:
    """Every mail in the outbound Maildir, oldest first."""
    box = mailbox.Maildir(folder, create=False)
    found = [(path.stat().st_mtime_ns, path.name, path) for sub in ("new", "cur")
             for path in (folder / sub).iterdir()] if folder.exists() else []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for _, _, p in sorted(found)] if box is not None else []


def run_cli(*args: str, input: bytes | str | None = None, env: dict | None = None,
            cwd: Path | str | None = None, clean_env: bool = False) -> subprocess.CompletedProcess:
    """``postdesk ARGS`` in this process with click's runner, as a finished process looks.

    Start-up is what makes a ``python -m postdesk`` call cost most of a second; a command's
    output, JSON and exit code are the same in-process. The result has ``returncode``,
    ``stdout`` and ``stderr`` (bytes, or text when ``input`` is text); an exception that would
    have escaped ``main()`` is a traceback on stderr and exit code 1, as in a real process.
    The logging set-up runs as in a fresh process (its handler writes to the captured stderr)
    and is undone afterwards. ``env`` adds variables for the call; ``clean_env`` first hides
    every ``POSTDESK_*`` variable; ``cwd`` is the working directory during the call.
    Not for ``serve`` or the scheduler daemon: those fork and take signals; run them for real.
    """
    from click.testing import CliRunner  # noqa: PLC0415

    import postdesk.cli as cli_module  # noqa: PLC0415

    variables: dict[str, str | None] = {}
    if clean_env:
        variables |= {key: None for key in os.environ if key.startswith("POSTDESK_")}
    variables |= env or {}
    apps: list = []

    class RecordedApp(cli_module.App):
        def __init__(self, settings) -> None:
            super().__init__(settings)
            apps.append(self)

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in _LOGGERS_SET_BY_CLI}
    root.handlers = []
    old_cwd = os.getcwd()
    original_app = cli_module.App
    cli_module.App = RecordedApp
    try:
        if cwd is not None:
            os.chdir(cwd)
        raw_input = input.encode() if isinstance(input, str) else input
        result = CliRunner().invoke(cli_module.cli, list(args), input=raw_input, env=variables,
                                    prog_name="postdesk")
    finally:
        os.chdir(old_cwd)
        cli_module.App = original_app
        for handler in root.handlers:
            handler.close()
        root.handlers, root.level = handlers, level
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
        for app in apps:
            if "db" in app.__dict__:
                app.db.dispose()
    stdout, stderr = result.stdout_bytes, result.stderr_bytes or b""
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info)).encode()
    if isinstance(input, str):
        return subprocess.CompletedProcess(args, code, stdout.decode(errors="replace"),
                                           stderr.decode(errors="replace"))
    return subprocess.CompletedProcess(args, code, stdout, stderr)


_LOGGERS_SET_BY_CLI = ("sqlalchemy", "alembic", "apscheduler", "mailparser")


class LocalDesk:
    """What ``postdesk serve`` does with a mail it receives by SMTP, done in this process: the
    intake stores it (source ``smtp``), the worker processes what is stored, the sender
    delivers what is due into the outbound Maildir. For tests about tickets and the mails they
    send, not about the server (``tests.faults.support.Serve`` runs the real one): no start-up,
    and nothing to wait for once ``send`` returns.

    ``run`` is ``postdesk --config CONFIG ARGS`` in-process (``run_cli``); the sender then
    delivers what the command queued, as a running ``serve`` would. ``log`` is None (no
    server log) so that ``wait_until(..., log=desk.log)`` works on either kind of desk.
    """

    log = None

    def __init__(self, config_path: Path | str) -> None:
        from postdesk import config  # noqa: PLC0415
        from postdesk.runtime.app import App  # noqa: PLC0415

        self.config = Path(config_path)
        self.folder = self.config.parent
        self.app = App(config.load(self.config, environ={}))

    def send(self, raw: bytes, sender: str = "alice@example.com",
             rcpts: tuple[str, ...] = ("support@desk.test",)) -> int:
        """Take ``raw`` as received over SMTP, then work and send until idle; the inbound id."""
        stored = self.app.intake().store(raw, Envelope(sender, tuple(rcpts), "smtp",
                                                       "127.0.0.1"))
        self.pump()
        return stored

    def pump(self) -> None:
        """Process every stored mail and deliver every due one, until nothing is left."""
        self.app.worker().process_until_idle()
        self.app.sender().send_until_idle()

    def run(self, *args: str, input: bytes | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        result = run_cli("--config", str(self.config), *args, input=input, cwd=self.folder,
                         clean_env=True)
        if check and result.returncode != 0:
            raise AssertionError(f"postdesk {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.decode(errors='replace')}")
        self.pump()
        return result

    def close(self) -> None:
        if "db" in self.app.__dict__:
            self.app.db.dispose()


@contextlib.contextmanager
def own_database(store: str, folder: Path, migrated_sqlite: Path | None = None,
                 pg_url: str | None = None):
    """A migrated, empty database no other test truncates, for a module-scoped fixture: a copy
    of ``migrated_sqlite`` in ``folder``, or a PostgreSQL database next to ``pg_url``'s,
    migrated here and dropped afterwards. Yields its URL."""
    if store == "sqlite":
        path = Path(folder) / "postdesk.db"
        shutil.copyfile(migrated_sqlite, path)
        yield f"sqlite:///{path}"
        return
    import sqlalchemy as sa  # noqa: PLC0415

    from postdesk.store import migrate  # noqa: PLC0415
    from postdesk.store.db import Database  # noqa: PLC0415

    base, name = pg_url.rsplit("/", 1)
    name = f"{name}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        database = Database(f"{base}/{name}")
        migrate.upgrade(database)
        database.dispose()
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
