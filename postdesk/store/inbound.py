"""Queries on the inbound queue: store raw mails, claim them for the worker, record outcomes.

Claiming follows procrastinate's habit: one ``UPDATE ... RETURNING`` statement chooses the due
rows in a subquery, marks them taken and returns them (the subquery takes ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite has a single writer, so the plain subquery inside ``BEGIN
IMMEDIATE`` is enough; it has RETURNING since 3.35). A claim carries its holder and time, so
rows of a crashed worker go back to ``received`` and are processed again.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (Text, bindparam, cast, delete, exists, func, insert, literal, null,
                        or_, select, union_all, update)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import defer
from sqlmodel import Session

from postdesk.lifecycle import InboundStatus
from postdesk.mail.envelope import Envelope
from postdesk.store.db import execute
from postdesk.store.errors import driver_errors
from postdesk.store.large import LARGE_VALUE, read_large, write_in_place, writes_in_place
from postdesk.store.models import Inbound, Message

RECEIVED, PROCESSING, PROCESSED = (InboundStatus.RECEIVED, InboundStatus.PROCESSING,
                                   InboundStatus.PROCESSED)
DISCARDED, QUARANTINED = InboundStatus.DISCARDED, InboundStatus.QUARANTINED
# An envelope sender is stored at most this long (RFC 5321 allows 256 octets): it is indexed,
# and PostgreSQL refuses an index entry over 2,704 bytes.
MAX_MAIL_FROM = 512

# The edge's one statement (a Core INSERT: the ORM's bulk insert cost twice the CPU).
_ADD_RAW = insert(Inbound.__table__).returning(Inbound.__table__.c.id,
                                               sort_by_parameter_order=True)
# The statements the worker runs for every mail, built once (``db.execute``).
# Only the worker still holding the claim may finish a mail: one paused past the claim timeout
# finds its mail finished, or claimed again, by another worker.
_FINISH = update(Inbound).where(
    Inbound.id == bindparam("inbound_id"), Inbound.status == PROCESSING,
    Inbound.claimed_by == bindparam("holder")).values(
    status=bindparam("status"), processed_at=bindparam("now"), outcome=bindparam("outcome"),
    ticket_id=bindparam("ticket_id"), message_id=bindparam("message_id"),
    error_step=bindparam("step"), error=bindparam("error"), claimed_by=None, claimed_at=None)
_RAW = select(Inbound.raw).where(Inbound.id == bindparam("inbound_id"))
_PROCESSED_WITH_SHA = select(Inbound.id).where(
    Inbound.sha256 == bindparam("sha256"), Inbound.id != bindparam("other_than"),
    Inbound.status.in_((PROCESSED, DISCARDED))).limit(1)
# Earlier mail another worker has claimed and not finished (the ``(status, id)`` index); a
# claim older than the claim timeout is a dead worker's, given back by the next release.
_EARLIER_ELSEWHERE = select(Inbound.id).where(
    Inbound.status == PROCESSING, Inbound.id < bindparam("inbound_id"),
    Inbound.claimed_by != bindparam("holder"),
    Inbound.claimed_at >= bindparam("claimed_since")).limit(1)
_RAWS = select(Inbound.id, Inbound.raw).where(Inbound.id.in_(bindparam("ids", expanding=True)))
# Both places a Message-ID can already be known, in one round trip. Each branch has one
# equality on an indexed column only: with ``status = 'processed'`` in the WHERE, SQLite chose
# the status index and read every processed mail of the store (the status is checked on the
# few rows found instead).
_EARLIER_COPIES = union_all(
    select(literal("message"), Message.id, Message.ticket_id, cast(null(), Text),
           cast(null(), Text), Message.from_addr, Message.direction)
    .where(Message.message_id == bindparam("message_id")),
    select(literal("inbound"), Inbound.id, Inbound.ticket_id, Inbound.outcome, Inbound.status,
           cast(null(), Text), cast(null(), Text))
    .where(Inbound.message_id == bindparam("message_id"), Inbound.id != bindparam("other_than")))


# Mails processed since a time from one envelope sender, or one peer (the flood limit of
# mail without From): one equality and a range on the ``(mail_from|peer, received_at)`` index.
_PROCESSED_FROM_SINCE = select(func.count()).select_from(Inbound).where(
    Inbound.mail_from == bindparam("mail_from"), Inbound.received_at >= bindparam("since"),
    Inbound.status == PROCESSED)
_PROCESSED_FROM_PEER_SINCE = select(func.count()).select_from(Inbound).where(
    Inbound.peer == bindparam("peer"), Inbound.received_at >= bindparam("since"),
    Inbound.status == PROCESSED)


@dataclass(frozen=True)
class RawMail:
    """What the edge hands to the store for one accepted mail."""

    raw: bytes | bytearray | None  # the SMTP edge hands on its read buffer
    envelope: Envelope
    sha256: str
    size: int
    blob_path: str | None = None
    imap_key: str | None = None


def add_raw(connection: Connection, mails: Sequence[RawMail], now: datetime) -> list[int]:
    """Insert accepted mails (one transaction for the batch: group commit); returns their ids,
    in the order of ``mails`` (each SMTP client is told its own). On SQLite a big mail's
    bytes are written into its row in place (``large.write_in_place``), in the same transaction.
    On PostgreSQL with psycopg, a batch of mails none of them big goes through psycopg's own
    ``executemany`` (below); a batch with a big mail does not: in that pipeline psycopg held one
    more copy of the mail's bytes, 24 MiB more at the SMTP edge's peak for a 24 MiB mail
    (docs/performance.md, round Z)."""
    large = [mail.raw is not None and mail.size > LARGE_VALUE for mail in mails]
    if connection.dialect.driver == "psycopg" and not any(large):
        return _add_raw_psycopg(connection, mails, now)
    in_place = writes_in_place(connection)
    big = [in_place and one for one in large]
    result = connection.execute(_ADD_RAW, [_row(mail, now, None if later else mail.raw)
                                           for mail, later in zip(mails, big)])
    ids = list(result.scalars())
    for stored_id, mail, later in zip(ids, mails, big):
        if later:
            write_in_place(connection, Inbound.__table__.c.raw, stored_id, mail.raw)
    return ids


# One row's INSERT, the same for every batch: psycopg converts its text once and prepares it
# on the server after a few runs, and ``executemany`` sends a batch's rows in one pipeline
# (one round trip), each row's id in its own result, in order. SQLAlchemy's multi-row INSERT
# ("insertmanyvalues") is a new text for every batch size, with 12 parameters per row, which
# psycopg parses again each time past 50 parameters: 1.7 times the CPU for a batch of 8
# (docs/performance.md, round V).
@functools.lru_cache(maxsize=4)
def _add_raw_psycopg_text(columns: tuple[str, ...]) -> str:
    """The INSERT of one row of ``_row``'s columns, named as ``_row`` names them."""
    return (f"INSERT INTO inbound ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'%({column})s' for column in columns)}) RETURNING id")


