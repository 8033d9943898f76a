"""The matchers that find the ticket a mail names, in order: subject tag, then References, then
the Message-ID of a returned message (a bounce carries the mail that could not be delivered).

Each matcher is a small object with a ``name`` and ``match(session, mail)`` returning a
:class:`Match` (ticket id, rule and evidence) or None. Adding a rule is adding one object to
:func:`default_matchers`. They only look things up; ``decide`` weighs what they found. A copy
of a ticket's mail attached to anything but a delivery report is found too, under the rule
``attached-copy``: anyone can attach a copy, so it names a ticket but ties nothing to it.
"""

from __future__ import annotations

from itertools import islice
import re
from dataclasses import dataclass

from sqlmodel import Session

from postdesk.mail.automatic import delivery_report, system_sender
from postdesk.mail.parse import ParsedMail
from postdesk.store import tickets
from postdesk.mail.tags import TagFormat

RETURNED, ATTACHED_COPY = "returned-message", "attached-copy"


@dataclass(frozen=True)
class Match:
    ticket_id: int
    rule: str
    evidence: str


class SubjectTag:
    name = "subject-tag"

    def __init__(self, tags: TagFormat) -> None:
        self.tags = tags

    def match(self, session: Session, mail: ParsedMail) -> Match | None:
        """The tagged ticket, read locked: the decision locks every ticket this rule names
        before it looks any further (``decide._taking_part``), so reading it unlocked first
        only cost PostgreSQL a second read."""
        ticket_id = self.tags.find(mail.subject)
        if ticket_id is None or tickets.row(session, ticket_id, lock=True) is None:
            return None
        return Match(ticket_id, self.name, f"subject tag {self.tags.tag(ticket_id)}")


class References:
    name = "references"

    def match(self, session: Session, mail: ParsedMail) -> Match | None:
        named = list(mail.references) + [m for m in mail.in_reply_to if m not in mail.references]
        found = tickets.latest_message_among(session, named)
        if found is None:
            return None
        return Match(found.ticket_id, self.name, f"{found.direction == 'out' and 'sent' or 'received'}"
                     f" message {found.message_id}")


class ReturnedMessage:
    """A bounce (DSN) carries the mail it is about: its Message-ID names the ticket. The same
    copy in any other mail (a forward, a stranger's "returned" part) is an ``attached-copy``."""

    name = RETURNED
    _HEADER_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers",
                     "message/global", "message/global-headers")
    _MESSAGE_ID = re.compile(rb"^message-id:\s*(<[^>\r\n]{1,900}>)", re.I | re.M)
    _QUOTED_ID = re.compile(rb"^[ \t>]{0,8}message-id:[ \t]*(<[^>\r\n]{1,900}>)", re.I | re.M)

    def match(self, session: Session, mail: ParsedMail) -> Match | None:
        report = delivery_report_reason(mail)
        message = self._copied(session, mail)
        if message is None and report is not None:
            message = self._quoted(session, mail)
        if message is None:
            return None
        if report is None:
            return Match(message.ticket_id, ATTACHED_COPY,
                         f"attached copy of message {message.message_id}")
        return Match(message.ticket_id, self.name,
                     f"returned message {message.message_id} ({report})")

    def _copied(self, session: Session, mail: ParsedMail):
        for attachment in mail.attachments:
            if attachment.content_type not in self._HEADER_TYPES:
                continue
            head = attachment.payload[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            found = self._MESSAGE_ID.search(head)
            if found is None:
                continue
            message = tickets.message_by_id(session, found.group(1).decode("ascii", "replace"))
            if message is not None:
                return message
        return None


    def _quoted(self, session: Session, mail: ParsedMail):
        """A report that pastes the returned mail into its text (Exim, qmail, Yahoo: "This is
        a copy of the message") names it by the Message-ID line of that copy."""
        head = mail.text[:65536].encode("utf-8", "replace")
        for found in islice(self._QUOTED_ID.finditer(head), 20):
            message = tickets.message_by_id(session, found.group(1).decode("ascii", "replace"))
            if message is not None:
                return message
        return None


def delivery_report_reason(mail: ParsedMail) -> str | None:
    """Why ``mail`` is a delivery report (a ``multipart/report`` or a delivery-status part, or
    a MAILER-DAEMON/postmaster sender), or None. Both are also automatic mail
    (``mail.automatic``), which changes no ticket and is never answered."""
    return delivery_report(mail, None, "") or system_sender(mail, None, "")


def default_matchers(tags: TagFormat) -> tuple:
    return (SubjectTag(tags), References(), ReturnedMessage())
