"""Tell the right agents about a ticket: its assignee, else its queue's ``notify`` list.

A queue without a ``notify`` list notifies the agents who work that queue, and a desk without
queues notifies every agent. Agent notifications are automatic mail (``auto-generated``) but
are not counted against the customers' hourly limit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Row
from sqlmodel import Session

from postdesk.desk.services import Desk
from postdesk.store import contacts
from postdesk.store.models import Ticket

COMMANDS_HELP = ("#status open|pending|resolved|closed", "#assign NAME|ADDRESS|me",
                 "#priority low|normal|high|urgent", "#queue NAME", "#note",
                 "#cc add|remove ADDRESS", "#merge ID", "#escalate",
                 "#escalation evaluating|engineering|verifying|resolved [YYYY-MM-DD]")


def recipients(desk: Desk, ticket: Ticket, queue: str | None = None) -> list[str]:
    settings = desk.settings
    if ticket.assignee and queue is None:
        return [ticket.assignee]
    queue = queue or ticket.queue
    for q in settings.queues:
        if q.name == queue and q.notify:
            return [a.lower() for a in q.notify]
    workers = [a.address.lower() for a in settings.agents if queue in a.queues]
    return workers or [a.address.lower() for a in settings.agents]


def notify_agents(session: Session, desk: Desk, ticket: Ticket, key: str, message: Row | None,
                  now: datetime, queue: str | None = None,
                  extra: dict | None = None) -> list[str]:
    """Queue ``key`` (agent_new_ticket, customer_replied, agent_ticket_moved) to the ticket's
    agents; ``extra``: more variables of that key."""
    to = recipients(desk, ticket, queue)
    if not to:
        return []
    agents = {a.address.lower(): a for a in desk.settings.agents}
    undeliverable = contacts.undeliverable_participants(session, ticket.id)
    for address in to:
        agent = agents.get(address)
        variables = {"agent": {"name": agent.name if agent and agent.name else address,
                               "address": address},
                     "customer": {"name": message.from_name if message else "",
                                  "address": ticket.requester},
                     "message": _message_vars(message, now),
                     "commands_help": list(COMMANDS_HELP), "undeliverable": undeliverable,
                     **(extra or {})}
        desk.notifier.notify(session, now, ticket, key, [address], variables=variables,
                             automatic="auto-generated", limit=False, internal=True,
                             in_reply_to=message.message_id if message else None)
    return to


def _message_vars(message: Row | None, now: datetime) -> dict:
    if message is None:
        return {"text": "", "from_name": "", "from_address": "", "subject": "", "at": now,
                "attachments": []}
    return {"text": message.text, "from_name": message.from_name,
            "from_address": message.from_addr, "subject": message.subject,
            "at": message.created_at, "attachments": []}