def _add_raw_psycopg(connection: Connection, mails: Sequence[RawMail],
                     now: datetime) -> list[int]:
    rows = [_row(mail, now, mail.raw) for mail in mails]  # never empty: a batch has a mail
    ids: list[int] = []
    with driver_errors(connection), connection.connection.driver_connection.cursor() as cursor:
        cursor.executemany(_add_raw_psycopg_text(tuple(rows[0])), rows, returning=True)
        while True:
            ids.append(cursor.fetchone()[0])
            if not cursor.nextset():
                break
    return ids


def _row(mail: RawMail, now: datetime, raw: bytes | bytearray | None) -> dict:
    env = mail.envelope
    return {"received_at": now, "source": env.source[:300],
            "mail_from": env.mail_from[:MAX_MAIL_FROM],
            "rcpt_tos": json.dumps(list(env.rcpt_tos)), "peer": env.peer, "size": mail.size,
            "sha256": mail.sha256, "raw": raw, "blob_path": mail.blob_path,
            "imap_key": mail.imap_key, "status": RECEIVED, "attempts": 0}


def id_for_imap_key(session: Session, key: str) -> int | None:
    return session.scalar(select(Inbound.id).where(Inbound.imap_key == key))


def claim(session: Session, holder: str, limit: int, now: datetime, postgres: bool) -> list[Inbound]:
    """Take up to ``limit`` received mails, oldest first, for ``holder``, in one statement.

    Each claim counts as an attempt. A mail that was claimed before and never finished (its
    worker died) is claimed alone, so a crash it causes counts against it and not against a
    whole batch of innocent neighbours. The raw bytes stay in the database until the worker
    reaches each mail (``raw_of``): a batch of big mails is never in memory at once.
    """
    claimed = session.scalars(_CLAIM[postgres], {"holder": holder, "now": now, "limit": limit},
                              execution_options={"synchronize_session": False,
                                                 "populate_existing": True})
    return sorted(claimed, key=lambda row: row.id)  # RETURNING promises no order


