"""The state of one mail's run through the pipeline, and the services the steps share.

:class:`Context` is one mail's run: its stored row, the parsed mail, the decision, the
ticket and message it produced, and the outcome lines the worker logs and stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from postdesk.actions.services import Desk
from postdesk.config import AgentSettings
from postdesk.mail.envelope import Envelope
from postdesk.mail.parse import ParsedMail
from postdesk.store.models import Inbound, Message, Ticket
from postdesk.threading.decide import Decision

__all__ = ["Context", "Desk"]


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
    decision: Decision | None = None
    ticket: Ticket | None = None
    message: Message | None = None
    agent: AgentSettings | None = None  # the verified agent who wrote the mail
    spoof: str | None = None  # why a mail claiming an agent's address is not taken as theirs
    done: bool = False  # a step answered the mail completely (e.g. a history request)
    rejected: list[dict] = field(default_factory=list)  # attachments outside the policy
    outcome: list[str] = field(default_factory=list)
    step: str = ""
