"""The matchers that find the ticket a mail names, in order: subject tag, then References, then
the Message-ID of a returned message (a bounce carries the mail that could not be delivered).

Each matcher is a small object with a ``name`` and ``match(session, mail)`` returning a
:class:`Match` (ticket id and the evidence) or None. Adding a rule is adding one object to
:data:`MATCHERS`. They only look things up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session

from postdesk.mail.parse import ParsedMail
from postdesk.store import tickets
from postdesk.mail.tags import TagFormat


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
        ticket_id = self.tags.find(mail.subject)
        if ticket_id is None or tickets.get(session, ticket_id) is None:
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
    """A bounce (DSN) or a forward carries the mail it is about: its Message-ID names the ticket."""

    name = "returned-message"
    _HEADER_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers",
                     "message/global", "message/global-headers")
    _MESSAGE_ID = re.compile(rb"^message-id:\s*(<[^>\r\n]{1,900}>)", re.I | re.M)

    def match(self, session: Session, mail: ParsedMail) -> Match | None:
        for attachment in mail.attachments:
            if attachment.content_type not in self._HEADER_TYPES:
                continue
            head = attachment.payload[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            found = self._MESSAGE_ID.search(head)
            if found is None:
                continue
            message = tickets.message_by_id(session, found.group(1).decode("ascii", "replace"))
            if message is not None:
                return Match(message.ticket_id, self.name,
                             f"returned message {message.message_id}")
        return None


def default_matchers(tags: TagFormat) -> tuple:
    return (SubjectTag(tags), References(), ReturnedMessage())