def _claim_statement(postgres: bool):
    """``UPDATE inbound ... WHERE id IN (the chosen ids) RETURNING ...``: the oldest received
    mail with an attempt already (claimed alone), else the ``limit`` oldest received mails. On
    PostgreSQL both choices lock their rows and skip those another worker's claim has locked,
    so concurrent workers take different mails and never wait for each other."""
    retried = (select(Inbound.id).where(Inbound.status == RECEIVED, Inbound.attempts > 0)
               .order_by(Inbound.id).limit(1))
    if postgres:
        retried = retried.with_for_update(skip_locked=True)
    retried = retried.cte("retried")
    fresh = (select(Inbound.id).where(Inbound.status == RECEIVED, ~exists(select(retried.c.id)))
             .order_by(Inbound.id).limit(bindparam("limit")))
    if postgres:
        fresh = fresh.with_for_update(skip_locked=True)
    fresh = fresh.cte("fresh")
    chosen = union_all(select(retried.c.id), select(fresh.c.id))
    return (update(Inbound).where(Inbound.id.in_(chosen))
            .values(status=PROCESSING, claimed_by=bindparam("holder"), claimed_at=bindparam("now"),
                    attempts=Inbound.attempts + 1)
            .returning(Inbound).options(defer(Inbound.raw)))


_CLAIM = {postgres: _claim_statement(postgres) for postgres in (False, True)}


def renew_claims(session: Session, holder: str, now: datetime, postgres: bool) -> int:
    """Date ``holder``'s unfinished claims ``now``: a live worker renews them, so that only
    the claims of a worker that stopped grow older than the claim timeout, however long a mail
    takes. On PostgreSQL a row another transaction has locked (its worker is finishing it) is
    skipped, never waited for."""
    mine = select(Inbound.id).where(Inbound.status == PROCESSING, Inbound.claimed_by == holder)
    if postgres:
        mine = mine.with_for_update(skip_locked=True)
    result = session.execute(update(Inbound).where(Inbound.id.in_(mine)).values(claimed_at=now))
    return result.rowcount or 0


def release_stale(session: Session, now: datetime, timeout: timedelta,
                  dead_holders: Sequence[str] = (), keep: str | None = None) -> int:
    """Give back claims not renewed for ``timeout`` or held by holders known to be dead, never
    those of ``keep`` (the worker asking: its own claims are alive)."""
    stale = Inbound.claimed_at < now - timeout
    if dead_holders:
        stale = or_(stale, Inbound.claimed_by.in_(dead_holders))
    conditions = [Inbound.status == PROCESSING, stale]
    if keep:
        conditions.append(or_(Inbound.claimed_by.is_(None), Inbound.claimed_by != keep))
    result = session.execute(update(Inbound).where(*conditions)
                             .values(status=RECEIVED, claimed_by=None, claimed_at=None))
    return result.rowcount or 0


def earlier_elsewhere(session: Session, inbound_id: int, holder: str,
                      claimed_since: datetime) -> bool:
    """True while a mail stored before ``inbound_id`` is claimed (since ``claimed_since``) by
    a worker other than ``holder`` and not finished."""
    return execute(session, _EARLIER_ELSEWHERE,
                   {"inbound_id": inbound_id, "holder": holder,
                    "claimed_since": claimed_since}).first() is not None


def give_back(session: Session, holder: str) -> int:
    """Return the mails ``holder`` claimed and did not finish to the queue (other workers'
    claims are theirs)."""
    result = session.execute(update(Inbound).where(Inbound.status == PROCESSING,
                                                   Inbound.claimed_by == holder)
                             .values(status=RECEIVED, claimed_by=None, claimed_at=None))
    return result.rowcount or 0


def processing_holders(session: Session) -> list[str]:
    return list(session.scalars(select(Inbound.claimed_by).where(Inbound.status == PROCESSING)
                                .distinct()))


def finish(session: Session, inbound_id: int, holder: str, status: str, now: datetime, *,
           outcome: str = "", ticket_id: int | None = None, message_id: str | None = None,
           step: str | None = None, error: str | None = None) -> bool:
    """Record how ``holder``'s claimed mail ended; False when ``holder`` no longer holds it
    (its claim went unrenewed and another worker took the mail)."""
    result = execute(session, _FINISH, {
        "inbound_id": inbound_id, "holder": holder, "status": status, "now": now,
        "outcome": outcome[:2000], "ticket_id": ticket_id, "message_id": message_id,
        "step": step, "error": error})
    return result.rowcount == 1


def processed_with_sha(session: Session, sha256: str, other_than: int) -> int | None:
    """The id of an earlier mail with the same bytes that was already processed (dedupe
    without Message-ID); its bytes are not loaded."""
    return execute(session, _PROCESSED_WITH_SHA, {"sha256": sha256, "other_than": other_than}
                   ).scalar()


