"""Which ticket a mail belongs to and what it does there; a decision that says why.

Every matcher is asked; a merged ticket is followed to the one it was merged into. The
evidence is weighed in order: a subject tag of a ticket where the sender takes part (its
requester, a copied contact, or an agent); else References to a ticket where the sender takes
part; else a delivery report's returned message, kept on its ticket without changing it; else
a new ticket, linked (``related_to``) to the first ticket named. So a guessed or copied tag, or
a copy of a ticket's mail, never puts a stranger's text into someone else's ticket, and a
mistyped tag does not pull a participant's reply out of its thread. The ticket's state decides
between adding the message, reopening, or opening a follow-up (``lifecycle.on_customer_reply``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session

from postdesk import lifecycle
from postdesk.mail.parse import ParsedMail
from postdesk.store import tickets
from postdesk.threading.matchers import ATTACHED_COPY, RETURNED, Match
from postdesk.mail.tags import mentioned_ticket



class Action(StrEnum):
    """What a mail does: open a ticket, or what a reply does to the ticket it names
    (``lifecycle.CustomerReply``, whose values these are)."""

    NEW = "new"
    APPEND = lifecycle.CustomerReply.APPEND.value
    REOPEN = lifecycle.CustomerReply.REOPEN.value
    FOLLOW_UP = lifecycle.CustomerReply.FOLLOW_UP.value


NEW, APPEND, REOPEN, FOLLOW_UP = Action.NEW, Action.APPEND, Action.REOPEN, Action.FOLLOW_UP


@dataclass(frozen=True)
class Decision:
    action: Action
    ticket_id: int | None  # the ticket the mail is added to (None: a new ticket is opened)
    threaded_by: str  # subject-tag | references | returned-message | new
    evidence: str
    named: int | None = None  # the ticket the mail named, if any
    link: str | None = None  # follow_up_of | related_to, for a new ticket
    sender_role: str | None = None
    # The mail answers Message-IDs the store does not know (yet: another worker may be writing
    # the mail they name).
    references_unknown: bool = False


def decide(session: Session, mail: ParsedMail, matchers: tuple, now: datetime,
           reopen_within: float, agents: Collection[str] = ()) -> Decision:
    sender = mail.from_addr or ""
    found: list[Match] = []
    passed: list[tuple[Match, int]] = []  # named a ticket where the sender takes no part
    for match in filter(None, (matcher.match(session, mail) for matcher in matchers)):
        found.append(match)
        if match.rule in (RETURNED, ATTACHED_COPY):
            continue
        ticket, role = _taking_part(session, match.ticket_id, sender, agents)
        if role is not None:  # the later matchers are not asked: nothing outweighs this
            return _reply(ticket, role, match, passed, now, reopen_within)
        passed.append((match, ticket.id))
    return _untied(session, mail, found, passed)


def _untied(session: Session, mail: ParsedMail, found: list[Match], passed: list) -> Decision:
    """Neither a tag nor References tie the mail: a delivery report's returned message is kept
    on its ticket (the report quotes one of our random Message-IDs: that is the proof);
    anything else opens a new ticket, linked to the first one named."""
    returned = next((m for m in found if m.rule == RETURNED), None)
    if returned is not None:
        ticket = _follow_merges(session, returned.ticket_id)
        return Decision(APPEND, ticket.id, RETURNED, returned.evidence, ticket.id, None,
                        "returned")
    copies = [(m, _follow_merges(session, m.ticket_id).id) for m in found
              if m.rule == ATTACHED_COPY]
    if passed or copies:
        return _stranger(mail, passed, copies, found)
    return _new_ticket(session, mail)


def _taking_part(session: Session, ticket_id: int, sender: str, agents: Collection[str]):
    """The ticket ``ticket_id`` leads to (locked) and the sender's role there (None: no part)."""
    ticket = _follow_merges(session, ticket_id)
    return ticket, _role(session, ticket.id, sender, agents)


def _role(session: Session, ticket_id: int, sender: str, agents: Collection[str]) -> str | None:
    return tickets.participant_role(session, ticket_id, sender) or (
        "agent" if sender in agents else None)


def _reply(ticket, role: str, match: Match, passed: list, now: datetime,
           reopen_within: float) -> Decision:
    evidence = match.evidence + "".join(f"; {m.evidence} names #{t}, where the sender takes no "
                                        "part" for m, t in passed)
    effect = lifecycle.on_customer_reply(ticket.status, ticket.resolved_at, now, reopen_within)
    if effect is lifecycle.CustomerReply.FOLLOW_UP and role != "agent":
        return Decision(FOLLOW_UP, None, match.rule, f"{evidence}; #{ticket.id} is "
                        f"{ticket.status}", ticket.id, "follow_up_of", role)
    action = REOPEN if effect is lifecycle.CustomerReply.REOPEN and role != "agent" else APPEND
    return Decision(action, ticket.id, match.rule, evidence, ticket.id, None, role)


def _stranger(mail: ParsedMail, passed: list, copies: list, found: list[Match]) -> Decision:
    """A new ticket for a mail that named tickets without being tied to any, linked to the
    first one named. References the store does not know may still be written by another
    worker (they could tie the mail), unless References already matched."""
    named = (passed or copies)[0][1]
    reasons = [f"{'nor' if i else 'sender is not a participant'} of #{t} (named by "
               f"{m.evidence})" for i, (m, t) in enumerate(passed)]
    reasons += [f"#{t} is named only by an {m.evidence}, which ties nothing but a delivery "
                "report" for m, t in copies]
    unknown = bool(mail.in_reply_to or mail.references) and not any(
        m.rule == "references" for m in found)
    return Decision(NEW, None, NEW, "; ".join(reasons), named, "related_to",
                    references_unknown=unknown)


def _follow_merges(session: Session, ticket_id: int):
    """The ticket the mail goes to, locked from now on (PostgreSQL): a merge or any other
    change by another worker either committed before this read, or waits for this mail."""
    ticket = tickets.row(session, ticket_id, lock=True)
    seen = {ticket_id}
    while ticket.merged_into and ticket.merged_into not in seen:
        seen.add(ticket.merged_into)
        ticket = tickets.row(session, ticket.merged_into, lock=True)
    return ticket


def _new_ticket(session: Session, mail: ParsedMail) -> Decision:
    unknown = bool(mail.in_reply_to or mail.references)
    named = mentioned_ticket(mail.subject) or mentioned_ticket(mail.text[:2000])
    if named is not None and tickets.row(session, named) is not None:
        return Decision(NEW, None, NEW, f"no tag or known reference; mentions #{named}",
                        named, "related_to", references_unknown=unknown)
    return Decision(NEW, None, NEW, "no tag or known reference", references_unknown=unknown)
