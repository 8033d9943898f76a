"""The SQLModel tables of postdesk; the schema that Alembic migrations create and evolve.

Times are timezone-aware UTC in Python (SQLModel's ``UTCDateTime``: ``timestamptz`` on
PostgreSQL, UTC text on SQLite). Lists of addresses are JSON text. Raw mails and attachment
bytes live in the database unless ``[store] blob_dir`` is set. Unique keys make every intake
idempotent: a message's normalised Message-ID, an IMAP mail's (mailbox, folder, UIDVALIDITY,
UID), an outbound mail's Message-ID. No business rule lives here.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (BigInteger, Boolean, Column, Float, Index, LargeBinary, Text, UniqueConstraint,
                        false)
from sqlmodel import Field, SQLModel

from postdesk.lifecycle import InboundStatus, Status


class Inbound(SQLModel, table=True):
    """One received raw mail, stored before it was acknowledged; the worker's queue."""

    __tablename__ = "inbound"
    # The envelope indexes count the mails of a sender that gave no From (the flood limit).
    __table_args__ = (Index("ix_inbound_status_id", "status", "id"),
                      Index("ix_inbound_mail_from_received", "mail_from", "received_at"),
                      Index("ix_inbound_peer_received", "peer", "received_at"))

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime
    source: str = Field(max_length=300)
    mail_from: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    rcpt_tos: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    peer: str | None = Field(default=None, max_length=100)
    size: int
    sha256: str = Field(max_length=64, index=True)
    blob_path: str | None = Field(default=None, max_length=300)
    imap_key: str | None = Field(default=None, max_length=600, unique=True)
    status: str = Field(default=InboundStatus.RECEIVED.value, max_length=20)
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_at: datetime | None = None
    processed_at: datetime | None = None
    message_id: str | None = Field(default=None, max_length=998, index=True)
    ticket_id: int | None = None
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error_step: str | None = Field(default=None, max_length=50)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Last, so that SQLite can write a big mail into a zeroblob in place (``store/inbound.py``).
    raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class Contact(SQLModel, table=True):
    """A person who wrote to the desk or was copied: their name and language."""

    __tablename__ = "contact"

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=300)
    locale: str | None = Field(default=None, max_length=10)
    created_at: datetime
    # Permanent delivery failures reported by bounces (``desk.bounces``): the score, when the
    # last one counted, and since when the desk stops mailing the address (None: it mails it).
    bounce_score: float = Field(default=0.0, sa_column=Column(Float, nullable=False,
                                                              server_default="0"))
    last_bounce_at: datetime | None = Field(default=None)
    undeliverable_since: datetime | None = Field(default=None)