@dataclass(frozen=True)
class EarlierCopy:
    """A mail already recorded under the same Message-ID: a ``message`` of ticket ``ticket_id``,
    or a processed ``inbound`` mail and its ``outcome``."""

    kind: str
    id: int
    ticket_id: int | None
    outcome: str = ""
    from_addr: str | None = None  # a message's sender (None for an inbound mail: read its bytes)
    direction: str | None = None  # a message's: "in", or "out" for mail the desk sent


def earlier_copy(session: Session, message_id: str, other_than: int) -> EarlierCopy | None:
    """What already holds ``message_id`` (dedupe): a stored message first, else a processed mail
    other than ``other_than`` (an inbound row gets its Message-ID only once processed)."""
    found = None
    for kind, row_id, ticket_id, outcome, status, from_addr, direction in execute(
            session, _EARLIER_COPIES, {"message_id": message_id, "other_than": other_than}):
        if kind == "message":
            return EarlierCopy(kind, row_id, ticket_id, from_addr=from_addr, direction=direction)
        if found is None and status == PROCESSED:
            found = EarlierCopy(kind, row_id, ticket_id, outcome or "")
    return found


def get(session: Session, inbound_id: int) -> Inbound | None:
    return session.get(Inbound, inbound_id)


def by_status(session: Session, status: str, limit: int = 500) -> list[Inbound]:
    return list(session.scalars(select(Inbound).where(Inbound.status == status)
                                .order_by(Inbound.id).limit(limit)))


def requeue(session: Session, ids: Sequence[int] | None = None) -> int:
    """Put quarantined mails back in the queue (all of them when ``ids`` is None)."""
    query = update(Inbound).where(Inbound.status == QUARANTINED)
    if ids is not None:
        query = query.where(Inbound.id.in_(ids))
    result = session.execute(query.values(status=RECEIVED, attempts=0, error=None, error_step=None))
    return result.rowcount or 0


def quarantined_before(session: Session, before: datetime) -> list[int]:
    """The quarantined mails put there (or received, for old rows) before ``before``."""
    return list(session.scalars(select(Inbound.id).where(
        Inbound.status == QUARANTINED,
        func.coalesce(Inbound.processed_at, Inbound.received_at) < before).order_by(Inbound.id)))


def delete_quarantined(session: Session, ids: Sequence[int]) -> int:
    """Delete the mails ``ids`` that are quarantined (others are left alone); a message that
    names one as its source keeps its text and loses the link. Blob files stay: the same bytes
    may be arriving again this moment, under the same name."""
    deleted = 0
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        chosen = select(Inbound.id).where(Inbound.status == QUARANTINED, Inbound.id.in_(chunk))
        session.execute(update(Message).where(Message.inbound_id.in_(chosen))
                        .values(inbound_id=None))
        result = session.execute(delete(Inbound).where(Inbound.status == QUARANTINED,
                                                       Inbound.id.in_(chunk)))
        deleted += result.rowcount or 0
    return deleted


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Inbound.status, func.count()).group_by(Inbound.status))
    return {status: n for status, n in rows}


def raws(session: Session, ids: Sequence[int]) -> dict[int, bytes]:
    """The stored bytes of the mails ``ids`` kept in the database, in one query."""
    return {row_id: raw or b"" for row_id, raw in execute(session, _RAWS, {"ids": list(ids)})}


def raw_of(row: Inbound, blobs, session: Session | None = None) -> bytes:
    """The stored bytes of ``row``: from its blob, or from the database (read now, through
    ``session``, when the row was loaded without them, as claimed rows are)."""
    if row.blob_path:
        return blobs.get(row.blob_path)
    if session is not None and "raw" not in row.__dict__:
        if row.size > LARGE_VALUE:  # see large.LARGE_VALUE
            session.flush()
            return read_large(session.connection(), Inbound.__table__.c.raw, row.id)
        return execute(session, _RAW, {"inbound_id": row.id}).scalar() or b""
    return row.raw or b""


def processed_from_since(session: Session, since: datetime, *, mail_from: str | None = None,
                         peer: str | None = None) -> int:
    """How many mails of envelope sender ``mail_from`` (as stored), else of ``peer``, were
    processed among those received since ``since`` (the flood limit of mail without From)."""
    if mail_from:
        query, params = _PROCESSED_FROM_SINCE, {"mail_from": mail_from[:MAX_MAIL_FROM]}
    else:
        query, params = _PROCESSED_FROM_PEER_SINCE, {"peer": peer}
    return execute(session, query, {**params, "since": since}).scalar() or 0
