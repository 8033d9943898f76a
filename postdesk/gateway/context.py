"""The state of one mail's run through the pipeline, and the services the steps share.

:class:`Context` is one mail's run: its stored row, the parsed mail, the decision, the
ticket and message it produced, and the outcome lines the worker logs and stores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Row
from sqlmodel import Session

from postdesk.actions.services import Desk
from postdesk.config import AgentSettings
from postdesk.mail.bounces import Bounce
from postdesk.mail.envelope import Envelope
from postdesk.mail.language import detect_language
from postdesk.mail.parse import ParsedMail
from postdesk.mail.quotes import reply_text
from postdesk.store.models import Inbound, Ticket
from postdesk.templates.keys import LOCALES  # the desk's languages: quote headers, tickets
from postdesk.threading.decide import Decision

__all__ = ["LOCALES", "Context", "Desk", "Readings"]

_UNREAD = object()


class Readings:
    """What the pipeline reads off the parsed mail's text, each at most once: the text without
    its quotes and the detected language. The worker may read them before the mail's
    transaction (``Worker._prepare``), so that this CPU work does not hold SQLite's write lock.
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


@dataclass
class Context:
    session: Session
    desk: Desk
    inbound: Inbound
    envelope: Envelope
    raw: bytes
    now: datetime
    mail: ParsedMail | None = None
    automatic: str | None = None
    # Why the trusted server does not vouch for the From (DMARC failed), read once by the flood
    # step for every mail with a From but an agent's; the #close check reads it too.
    dmarc_failure: str | None = None
    unreachable: str | None = None  # the raw From of a mail with no usable sender address
    bounce: Bounce | None = None  # a delivery report, and the recipients it says failed
    decision: Decision | None = None
    ticket: Ticket | None = None
    message: Row | None = None  # the mail as stored on its ticket (``tickets.add_message``)
    agent: AgentSettings | None = None  # the verified agent who wrote the mail
    spoof: str | None = None  # why a mail claiming an agent's address is not taken as theirs
    done: bool = False  # a step answered the mail completely (e.g. a history request)
    rejected: list[dict] = field(default_factory=list)  # attachments outside the policy
    outcome: list[str] = field(default_factory=list)
    step: str = ""
    readings: Readings = field(default_factory=Readings)
    # Asked when the mail answers Message-IDs nobody knows: True while it must wait for earlier
    # mail still being processed (the worker's; None on the pass that no longer waits).
    earlier_pending: Callable[[], bool] | None = None

    def text_without_quotes(self) -> str:
        """The mail's text without the quoted history under it (read once per mail)."""
        return self.readings.text_without_quotes(self.mail)

    def detected_language(self) -> str | None:
        """The language the subject and text are written in, among :data:`LOCALES`."""
        return self.readings.language(self.mail)