class Ticket(SQLModel, table=True):
    """A support request; its timers are columns so sweeps can find what is due by index."""

    __tablename__ = "ticket"
    __table_args__ = (Index("ix_ticket_status_due", "status", "next_due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = Field(default=Status.NEW.value, max_length=20, index=True)
    requester: str = Field(max_length=320, index=True)
    queue: str = Field(default="default", max_length=100, index=True)
    priority: str = Field(default="normal", max_length=10)
    assignee: str | None = Field(default=None, max_length=320, index=True)
    locale: str = Field(default="fr", max_length=10)
    created_at: datetime
    updated_at: datetime
    pending_since: datetime | None = None
    reminders_sent: int = 0
    next_due_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = Field(default=None, max_length=30)
    closed_at: datetime | None = None
    first_response_at: datetime | None = None
    survey_due_at: datetime | None = Field(default=None, index=True)
    follow_up_of: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    related_to: int | None = Field(default=None, foreign_key="ticket.id")
    merged_into: int | None = Field(default=None, foreign_key="ticket.id")
    thread_root: str | None = Field(default=None, max_length=998)


class Participant(SQLModel, table=True):
    """An address that may write into a ticket: the requester, a CC'd contact, an agent."""

    __tablename__ = "participant"
    __table_args__ = (UniqueConstraint("ticket_id", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    address: str = Field(max_length=320)
    role: str = Field(default="cc", max_length=20)
    added_at: datetime


class Message(SQLModel, table=True):
    """One mail of a ticket, in or out, with how it was threaded and why."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_from_created", "from_addr", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    inbound_id: int | None = Field(default=None, foreign_key="inbound.id")
    direction: str = Field(max_length=3)
    kind: str = Field(max_length=20)
    from_addr: str = Field(default="", max_length=320)
    from_name: str = Field(default="", max_length=300)
    to_addrs: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    cc_addrs: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    message_id: str | None = Field(default=None, max_length=998, unique=True)
    in_reply_to: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    html: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    automatic: str | None = Field(default=None, max_length=200)
    # The trusted receiving server said its From failed DMARC: it counts toward no one's
    # inbound flood limit but the envelope sender's (docs/security.md).
    dmarc_failed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False,
                                                                server_default=false()))
    threaded_by: str = Field(default="new", max_length=30)
    evidence: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime


class Survey(SQLModel, table=True):
    """The satisfaction survey of a resolved ticket: when it was asked, the answer that counts."""

    __tablename__ = "survey"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", unique=True)
    scale: str = Field(default="1-7", max_length=10)
    sent_at: datetime
    message_id: str | None = Field(default=None, max_length=998)
    score: int | None = None
    satisfied: bool | None = None
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    answered_at: datetime | None = None
    answers: int = 0


class Escalation(SQLModel, table=True):
    """An escalation of a ticket: reference CP-<id>, current step, estimated date."""

    __tablename__ = "escalation"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    status: str = Field(default="submitted", max_length=20)
    estimated_date: date | None = None
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None


class EscalationStep(SQLModel, table=True):
    """One step of an escalation's timeline: submitted, evaluating, engineering, verifying, resolved."""

    __tablename__ = "escalation_step"

    id: int | None = Field(default=None, primary_key=True)
    escalation_id: int = Field(foreign_key="escalation.id", index=True)
    step: str = Field(max_length=20)
    at: datetime
    actor: str = Field(default="system", max_length=320)
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    estimated_date: date | None = None


class Attachment(SQLModel, table=True):
    """A file of a message; ``rejected`` says which policy rule kept it off the ticket."""

    __tablename__ = "attachment"

    id: int | None = Field(default=None, primary_key=True)
    message_pk: int = Field(foreign_key="message.id", index=True)
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=255)
    size: int
    sha256: str = Field(max_length=64)
    blob_path: str | None = Field(default=None, max_length=300)
    rejected: str | None = Field(default=None, max_length=300)
    # Last, for the same reason as ``Inbound.raw``.
    data: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class Event(SQLModel, table=True):
    """Every change of a ticket: who did what, when; the ticket's timeline."""

    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    at: datetime
    actor: str = Field(default="system", max_length=320)
    kind: str = Field(max_length=50)
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))


class Outbox(SQLModel, table=True):
    """A finished outbound mail (MIME bytes, fixed Message-ID) waiting for the sender."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_rcpt_created", "primary_rcpt", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    template: str = Field(max_length=50)
    mail_from: str = Field(max_length=320)
    rcpts: str = Field(sa_column=Column(Text, nullable=False))
    primary_rcpt: str = Field(max_length=320)
    message_id: str = Field(max_length=998, unique=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    automatic: bool = False
    status: str = Field(default="queued", max_length=20)
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=200)
    next_attempt_at: datetime
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime
    sent_at: datetime | None = None


class TemplateVersion(SQLModel, table=True):
    """One saved version of one part of an admin's template override."""

    __tablename__ = "template_version"
    __table_args__ = (UniqueConstraint("key", "locale", "part", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=50)
    locale: str = Field(max_length=10)
    part: str = Field(max_length=10)
    version: int
    source: str = Field(sa_column=Column(Text, nullable=False))
    author: str = Field(default="", max_length=320)
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime


class Organisation(SQLModel, table=True):
    """A customer organisation: its mail domains and its admins (who see all its tickets)."""

    __tablename__ = "organisation"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    domains: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    admins: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    created_at: datetime


class ImapCursor(SQLModel, table=True):
    """Where the poller of one IMAP folder stands: (UIDVALIDITY, last UID stored)."""

    __tablename__ = "imap_cursor"

    mailbox: str = Field(max_length=100, primary_key=True)
    folder: str = Field(max_length=300, primary_key=True)
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime


class Lease(SQLModel, table=True):
    """Who holds a named job (one IMAP poller per mailbox) and until when."""

    __tablename__ = "lease"

    name: str = Field(max_length=200, primary_key=True)
    holder: str = Field(max_length=200)
    expires_at: datetime
