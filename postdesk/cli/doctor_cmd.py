"""``postdesk doctor``: check everything ``serve`` needs, before (or beside) it, and say what to fix.

One line per check, ``ok``, ``warn`` or ``FAIL`` then what was checked and, on a failure, what
to do: the configuration; the store (reachable, at the current revision, every table there);
the SMTP listening address (free, or held by a postdesk that answers there: a warning); the
outbound relay (connect, EHLO, STARTTLS and login as configured; no mail is sent) or the
Maildir folder (writable); each ``[[imap]]`` mailbox (login, configured folders); agent trust
(what ``serve`` warns about at start); every stored template override (renders with the
example values). It never creates or changes anything. Exit 0 when no check failed (warnings
included), 1 otherwise, 78 when the configuration cannot be read at all.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from postdesk.cli import cli
from postdesk.config import Settings, agent_warnings

TIMEOUT_SECONDS = 5.0  # each network check: the relay, each IMAP server
GREETING_SECONDS = 2.0  # a program holding the listening port that greets as postdesk
OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclasses.dataclass(frozen=True)
class Check:
    status: str
    name: str
    text: str

    def __str__(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.text}"


@cli.command()
@click.pass_obj
def doctor(lazy) -> None:
    """Check the configuration, store, ports, relay, IMAP logins, agent trust and templates."""
    app = lazy.app
    failed = False
    for check in _checks(app):
        click.echo(str(check))
        failed |= check.status == FAIL
    if failed:
        raise SystemExit(1)


def _checks(app) -> Iterator[Check]:
    settings = app.settings
    yield Check(OK, "config", "no file: the built-in defaults" if settings.source ==
                "built-in defaults" else f"{settings.source} is valid")
    for note in settings.deprecated:
        yield Check(WARN, "config", note)
    store = _store(app)
    yield store
    yield _listen(settings)
    yield _outbound(settings)
    yield from _imap(settings)
    yield from _agents(settings)
    if store.status == OK:
        yield from _templates(app)
    else:
        yield Check(FAIL, "templates", "not checked: the store is not ready (see above)")


def _guarded(name: str) -> Callable:
    """A check that raises becomes a FAIL line naming the error, never a traceback."""
    def wrap(func: Callable) -> Callable:
        def checked(*args):
            try:
                return func(*args)
            except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
                return Check(FAIL, name, f"unexpected error: {exc!r}")
        return checked
    return wrap


@_guarded("store")
def _store(app) -> Check:
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415

    from postdesk.store import migrate  # noqa: PLC0415  (alembic is slow to import)
    from postdesk.store.db import shown_url  # noqa: PLC0415
    from postdesk.store.errors import needs_init  # noqa: PLC0415
    from postdesk.store.models import SQLModel  # noqa: PLC0415

    url = app.settings.database.url
    where = shown_url(url)
    try:
        current, head = migrate.current_revision(app.db), migrate.head_revision()
        present = migrate.table_names(app.db)
    except DBAPIError as exc:
        why = needs_init(exc, url)
        if why:
            return Check(FAIL, "store", f"{where} is not set up: {why}; then run "
                                        "`postdesk init`")
        first = str(getattr(exc, "orig", exc)).strip().splitlines()
        return Check(FAIL, "store", f"cannot open {where}: {first[0] if first else exc} "
                                    "(is it running? can this user open it?)")
    if current != head:
        return Check(FAIL, "store", f"{where} is at revision {current or 'empty'}, postdesk "
                                    f"needs {head} (run `postdesk init`)")
    missing = sorted(set(SQLModel.metadata.tables) - present)
    if missing:
        return Check(FAIL, "store", f"{where} lacks the table(s) {', '.join(missing)} although "
                                    "it is marked current (restore it from a backup)")
    return Check(OK, "store", f"{where} at revision {current}, {len(present)} tables")


@_guarded("smtp listen")
def _listen(settings: Settings) -> Check:
    host, port = settings.listen_host_port
    where = settings.smtp.listen
    if port == 0:
        return Check(OK, "smtp listen", f"{where}: any free port")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.create_server((host, port), family=family):
            return Check(OK, "smtp listen", f"{where} is free")
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return Check(FAIL, "smtp listen", f"cannot listen on {where}: {exc.strerror or exc} "
                                              "(change [smtp] listen)")
    if b"postdesk" in _greeting(host, port):
        return Check(WARN, "smtp listen", f"{where} is in use by a postdesk that answers there "
                                          "(this desk's serve, running?)")
    return Check(FAIL, "smtp listen", f"{where} is in use by another program (stop it or "
                                      "change [smtp] listen)")


def _greeting(host: str, port: int) -> bytes:
    """The first line the program on ``host:port`` says, or b"" when it says nothing in time."""
    try:
        with socket.create_connection((host, port), timeout=GREETING_SECONDS) as sock:
            return sock.makefile("rb").readline(512)
    except OSError:
        return b""


@_guarded("outbound")
def _outbound(settings: Settings) -> Check:
    out = settings.outbound
    if out.transport == "maildir":
        return _maildir(Path(out.folder))
    from postdesk.notify.transports import SmtpTransport  # noqa: PLC0415

    timeout = min(out.timeout, TIMEOUT_SECONDS)
    where = f"relay {out.host}:{out.port}"
    try:  # a missing password variable is a ConfigError from the constructor
        reply = SmtpTransport(dataclasses.replace(out, timeout=timeout)).probe()
    except Exception as exc:  # noqa: BLE001 - every failure is this check's answer
        return Check(FAIL, "outbound", f"{_said(exc, where)} (check [outbound] host, port, "
                                       "tls, starttls, username and the password variable)")
    return Check(OK, "outbound", f"{where} answers EHLO: {reply}")


def _said(exc: Exception, where: str) -> str:
    """What the relay (or the way to it) said, once, without smtplib's tuple and bytes."""
    import smtplib  # noqa: PLC0415

    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        return f"{where} answered {exc.smtp_code} {text}"
    return str(exc) if str(exc).startswith(where) else f"{where}: {exc}"


