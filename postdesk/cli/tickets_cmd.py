"""``postdesk tickets list|show``: what the desk holds, as a table or as JSON for scripts."""

from __future__ import annotations

import click

from postdesk.cli import cli
from postdesk.cli.commands import check_queue
from postdesk.cli.output import fail, table, to_json, when
from postdesk.cli.views import ticket_document, ticket_summary
from postdesk.lifecycle import Status
from postdesk.store import tickets

STATUSES = [s.value for s in Status]


@cli.group("tickets")
def tickets_group() -> None:
    """List and show tickets."""


@tickets_group.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only tickets in this status.")
@click.option("--queue", help="Only tickets of this queue (a configured one, or one in use).")
@click.option("--assignee", metavar="NAME|ADDRESS",
              help="Only tickets assigned to this agent: a name of [[agents]] or an address.")
@click.option("--requester", help="Only tickets of this customer address.")
@click.option("--limit", default=200, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_tickets(lazy, status, queue, assignee, requester, limit, as_json) -> None:
    app = lazy.app
    assignee = assignee and agent_address(app.settings, assignee)
    with app.db.reader() as session:
        check_queue(session, app.settings, queue)
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
    _print_history(doc)


def agent_address(settings, wanted: str) -> str:
    """``--assignee``: an address as given, or the address of the agent of that name."""
    if "@" in wanted:
        return wanted.strip().lower()
    for agent in settings.agents:
        if wanted.strip().lower() == (agent.name or "").lower():
            return agent.address.lower()
    names = ", ".join(a.name or a.address for a in settings.agents) or "none configured"
    fail(f"--assignee: no agent is named {wanted!r} (agents: {names}); give a name or an address")


def _print_history(doc: dict) -> None:
    click.echo("\nhistory")
    for line in _link_lines(doc["links"]):
        click.echo(f"  {line}")
    if (survey := doc["survey"]) is not None:
        answer = ("not answered" if survey["answered_at"] is None else
                  f"answered {when(survey['answered_at'])}: score {survey['score'] or '-'}, "
                  f"{'satisfied' if survey['satisfied'] else 'not satisfied'}"
                  + (f" — {survey['comment']}" if survey["comment"] else ""))
        click.echo(f"  survey: sent {when(survey['sent_at'])} (scale {survey['scale']}), {answer}")
    if (escalation := doc["escalation"]) is not None:
        steps = " → ".join(f"{e['step']}{' ' + when(e['at']) if e['at'] else ''}"
                           + (" (now)" if e["current"] else "") for e in escalation["timeline"])
        estimated = escalation["estimated_date"]
        click.echo(f"  escalation {escalation['ref']}: {steps}"
                   + (f"; estimated {estimated}" if estimated else ""))
    for event in doc["events"]:
        details = ", ".join(f"{k} {_value(v)}" for k, v in event["data"].items()
                            if v not in (None, "", [], {}))
        click.echo(f"  {when(event['at'])} {event['kind']} by {event['actor']}"
                   + (f": {details}" if details else ""))


def _link_lines(links: dict) -> list[str]:
    lines = []
    if links["follow_up_of"]:
        lines.append(f"follow-up of #{links['follow_up_of']}")
    if links["follow_ups"]:
        lines.append("followed up by " + ", ".join(f"#{n}" for n in links["follow_ups"]))
    if links["related"]:
        lines.append(f"related to #{links['related']}")
    if links["merged_into"]:
        lines.append(f"merged into #{links['merged_into']}")
    return lines


def _value(value) -> str:
    text = value if isinstance(value, str) else to_json(value).replace("\n", " ")
    text = " ".join(str(text).split())
    return text if len(text) <= 120 else text[:119] + "…"
