"""The state of one mail's run through the pipeline, and the services the steps share.

:class:`Context` is one mail's run: its stored row, the parsed mail, what the steps found out
(automatic, agent, decision), the path ``step_record`` took, the ticket and message it produced,
and the outcome lines the worker logs and stores. The desk (``postdesk.desk``) never sees it:
the steps hand it an :class:`~postdesk.desk.arrival.Arrival` built by :meth:`Context.arrival`
and copy its :class:`~postdesk.desk.arrival.Outcome` back (:meth:`Context.take`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Row
from sqlmodel import Session

from postdesk.config import AgentSettings
from postdesk.desk.arrival import Arrival, Outcome, Path, TextReadings
from postdesk.desk.services import Desk
from postdesk.mail.bounces import Bounce
from postdesk.mail.envelope import Envelope
from postdesk.mail.parse import ParsedMail
from postdesk.store.models import Inbound, Ticket
from postdesk.templates.keys import LOCALES  # the desk's languages: quote headers, tickets
from postdesk.threading.decide import Decision

__all__ = ["LOCALES", "Context", "Desk", "TextReadings"]


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
    path: Path | None = None  # which way ``step_record`` went; ``step_notify`` reads it
    ticket: Ticket | None = None
    message: Row | None = None  # the mail as stored on its ticket (``tickets.add_message``)
    agent: AgentSettings | None = None  # the verified agent who wrote the mail
    spoof: str | None = None  # why a mail claiming an agent's address is not taken as theirs
    done: bool = False  # a step answered the mail completely (e.g. a history request)
    rejected: list[dict] = field(default_factory=list)  # attachments outside the policy
    outcome: list[str] = field(default_factory=list)
    step: str = ""
    readings: TextReadings = field(default_factory=TextReadings)
    # Asked when the mail answers Message-IDs nobody knows: True while it must wait for earlier
    # mail still being processed (the worker's; None on the pass that no longer waits).
    earlier_pending: Callable[[], bool] | None = None

    def arrival(self) -> Arrival:
        """The mail as the desk sees it: what the steps so far found out, as plain values."""
        return Arrival(self.mail, self.inbound.id, self.envelope, self.now, self.readings,
                       self.decision, self.automatic, self.bounce, self.dmarc_failure,
                       self.agent, self.unreachable)

    def take(self, outcome: Outcome) -> None:
        """Copy what a desk function did into the run."""
        self.path = outcome.path or self.path
        self.ticket, self.message = outcome.ticket, outcome.message
        self.rejected.extend(outcome.rejected)
        self.outcome.extend(outcome.lines)