def _maildir(folder: Path) -> Check:
    """A Maildir folder is writable: it (or the nearest existing parent) takes a file."""
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Check(FAIL, "outbound", f"maildir {folder}: {existing} is not a writable folder "
                                       "(fix its permissions or change [outbound] folder)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return Check(FAIL, "outbound", f"maildir {folder}: cannot write in {existing}: {exc}")
    return Check(OK, "outbound", f"maildir {folder} is writable")


def _imap(settings: Settings) -> Iterator[Check]:
    from postdesk.gateway.imap import check_mailbox  # noqa: PLC0415

    for box in settings.imap:
        name = f"imap {box.name}"
        report = check_mailbox(box, TIMEOUT_SECONDS)
        if not report["ok"]:
            yield Check(FAIL, name, f"{report['error']}")
            continue
        missing = [f for f, exists in report["configured_folders"].items() if not exists]
        yield (Check(FAIL, name, f"folder(s) {', '.join(missing)} missing on "
                                 f"{box.host} (create them or fix the [[imap]] folder names)")
               if missing else
               Check(OK, name, f"logged in as {box.username} on {box.host}:{report['port']}"))


def _agents(settings: Settings) -> Iterator[Check]:
    if not settings.agents:
        yield Check(OK, "agent trust", "no agents configured")
        return
    warnings = agent_warnings(settings)
    for warning in warnings:
        yield Check(FAIL, "agent trust", warning)
    if not warnings:
        yield Check(OK, "agent trust", f"{len(settings.agents)} agent(s); mail is trusted on "
                                       f"Authentication-Results from "
                                       f"{settings.agent_auth.trusted_authserv_id}")


@_guarded("templates")
def _template_rows(app) -> list:
    from postdesk.store import template_versions  # noqa: PLC0415

    with app.db.reader() as session:
        return [(r.key, r.locale, r.part, r.version, r.source)
                for r in template_versions.current_all(session) if r.source]


def _templates(app) -> Iterator[Check]:
    from postdesk.templates.validate import validate  # noqa: PLC0415

    rows = _template_rows(app)
    if isinstance(rows, Check):
        yield rows
        return
    bad = 0
    for key, locale, part, version, source in rows:
        try:
            problems = [str(p) for p in validate(key, part, source)]
        except Exception as exc:  # noqa: BLE001 - an unknown key or part, say
            problems = [str(exc)]
        if problems:
            bad += 1
            yield Check(FAIL, "templates", f"{key} ({locale}) version {version}: "
                                           f"{'; '.join(problems)} (fix it with `postdesk "
                                           f"templates edit {key} --locale {locale} --part "
                                           f"{part}` or revert it)")
    if not bad:
        yield Check(OK, "templates", f"{len(rows)} override(s) render with the example values")
