"""``postdesk quarantine`` and ``postdesk outbox``: see what is stuck and send it round again,
and delete what is no longer wanted (``delete``, ``purge --older-than``; ``--dry-run`` counts)."""

from __future__ import annotations

import email
import email.policy
import json
import sys
from datetime import datetime, timedelta

import click

from postdesk.cli import cli
from postdesk.cli.output import fail, table, to_json, when
from postdesk.cli.spans import older_than
from postdesk.store import inbound, outbox
from postdesk.store.clock import utcnow


@cli.group("quarantine")
def quarantine_group() -> None:
    """Mails that could not be processed, kept with the reason."""


@quarantine_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def quarantine_list(lazy, as_json: bool) -> None:
    with lazy.app.db.reader() as session:
        rows = inbound.by_status(session, inbound.QUARANTINED)
    if as_json:
        click.echo(to_json([_inbound_summary(r) for r in rows]))
        return
    table(["id", "received", "source", "step", "attempts", "reason"],
          [(r.id, when(r.received_at), r.source, r.error_step, r.attempts, r.error)
           for r in rows], empty="quarantine is empty")


@quarantine_group.command("show")
@click.argument("inbound_id", type=int, metavar="ID")
@click.option("--raw", is_flag=True, help="Print the raw mail exactly as received.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def quarantine_show(lazy, inbound_id: int, raw: bool, as_json: bool) -> None:
    app = lazy.app
    with app.db.reader() as session:
        row = inbound.get(session, inbound_id)
        if row is None:
            fail(f"there is no stored mail {inbound_id} (see postdesk quarantine list)")
        data = inbound.raw_of(row, app.blobs)
    if raw:
        click.get_binary_stream("stdout").write(data)
        return
    summary = _inbound_summary(row)
    if as_json:
        click.echo(to_json(summary))
        return
    for key, value in summary.items():
        click.echo(f"{key:12} {value if value not in (None, '') else '-'}")
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    click.echo("\n" + head.decode("utf-8", "replace")[:4000])


@quarantine_group.command("retry")
@click.argument("inbound_id", type=int, required=False, metavar="[ID]")
@click.option("--all", "retry_all", is_flag=True, help="Re-run every quarantined mail.")
@click.pass_obj
def quarantine_retry(lazy, inbound_id: int | None, retry_all: bool) -> None:
    """Put a quarantined mail (or all of them) back in the queue; the worker re-runs it."""
    if (inbound_id is None) == (not retry_all):
        fail("give one ID or --all (see postdesk quarantine list)")
    with lazy.app.db.session() as session:
        if inbound_id is not None and (row := inbound.get(session, inbound_id)) is None:
            fail(f"there is no stored mail {inbound_id}")
        if inbound_id is not None and row.status != inbound.QUARANTINED:
            fail(f"mail {inbound_id} is {row.status}, not quarantined")
        count = inbound.requeue(session, None if retry_all else [inbound_id])
    click.echo(f"{count} mail(s) queued again; a running postdesk serve processes them now")


@quarantine_group.command("delete")
@click.argument("inbound_id", type=int, metavar="ID")
@click.pass_obj
def quarantine_delete(lazy, inbound_id: int) -> None:
    """Delete one quarantined mail for good (see it first with quarantine show ID --raw)."""
    with lazy.app.db.session() as session:
        if (row := inbound.get(session, inbound_id)) is None:
            fail(f"there is no stored mail {inbound_id} (see postdesk quarantine list)")
        if row.status != inbound.QUARANTINED:
            fail(f"mail {inbound_id} is {row.status}, not quarantined; only quarantined mails "
                 "are deleted")
        inbound.delete_quarantined(session, [inbound_id])
    click.echo(f"quarantined mail {inbound_id} deleted")


@quarantine_group.command("purge")
@click.option("--older-than", "span", required=True, metavar="SPAN",
              help="Delete mails quarantined longer ago than this: 12h, 30d, 12w.")
@click.option("--dry-run", is_flag=True, help="Only say which mails would be deleted.")
@click.pass_obj
def quarantine_purge(lazy, span: str, dry_run: bool) -> None:
    """Delete the mails quarantined longer ago than --older-than."""
    before = utcnow() - _span(span)
    with lazy.app.db.session() as session:
        ids = inbound.quarantined_before(session, before)
        if dry_run:
            shown = " ".join(map(str, ids[:50])) + (" …" if len(ids) > 50 else "")
            click.echo(f"would delete {len(ids)} quarantined mail(s) older than {span}"
                       + (f": {shown}" if ids else ""))
            return
        count = inbound.delete_quarantined(session, ids)
    click.echo(f"{count} quarantined mail(s) older than {span} deleted")


def _span(text: str) -> timedelta:
    try:
        return older_than(text)
    except ValueError as exc:
        fail(str(exc))


def _inbound_summary(row) -> dict:
    return {"id": row.id, "status": row.status, "received_at": row.received_at,
            "source": row.source, "size": row.size, "sha256": row.sha256,
            "message_id": row.message_id, "attempts": row.attempts, "step": row.error_step,
            "reason": row.error, "outcome": row.outcome, "ticket_id": row.ticket_id,
            "envelope_from": row.mail_from, "envelope_to": json.loads(row.rcpt_tos or "[]")}


@cli.group("outbox")
def outbox_group() -> None:
    """Mails postdesk sends: queued, sent, failed."""


@outbox_group.command("list")
@click.option("--status", type=click.Choice(["queued", "sending", "sent", "failed"]))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def outbox_list(lazy, status: str | None, as_json: bool) -> None:
    with lazy.app.db.reader() as session:
        rows = outbox.listing(session, status)
    if as_json:
        click.echo(to_json([_outbox_summary(r) for r in rows]))
        return
    table(["id", "status", "ticket", "template", "to", "attempts", "next", "error"],
          [(r.id, r.status, r.ticket_id and f"#{r.ticket_id}", r.template,
            ", ".join(json.loads(r.rcpts)), r.attempts,
            when(r.next_attempt_at) if r.status == "queued" else "", r.last_error)
           for r in rows], empty="outbox is empty")


@outbox_group.command("show")
@click.argument("outbox_id", type=int, metavar="ID")
@click.option("--raw", is_flag=True, help="Print the mail's bytes exactly as they are sent.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def outbox_show(lazy, outbox_id: int, raw: bool, as_json: bool) -> None:
    """Show one outbound mail: its state, then its headers and its text."""
    with lazy.app.db.reader() as session:
        row = outbox.get(session, outbox_id)
        if row is None:
            fail(f"there is no outbox mail {outbox_id} (see postdesk outbox list)")
    if raw:
        out = sys.stdout
        out.flush()
        out.buffer.write(row.raw)  # the exact bytes (click 9 drops get_binary_stream)
        out.buffer.flush()
        return
    mail = email.message_from_bytes(row.raw, policy=email.policy.default)
    body = mail.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    summary = _outbox_summary(row)
    if as_json:
        headers = [[name, str(value)] for name, value in mail.items()]
        click.echo(to_json({**summary, "headers": headers, "text": text}))
        return
    for key, value in summary.items():
        click.echo(f"{key:16} {_shown(value)}")
    click.echo("")
    for name, value in mail.items():
        click.echo(f"{name}: {value}")
    click.echo("\n" + text.rstrip("\n"))


def _shown(value) -> str:
    if value in (None, ""):
        return "-"
    if isinstance(value, datetime):
        return when(value)
    return ", ".join(value) if isinstance(value, list) else str(value)


@outbox_group.command("retry")
@click.argument("outbox_id", type=int, required=False, metavar="[ID]")
@click.option("--all", "retry_all", is_flag=True, help="Queue every failed mail again.")
@click.pass_obj
def outbox_retry(lazy, outbox_id: int | None, retry_all: bool) -> None:
    """Queue a failed mail (or all failed mails) again, now, with the same Message-ID."""
    if (outbox_id is None) == (not retry_all):
        fail("give one ID or --all (see postdesk outbox list --status failed)")
    with lazy.app.db.session() as session:
        if outbox_id is not None and (row := outbox.get(session, outbox_id)) is None:
            fail(f"there is no outbox mail {outbox_id}")
        if outbox_id is not None and row.status != outbox.FAILED:
            fail(f"outbox mail {outbox_id} is {row.status}; only failed mails are retried")
        count = outbox.retry(session, utcnow(), None if retry_all else [outbox_id])
    click.echo(f"{count} mail(s) queued again")


@outbox_group.command("purge")
@click.option("--sent", is_flag=True, help="Delete sent mails (the only kind purged).")
@click.option("--older-than", "span", required=True, metavar="SPAN",
              help="Delete mails sent longer ago than this: 30d, 90d, 12w.")
@click.option("--dry-run", is_flag=True, help="Only say how many mails would be deleted.")
@click.pass_obj
def outbox_purge(lazy, sent: bool, span: str, dry_run: bool) -> None:
    """Delete mails sent longer ago than --older-than (queued and failed mails stay)."""
    if not sent:
        fail("give --sent: only sent mails are purged (failed ones: postdesk outbox retry)")
    app = lazy.app
    age, kept = _span(span), _rate_limit_window(app.settings)
    if age < kept:
        fail(f"--older-than {span} is shorter than the {_hours(kept)} the limits on automatic "
             f"mail count back ([limits]); purge mails older than that")
    before = utcnow() - age
    with app.db.session() as session:
        if dry_run:
            count = outbox.sent_before(session, before)
            click.echo(f"would delete {count} mail(s) sent more than {span} ago")
            return
        count = outbox.purge_sent(session, before)
    click.echo(f"{count} mail(s) sent more than {span} ago deleted")


def _rate_limit_window(settings) -> timedelta:
    """How far back the limits on automatic mail read the outbox (a day, or the ticket window)."""
    return max(timedelta(hours=24),
               timedelta(seconds=float(settings.limits.auto_replies_ticket_window)))


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"


def _outbox_summary(row) -> dict:
    return {"id": row.id, "status": row.status, "ticket_id": row.ticket_id,
            "template": row.template, "rcpts": json.loads(row.rcpts),
            "message_id": row.message_id, "automatic": row.automatic, "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at, "last_error": row.last_error,
            "created_at": row.created_at, "sent_at": row.sent_at}
