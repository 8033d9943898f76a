"""What the desk is told about one arriving mail, and what it answers.

The pipeline (``gateway/steps.py``) hands each desk function an :class:`Arrival`: the parsed
mail and what the steps before found out about it (its decision, whether it is automatic, its
verified agent...), as plain values, never the pipeline's own state. A desk function answers
with an :class:`Outcome` (the path the mail took, the ticket and message it wrote, the files
refused, the lines for the inbound row's outcome), which the step copies back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy.engine import Row

from postdesk.config import AgentSettings
from postdesk.mail.bounces import Bounce
from postdesk.mail.envelope import Envelope
from postdesk.mail.language import detect_language
from postdesk.mail.parse import ParsedMail
from postdesk.mail.quotes import reply_text
from postdesk.store.models import Ticket
from postdesk.templates.keys import LOCALES  # the desk's languages: quote headers, tickets
from postdesk.threading.decide import Decision

_UNREAD = object()


class Path(StrEnum):
    """Which way a mail went through ``step_record``; ``step_notify`` reads it."""

    AUTOMATIC = "automatic"  # an auto-reply or delivery report kept on its ticket, unchanged
    SENT = "sent"  # an agent's mail from the shared mailbox's Sent folder (already sent)
    AGENT = "agent"  # an authenticated agent's mail on a ticket: commands, reply or note
    NEW = "new"  # a new ticket
    FOLLOW_UP = "follow-up"  # a new ticket following up a closed one
    CUSTOMER = "customer"  # a participant's reply on its ticket


class TextReadings:
    """What the desk reads off the parsed mail's text, each at most once: the text without its
    quotes and the detected language. The worker may read them before the mail's transaction
    (``Worker._prepare``), so that this CPU work does not hold SQLite's write lock.
    """

    __slots__ = ("_language", "_without_quotes")

    def __init__(self) -> None:
        self._without_quotes: str | None = None
        self._language = _UNREAD

    def text_without_quotes(self, mail: ParsedMail) -> str:
        if self._without_quotes is None:
            self._without_quotes = reply_text(mail)
        return self._without_quotes

    def language(self, mail: ParsedMail) -> str | None:
        if self._language is _UNREAD:
            self._language = detect_language(f"{mail.subject}\n{self.text_without_quotes(mail)}", LOCALES)
        return self._language


@dataclass(frozen=True, slots=True)
class Arrival:
    """One arriving mail as the desk sees it. ``decision`` is None before the thread step."""

    mail: ParsedMail
    inbound_id: int
    envelope: Envelope
    now: datetime
    readings: TextReadings
    decision: Decision | None = None
    automatic: str | None = None  # why it is automatic mail (RFC 3834 and friends), if it is
    bounce: Bounce | None = None  # a delivery report, and the recipients it says failed
    # Why the trusted server does not vouch for the From (DMARC failed), as the flood step read it.
    dmarc_failure: str | None = None
    agent: AgentSettings | None = None  # the verified agent who wrote it
    unreachable: str | None = None  # the raw From of a mail with no usable sender address

    @property
    def text(self) -> str:
        """The mail's text without the quoted history under it (read once per mail)."""
        return self.readings.text_without_quotes(self.mail)

    def language(self) -> str | None:
        """The language the subject and text are written in, among :data:`LOCALES`."""
        return self.readings.language(self.mail)

    @property
    def sender(self) -> str:
        return self.mail.from_addr or ""

    @property
    def from_sent_folder(self) -> bool:
        """An agent's mail read from the shared mailbox's Sent folder (``gateway/imap.py``)."""
        return from_sent_folder(self.envelope)


def from_sent_folder(envelope: Envelope) -> bool:
    return envelope.source.startswith("imap-sent:")


@dataclass
class Outcome:
    """What a desk function did with a mail: the step copies it into the pipeline's context."""

    path: Path | None = None
    ticket: Ticket | None = None
    message: Row | None = None  # the mail as stored on its ticket (``tickets.add_message``)
    rejected: list[dict] = field(default_factory=list)  # attachments outside the policy
    lines: list[str] = field(default_factory=list)
