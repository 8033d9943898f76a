"""What the CLI shows of a ticket: the JSON document of ``tickets show`` and its text form.

The JSON field names are a public interface (scripts rely on them): keep them, add to them.
``tickets list`` only needs :func:`ticket_summary`: the desk's modules (and the mail parser and
template engine under them) are imported by :func:`ticket_document` alone.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from postdesk.store import escalations as escalation_rows, tickets

if TYPE_CHECKING:
    from sqlmodel import Session

    from postdesk.mail.tags import TagFormat
    from postdesk.store.models import Message, Ticket


def ticket_summary(ticket: Ticket) -> dict:
    return {
        "id": ticket.id, "ref": f"#{ticket.id}", "status": ticket.status,
        "subject": ticket.subject, "requester": ticket.requester, "queue": ticket.queue,
        "priority": ticket.priority, "assignee": ticket.assignee, "locale": ticket.locale,
        "created_at": ticket.created_at, "updated_at": ticket.updated_at,
    }


def ticket_document(session: Session, ticket: Ticket, tags: TagFormat) -> dict:
    from postdesk.desk import escalations, surveys  # noqa: PLC0415

    messages = tickets.messages(session, ticket.id)
    files = tickets.attachments(session, [m.id for m in messages])
    by_message: dict[int, list] = {}
    for f in files:
        by_message.setdefault(f.message_pk, []).append(
            {"filename": f.filename, "content_type": f.content_type, "size": f.size,
             "sha256": f.sha256, "rejected": f.rejected})
    return {
        **ticket_summary(ticket),
        "tag": tags.tag(ticket.id),
        "participants": [{"address": p.address, "role": p.role}
                         for p in tickets.participants(session, ticket.id)],
        "pending_since": ticket.pending_since, "reminders_sent": ticket.reminders_sent,
        "resolved_at": ticket.resolved_at, "resolution": ticket.resolution,
        "closed_at": ticket.closed_at,
        "links": {"follow_up_of": ticket.follow_up_of,
                  "follow_ups": tickets.follow_ups(session, ticket.id),
                  "related": ticket.related_to, "merged_into": ticket.merged_into},
        "survey": _survey(surveys.survey_for(session, ticket.id)),
        "escalation": escalations.document(session, escalation_rows.latest(session, ticket.id)),
        "messages": [message_document(m, by_message.get(m.id, [])) for m in messages],
        "events": [{"at": e.at, "actor": e.actor, "kind": e.kind, "data": json.loads(e.data)}
                   for e in tickets.events(session, ticket.id)],
    }


def _survey(survey) -> dict | None:
    if survey is None:
        return None
    return {"scale": survey.scale, "sent_at": survey.sent_at, "score": survey.score,
            "satisfied": survey.satisfied, "comment": survey.comment,
            "answered_at": survey.answered_at, "answers": survey.answers}


def message_document(message: Message, files: list[dict]) -> dict:
    return {
        "id": message.id, "direction": message.direction, "kind": message.kind,
        "from": message.from_addr, "from_name": message.from_name,
        "to": json.loads(message.to_addrs), "cc": json.loads(message.cc_addrs),
        "subject": message.subject, "message_id": message.message_id,
        "in_reply_to": message.in_reply_to, "text": message.text, "body": message.body,
        "attachments": files, "automatic": message.automatic,
        "threaded_by": message.threaded_by, "evidence": message.evidence,
        "created_at": message.created_at,
    }
