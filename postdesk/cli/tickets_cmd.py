"""``postdesk tickets list|show``: what the desk holds, as a table or as JSON for scripts."""

from __future__ import annotations

import click

from postdesk.cli import cli
from postdesk.cli.output import fail, table, to_json, when
from postdesk.cli.views import ticket_document, ticket_summary
from postdesk.store import tickets

STATUSES = ["new", "open", "pending", "resolved", "closed"]


@cli.group("tickets")
def tickets_group() -> None:
    """List and show tickets."""


@tickets_group.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only tickets in this status.")
@click.option("--queue", help="Only tickets of this queue.")
@click.option("--assignee", help="Only tickets assigned to this agent address.")
@click.option("--requester", help="Only tickets of this customer address.")
@click.option("--limit", default=200, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_tickets(lazy, status, queue, assignee, requester, limit, as_json) -> None:
    app = lazy.app
    with app.db.reader() as session:
        found = tickets.list_tickets(session, status=status, queue=queue, assignee=assignee,
                                     requester=requester and requester.lower(), limit=limit)
    if as_json:
        click.echo(to_json([ticket_summary(t) for t in found]))
        return
    table(["ref", "status", "priority", "queue", "requester", "assignee", "updated", "subject"],
          [(f"#{t.id}", t.status, t.priority, t.queue, t.requester, t.assignee,
            when(t.updated_at), t.subject) for t in found], empty="no tickets")


@tickets_group.command("show")
@click.argument("ticket_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def show_ticket(lazy, ticket_id: str, as_json: bool) -> None:
    """Show ticket ID (``12`` or ``#12``) with its messages and history."""
    number = ticket_id.lstrip("#")
    if not number.isdigit():
        fail(f"{ticket_id!r} is not a ticket number (write 12 or #12)")
    app = lazy.app
    with app.db.reader() as session:
        ticket = tickets.get(session, int(number))
        if ticket is None:
            fail(f"there is no ticket #{number} (see postdesk tickets list)")
        document = ticket_document(session, ticket, app.tags)
    if as_json:
        click.echo(to_json(document))
    else:
        _print_ticket(document)


def _print_ticket(doc: dict) -> None:
    click.echo(f"{doc['tag']} {doc['subject']}")
    click.echo(f"status {doc['status']} · priority {doc['priority']} · queue {doc['queue']} · "
               f"assignee {doc['assignee'] or '-'}")
    click.echo(f"requester {doc['requester']} · created {when(doc['created_at'])} · "
               f"updated {when(doc['updated_at'])}")
    others = [p["address"] for p in doc["participants"] if p["role"] != "requester"]
    if others:
        click.echo(f"participants {', '.join(others)}")
    for message in doc["messages"]:
        arrow = "<-" if message["direction"] == "in" else "->"
        click.echo(f"\n{arrow} {when(message['created_at'])} {message['kind']} "
                   f"{message['from']} ({message['threaded_by']})")
        click.echo(message["text"].strip() or "(empty)")
        for attachment in message["attachments"]:
            click.echo(f"   [attachment] {attachment['filename']} ({attachment['size']} bytes)")
