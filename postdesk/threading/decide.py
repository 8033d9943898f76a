"""Which ticket a mail belongs to and what it does there; a decision that says why.

The matchers name a ticket; a merged ticket is followed to the one it was merged into; the
sender must be a participant of the named ticket (a guessed or copied tag must not put a
stranger's text into someone else's ticket); the ticket's state decides between adding the
message, reopening, or opening a follow-up (``lifecycle.on_customer_reply``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from postdesk import lifecycle
from postdesk.mail.parse import ParsedMail
from postdesk.store import tickets
from postdesk.threading.matchers import Match
from postdesk.mail.tags import mentioned_ticket

NEW, APPEND, REOPEN, FOLLOW_UP = "new", "append", "reopen", "follow-up"


@dataclass(frozen=True)
class Decision:
    action: str  # new | append | reopen | follow-up
    ticket_id: int | None  # the ticket the mail is added to (None: a new ticket is opened)
    threaded_by: str  # subject-tag | references | new
    evidence: str
    named: int | None = None  # the ticket the mail named, if any
    link: str | None = None  # follow_up_of | related_to, for a new ticket
    sender_role: str | None = None
    # The mail answers Message-IDs the store does not know (yet: another worker may be writing
    # the mail they name).
    references_unknown: bool = False


def decide(session: Session, mail: ParsedMail, matchers: tuple, now: datetime,
           reopen_days: float, agents: Collection[str] = ()) -> Decision:
    match = _first_match(session, mail, matchers)
    if match is None:
        return _new_ticket(session, mail)
    ticket = _follow_merges(session, match.ticket_id)
    sender = mail.from_addr or ""
    role = tickets.participant_role(session, ticket.id, sender) or (
        "agent" if sender in agents else None)
    if role is None and match.rule == "returned-message":
        # A bounce quotes one of our random Message-IDs: knowing it is the proof.
        return Decision(APPEND, ticket.id, match.rule, match.evidence, ticket.id, None, "returned")
    if role is None:
        return Decision(NEW, None, NEW, f"sender is not a participant of #{ticket.id} "
                        f"(named by {match.evidence})", ticket.id, "related_to")
    effect = lifecycle.on_customer_reply(ticket.status, ticket.resolved_at, now, reopen_days)
    if effect is lifecycle.CustomerReply.FOLLOW_UP and role != "agent":
        return Decision(FOLLOW_UP, None, match.rule, f"{match.evidence}; #{ticket.id} is "
                        f"{ticket.status}", ticket.id, "follow_up_of", role)
    action = REOPEN if effect is lifecycle.CustomerReply.REOPEN and role != "agent" else APPEND
    return Decision(action, ticket.id, match.rule, match.evidence, ticket.id, None, role)


def _first_match(session: Session, mail: ParsedMail, matchers: tuple) -> Match | None:
    for matcher in matchers:
        found = matcher.match(session, mail)
        if found is not None:
            return found
    return None


def _follow_merges(session: Session, ticket_id: int):
    """The ticket the mail goes to, locked from now on (PostgreSQL): a merge or any other
    change by another worker either committed before this read, or waits for this mail."""
    ticket = tickets.get_for_update(session, ticket_id)
    seen = {ticket_id}
    while ticket.merged_into and ticket.merged_into not in seen:
        seen.add(ticket.merged_into)
        ticket = tickets.get_for_update(session, ticket.merged_into)
    return ticket


def _new_ticket(session: Session, mail: ParsedMail) -> Decision:
    unknown = bool(mail.in_reply_to or mail.references)
    named = mentioned_ticket(mail.subject) or mentioned_ticket(mail.text[:2000])
    if named is not None and tickets.get(session, named) is not None:
        return Decision(NEW, None, NEW, f"no tag or known reference; mentions #{named}",
                        named, "related_to", references_unknown=unknown)
    return Decision(NEW, None, NEW, "no tag or known reference", references_unknown=unknown)
