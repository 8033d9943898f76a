"""Keep an arriving mail on a ticket: the message and its attachments, in one place.

Every path that keeps a mail (a customer's mail, an automatic one, an agent's note, an agent's
mail from the Sent folder, a survey answer) stores it here. A customer's files are judged by
the attachment policy (``[attachments]``); an agent's are kept as they came.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.engine import Row
from sqlmodel import Session

from postdesk.desk.arrival import Arrival
from postdesk.desk.services import Desk
from postdesk.mail.attachment_policy import judge
from postdesk.store import tickets

NOTE = "note"


def add_message(session: Session, desk: Desk, arrival: Arrival, ticket_id: int, *, kind: str,
                from_addr: str, from_name: str, text: str, evidence: str,
                judged: bool = False) -> tuple[Row, list[dict]]:
    """Store the mail as a message of ticket ``ticket_id`` with its attachments; returns the
    message as written and the files the policy refused (``judged``: the policy applies).

    ``kind`` is ``customer``, ``agent`` (an agent's mail that went out) or ``note`` (an internal
    note, which keeps only its text: no HTML copy, no In-Reply-To); ``text`` is what the desk
    shows, ``evidence`` why the mail threads here."""
    mail, note = arrival.mail, kind == NOTE
    message = tickets.add_message(
        session, ticket_id, arrival.now, inbound_id=arrival.inbound_id,
        direction="out" if kind == "agent" else "in", kind=kind, from_addr=from_addr,
        from_name=from_name, to=mail.to, cc=mail.cc, subject=mail.subject,
        message_id=mail.message_id,
        in_reply_to=None if note else " ".join(mail.in_reply_to) or None,
        text=text, body=mail.text, html=None if note else mail.html,
        automatic=arrival.automatic and arrival.automatic[:200],
        dmarc_failed=arrival.dmarc_failure is not None,
        threaded_by=arrival.decision.threaded_by, evidence=evidence)
    rejected: list[dict] = []
    if not judged:
        for attachment in mail.attachments:
            tickets.add_attachment(session, message.id, **attachment_fields(desk, attachment))
        return message, rejected
    for verdict in judge(mail.attachments, desk.settings.attachments):
        if verdict.kept:
            fields = attachment_fields(desk, verdict.attachment)
        else:
            fields = rejected_fields(verdict)
            rejected.append({"filename": verdict.attachment.filename, "rule": verdict.rule,
                             "size": len(verdict.attachment.payload)})
        tickets.add_attachment(session, message.id, **fields)
    return message, rejected


def attachment_fields(desk: Desk, attachment) -> dict:
    digest = hashlib.sha256(attachment.payload).hexdigest()
    fields = {"filename": attachment.filename[:255], "content_type": attachment.content_type[:255],
              "size": len(attachment.payload), "sha256": digest}
    if desk.blobs.enabled:
        return {**fields, "blob_path": desk.blobs.put(attachment.payload, digest)}
    return {**fields, "data": attachment.payload}


def rejected_fields(verdict) -> dict:
    """A refused file is listed on the message, without its bytes (the raw mail keeps them)."""
    attachment = verdict.attachment
    return {"filename": attachment.filename[:255], "content_type": attachment.content_type[:255],
            "size": len(attachment.payload), "sha256": hashlib.sha256(attachment.payload).hexdigest(),
            "rejected": verdict.rule}
