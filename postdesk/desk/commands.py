"""Apply one checked agent command to a ticket; each change is an event with who and when.

The commands were parsed and checked against the configuration by
``postdesk.threading.commands``; here they change the ticket: status (through the lifecycle
transitions), assignee, priority, queue (the new queue is told), CC participants, merge into
another ticket (the customer is told), escalations.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session

from postdesk import lifecycle
from postdesk.desk import agent_notices, escalations, transitions
from postdesk.desk.services import Desk
from postdesk.store import tickets
from postdesk.store.models import Message, Participant, Ticket


def apply(session: Session, desk: Desk, ticket: Ticket, command, agent, now: datetime,
          relayed: bool = False) -> str:
    """Run one command; ``relayed``: the agent's reply goes to the customer in the same mail
    (then it is the one that tells them of a resolution). A status change the lifecycle
    refuses raises ``transitions.MoveRefused``."""
    handler = _HANDLERS.get(command.name)
    if handler is None:
        return f"#{command.name}"
    if command.name == "status":
        return _status(session, desk, ticket, command, agent.address, now, notify=not relayed)
    return handler(session, desk, ticket, command, agent.address, now)


def _status(session, desk, ticket, command, actor, now, notify: bool = True) -> str:
    target = command.value
    if target == ticket.status:
        return f"#status {target}: already {target}"
    transitions.move(session, desk, ticket, target, now, actor, notify=notify)
    return f"#status {target}"


def assign(session: Session, ticket: Ticket, address: str, actor: str, now: datetime) -> str:
    before, ticket.assignee, ticket.updated_at = ticket.assignee, address, now
    tickets.add_event(session, ticket.id, "assigned", now, actor=actor, assignee_from=before,
                      assignee_to=address)
    return f"assigned to {address}"


def _assign(session, desk, ticket, command, actor, now) -> str:
    return assign(session, ticket, actor if command.value == "me" else command.value, actor, now)


def _priority(session, desk, ticket, command, actor, now) -> str:
    before, ticket.priority, ticket.updated_at = ticket.priority, command.value, now
    tickets.add_event(session, ticket.id, "priority_changed", now, actor=actor,
                      priority_from=before, priority_to=command.value)
    return f"priority {command.value}"


def _queue(session, desk, ticket, command, actor, now) -> str:
    before, ticket.queue, ticket.updated_at = ticket.queue, command.value, now
    tickets.add_event(session, ticket.id, "queue_changed", now, actor=actor, queue_from=before,
                      queue_to=command.value)
    last = tickets.last_message(session, ticket.id, direction="in", kinds=("customer",))
    mover = next((a for a in desk.settings.agents if a.address == actor), None)
    moved = {"from_queue": before or "", "by": mover.name if mover and mover.name else actor}
    told = agent_notices.notify_agents(session, desk, ticket, "agent_ticket_moved", last, now,
                                       queue=command.value, extra={"moved": moved})
    return f"queue {command.value} (notified {len(told)})"


def _cc(session, desk, ticket, command, actor, now) -> str:
    action, address = command.value, command.extra
    if action == "add":
        tickets.add_participant(session, ticket.id, address, "cc", now)
    else:
        session.execute(delete(Participant).where(Participant.ticket_id == ticket.id,
                                                  Participant.address == address,
                                                  Participant.role == "cc"))
    tickets.add_event(session, ticket.id, f"cc_{'added' if action == 'add' else 'removed'}",
                      now, actor=actor, address=address)
    return f"cc {action} {address}"


def _merge(session, desk, ticket, command, actor, now) -> str:
    target = tickets.get_for_update(session, int(command.value))
    if target is None or target.id == ticket.id or target.merged_into:
        tickets.add_event(session, ticket.id, "merge_refused", now, actor=actor,
                          target=command.value)
        return f"#merge {command.value} refused: no such open ticket"
    session.execute(update(Message).where(Message.ticket_id == ticket.id)
                    .values(ticket_id=target.id))
    for participant in tickets.participants(session, ticket.id):
        tickets.add_participant(session, target.id, participant.address, participant.role, now)
    ticket.merged_into = target.id
    transitions.resolve(session, desk, ticket, now, lifecycle.Resolution.MERGED, actor,
                        notify=False)
    tickets.add_event(session, target.id, "merged", now, actor=actor, merged_from=ticket.id)
    _tell_merged(session, desk, ticket, target, now)
    return f"merged into #{target.id}"


def _tell_merged(session, desk, source: Ticket, target: Ticket, now) -> None:
    contact = tickets.contact(session, source.requester)
    variables = {"customer": {"name": contact.name if contact else "", "address": source.requester},
                 "previous": {"ref": f"#{source.id}", "subject": source.subject,
                              "status": source.status}}
    desk.notifier.notify(session, now, target, "ticket_merged", [source.requester],
                         variables=variables)


def _escalate(session, desk, ticket, command, actor, now) -> str:
    return escalations.open_escalation(session, desk, ticket, actor, now, command.extra)


def _escalation(session, desk, ticket, command, actor, now) -> str:
    return escalations.move(session, desk, ticket, command.value, command.extra or None, actor, now)


def _nothing(session, desk, ticket, command, actor, now) -> str:
    return f"#{command.name}"


_HANDLERS = {"status": _status, "assign": _assign, "priority": _priority, "queue": _queue,
             "cc": _cc, "merge": _merge, "escalate": _escalate, "escalation": _escalation,
             "note": _nothing}
