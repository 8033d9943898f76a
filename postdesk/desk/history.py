"""Ticket history by mail ("Mes Tickets"): is a mail a history request, and the
variables of the ``ticket_history`` answer.

A customer sees the tickets they requested or take part in; an organisation admin sees every
ticket requested from the organisation's domains (with the requester shown), plus their own.
Open tickets come first, then the latest activity. ``history 42`` adds ticket 42 in full only
when the asker may see it; otherwise the answer says nothing about ticket 42 at all. Internal
notes, system notifications and automatic mail are never listed; escalation step notes neither.
The answer always goes to the asking address, so a forged request reveals nothing to the forger.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session

from postdesk.desk import escalations
from postdesk.desk.arrival import Arrival
from postdesk.desk.customer_mail import locale_of
from postdesk.desk.services import Desk
from postdesk.lifecycle import ACTIVE
from postdesk.mail.addresses import normalise_address
from postdesk.store import escalations as escalation_rows, organisations, tickets
from postdesk.store.clock import as_utc
from postdesk.store.models import Message, Ticket
from postdesk.store.organisations import OrgInfo

WORDS = ("history", "historique")
PUBLIC_KINDS = ("customer", "agent")
LIMIT = 100
MAX_ID = 2**31 - 1  # ticket numbers are 32-bit integers; a larger one names no ticket

# Every run of blanks is possessive (``\s*+``): no two quantifiers share characters, so a
# subject is read in linear time whatever it holds.
_PREFIXES = r"(?:(?:re|fwd?|tr)\s*+:\s*+)*+"  # Re:, Fw:, Fwd:, TR: (also "RE :")
_TICKET = r"(?:(?:of|du|de)\s++)?(?:(?:the|le)\s++)?(?:ticket\s*+)?(?:no\.?\s*+|n°\s*+)?#?"
_NUMBER = rf"(?:\s*+:?\s*+{_TICKET}([0-9]{{1,9}}))?"
_REQUEST = re.compile(rf"^\s*+{_PREFIXES}(?:{'|'.join(WORDS)}){_NUMBER}\s*+[.!?]*+\s*+$", re.I)
_BARE_NUMBER = re.compile(rf"^\s*+{_PREFIXES}(?:ticket\s*+)?#?([0-9]{{1,9}})\s*+$", re.I)


def answer_request(session: Session, desk: Desk, arrival: Arrival) -> str | None:
    """Send the sender their ticket history when the mail asks for it (no ticket is opened);
    returns the outcome line, or None when the mail is no history request."""
    settings, mail = desk.settings, arrival.mail
    recipients = {r.lower() for r in (*arrival.envelope.rcpt_tos, *mail.to)}
    addressed = bool(settings.desk.history_address) and \
        settings.desk.history_address.lower() in recipients
    asked, number = history_request(mail.subject, addressed=addressed)
    if not asked:
        return None
    sender = mail.from_addr
    variables = history_variables(session, desk, sender, arrival.now, number)
    contact = tickets.contact(session, sender)
    locale = locale_of(desk, arrival, contact.locale if contact else None)
    row = desk.notifier.notify_person(session, arrival.now, "ticket_history", sender,
                                      variables, locale, in_reply_to=mail.message_id)
    return (f"history of {len(variables['tickets'])} ticket(s) "
            f"{'sent' if row else 'suppressed (limit)'}; no ticket opened")


def history_request(subject: str, *, addressed: bool = False) -> tuple[bool, int | None]:
    """Is ``subject`` a history request, and for which ticket number.

    The whole subject must be the request: ``history``, ``Historique``, ``Re: history``,
    ``history 42``, ``historique #42``, ``history of ticket 42``. A sentence that merely starts
    with the word (``history of my invoice problem``) is an ordinary mail. ``addressed`` says
    the mail went to ``[desk] history_address``: it is a request whatever the subject, and a
    subject of just ``42`` or ``#42`` names the ticket.
    """
    match = _REQUEST.match(subject or "")
    if match:
        return True, _number(match.group(1))
    if addressed:
        bare = _BARE_NUMBER.match(subject or "")
        return True, _number(bare.group(1)) if bare else None
    return False, None


def _number(text: str | None) -> int | None:
    return int(text) if text and int(text) > 0 else None


def history_variables(session: Session, desk: Desk, address: str, now: datetime,
                      ticket_id: int | None = None, *, limit: int = LIMIT) -> dict:
    """The ``ticket_history`` variables for the customer at ``address`` (the asker)."""
    address = normalise_address(address) or address.strip().lower()
    org = organisations.administered_by(session, desk.settings, address)
    domains = org.domains if org else ()
    rows = organisations.tickets_of(session, address, domains, first=ACTIVE, limit=limit)
    view = _View(session, desk, rows)
    return {"desk": {"name": desk.settings.desk.name, "address": desk.settings.desk.address},
            "customer": view.person(address),
            "organisation": org.name if org else None,
            "as_of": now,
            "tickets": [view.entry(t) for t in rows],
            "detail": _detail(session, view, address, org, ticket_id)}


def _detail(session: Session, view: _View, address: str, org: OrgInfo | None,
            ticket_id: int | None) -> dict | None:
    ticket = tickets.get(session, ticket_id) if 0 < (ticket_id or 0) <= MAX_ID else None
    if ticket is None or not organisations.may_see(session, ticket, address,
                                                   org.domains if org else ()):
        return None
    document = escalations.document(session, escalation_rows.latest(session, ticket.id))
    return {**view.entry(ticket),
            "messages": [view.message(m) for m in tickets.messages(session, ticket.id)
                         if _public(m)],
            "escalation": _escalation(document)}


def _public(message: Message) -> bool:
    """Only what the customer and the agents wrote to each other: no note, no system mail."""
    return message.kind in PUBLIC_KINDS and not message.automatic


def _escalation(document: dict | None) -> dict | None:
    if document is None:
        return None
    timeline = [{"step": step["step"], "at": _utc(step["at"]), "done": step["done"],
                 "current": step["current"]} for step in document["timeline"]]
    return {"ref": document["ref"], "status": document["status"],
            "estimated_date": document["estimated_date"], "timeline": timeline}


def _utc(moment: datetime | None) -> datetime | None:
    """Stored times as aware UTC, whichever database they came from."""
    return as_utc(moment) if moment else None


class _View:
    """Turns rows into template values, looking up each name once."""

    def __init__(self, session: Session, desk: Desk, rows: list[Ticket]) -> None:
        self.session = session
        self.agents = {a.address.lower(): a.name for a in desk.settings.agents if a.name}
        self.listed = {t.id for t in rows}
        self.escalated = organisations.escalated_ids(session, self.listed)
        self.names: dict[str, str] = {}

    def person(self, address: str) -> dict:
        if address not in self.names:
            contact = tickets.contact(self.session, address)
            self.names[address] = contact.name if contact else ""
        return {"name": self.names[address], "address": address}

    def entry(self, ticket: Ticket) -> dict:
        if ticket.id not in self.listed:
            self.listed.add(ticket.id)
            self.escalated |= organisations.escalated_ids(self.session, [ticket.id])
        return {"ref": f"#{ticket.id}", "subject": ticket.subject, "status": ticket.status,
                "escalated": ticket.id in self.escalated,
                "created_at": _utc(ticket.created_at), "updated_at": _utc(ticket.updated_at),
                "assignee": self.agent_name(ticket.assignee),
                "requester": self.person(ticket.requester)}

    def agent_name(self, address: str | None) -> str | None:
        return self.agents.get(address.lower(), address) if address else None

    def message(self, message: Message) -> dict:
        if message.kind == "agent":
            author = self.agents.get(message.from_addr.lower()) or message.from_name
        else:
            author = message.from_name or self.person(message.from_addr)["name"]
        return {"at": _utc(message.created_at), "author": author or message.from_addr,
                "kind": message.kind, "text": message.text}
