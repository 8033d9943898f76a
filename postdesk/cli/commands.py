"""``postdesk init``, ``serve`` and ``ingest``: set up the store, run the desk, take a piped mail."""

from __future__ import annotations

import asyncio

import click
from sqlalchemy.exc import OperationalError, ProgrammingError

from postdesk.cli import EX_DATAERR, EX_TEMPFAIL, cli, exit_if_not_initialised
from postdesk.cli.output import fail
from postdesk.errors import TempFail
from postdesk.mail.envelope import Envelope
from postdesk.mail.envelope_lines import header_start


@cli.command()
@click.pass_obj
def init(lazy) -> None:
    """Create or upgrade the database schema (safe to run again)."""
    from postdesk.store import migrate  # noqa: PLC0415  (alembic is slow to import)
    from postdesk.store.db import shown_url  # noqa: PLC0415
    from postdesk.store.errors import needs_init  # noqa: PLC0415

    app = lazy.app
    try:
        before, after = migrate.upgrade(app.create_db())
    except OperationalError as exc:  # unreachable, locked, or a full disk during an upgrade
        why = needs_init(exc, app.settings.database.url)  # no folder, no PostgreSQL database
        if why:
            fail(f"cannot create the database {shown_url(app.settings.database.url)}: {why}", 78)
        fail(f"cannot open or upgrade the database {shown_url(app.settings.database.url)}: "
             f"{exc.orig}", EX_TEMPFAIL)
    except migrate.BrokenForeignKeys as exc:
        fail(f"cannot upgrade the database {app.settings.database.url}: {exc}")
    if before == after:
        click.echo(f"database is up to date (revision {after})")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to revision {after}")


@cli.command()
@click.option("--no-smtp", is_flag=True, help="Do not listen for mail (worker/sender only).")
@click.option("--no-worker", is_flag=True, help="Only accept and store; another process works.")
@click.option("--no-sender", is_flag=True, help="Do not deliver the outbox from this process.")
@click.option("--no-scheduler", is_flag=True, help="Do not run the sweeps in this process.")
@click.pass_obj
def serve(lazy, no_smtp: bool, no_worker: bool, no_sender: bool, no_scheduler: bool) -> None:
    """Run the SMTP/LMTP server, the worker and the sender until SIGTERM or SIGINT."""
    from postdesk.runtime import CannotListen  # noqa: PLC0415
    from postdesk.runtime.serve import serve as run  # noqa: PLC0415

    app = lazy.app
    require_schema(app)
    try:
        asyncio.run(run(app, smtp=not no_smtp, worker=not no_worker, sender=not no_sender,
                        scheduler=not no_scheduler))
    except CannotListen as exc:  # nothing else has started yet
        fail(f"{exc} (change [{exc.section}] listen or stop the other server)")


@cli.command()
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--sender", default="", help="Envelope sender (Postfix: ${sender}).")
@click.option("--recipient", "recipients", multiple=True, help="Envelope recipient (repeatable).")
@click.pass_obj
def ingest(lazy, file, sender: str, recipients: tuple[str, ...]) -> None:
    """Store one raw mail from FILE or standard input (the MTA pipe).

    Exit 0 once stored, 75 on a temporary failure (the MTA retries), 65 on unusable input or a
    mail over ``[smtp] max_message_bytes`` (the MTA bounces it), 78 when the configuration is
    wrong or ``postdesk init`` has not been run (the MTA keeps the mail).
    """
    app = lazy.app
    limit = app.settings.smtp.max_message_bytes
    raw = file.read(limit + 1)
    if len(raw) > limit:
        size = len(raw) + drain(file)
        fail(f"refused: the mail is {size} bytes, more than [smtp] max_message_bytes "
             f"({limit})", EX_DATAERR)
    problem = unusable(raw)
    if problem:
        fail(f"unusable input: {problem}", EX_DATAERR)
    envelope = Envelope(mail_from=sender, rcpt_tos=recipients, source="ingest")
    try:
        stored = app.intake().store(raw, envelope)
    except TempFail as exc:
        exit_if_not_initialised(exc, app.settings.database.url)
        fail(f"temporary failure, not stored: {exc}", EX_TEMPFAIL)
    except (OperationalError, ProgrammingError) as exc:
        exit_if_not_initialised(exc, app.settings.database.url)
        fail(f"temporary failure, not stored: {str(exc.orig).strip()}", EX_TEMPFAIL)
    click.echo(f"stored inbound {stored}", err=True)


def drain(file, chunk: int = 1024 * 1024) -> int:
    """Read ``file`` to its end in bounded memory (the MTA writing it sees no broken pipe);
    returns how many bytes were left."""
    total = 0
    while data := file.read(chunk):
        total += len(data)
    return total


def unusable(raw: bytes) -> str | None:
    """Why ``raw`` can never be a mail, or None: empty, or no header line before the body."""
    if not raw.strip():
        return "empty message"
    if header_start(raw[:2048]) is None:
        return "no mail header line (Name: value) on its first lines"
    return None


def require_schema(app) -> None:
    from postdesk.store import migrate  # noqa: PLC0415  (alembic is slow to import)

    try:
        current, head = migrate.current_revision(app.db), migrate.head_revision()
    except OperationalError as exc:
        exit_if_not_initialised(exc, app.settings.database.url)
        fail(f"cannot open the database {app.settings.database.url}: {exc.orig}", EX_TEMPFAIL)
    if current != head:
        fail(f"the database {app.settings.database.url} is at revision {current or 'empty'}, "
             f"postdesk needs {head} (run `postdesk init` first)", 78)


def check_queue(session, settings, queue: str | None) -> None:
    """An unknown ``--queue`` ends the command with one line naming the queues."""
    from postdesk.store import reports  # noqa: PLC0415  (only the commands that filter)

    configured = {q.name for q in settings.queues} | {settings.routing.default_queue}
    if queue and queue not in configured and not reports.queue_known(session, queue):
        fail(f"unknown queue {queue!r} (queues: {', '.join(sorted(configured))})")
