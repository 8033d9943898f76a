"""``inbound.add_raw``, the edge's one write, on both stores (on PostgreSQL through psycopg's own
``executemany``): each mail's row holds exactly what was handed over, the ids come back in
the order of the mails, and a batch that fails stores none of its mails."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from postdesk.mail.envelope import Envelope
from postdesk.store import inbound
from postdesk.store.clock import as_utc, utcnow
from postdesk.store.large import LARGE_VALUE
from postdesk.store.models import Inbound
from tests.helpers import make_mail


def raw_mail(raw: bytes | bytearray | None, n: int, **extra) -> inbound.RawMail:
    envelope = Envelope(f"s{n}@example.com", (f"r{n}@desk.test", "other@desk.test"), "smtp",
                        f"192.0.2.{n}")
    body = bytes(raw or b"")
    return inbound.RawMail(raw, envelope, hashlib.sha256(body).hexdigest(), len(body), **extra)


@pytest.mark.parametrize("with_big", [False, True], ids=["small", "with-a-big-mail"])
def test_each_row_holds_what_was_handed_over_and_the_ids_follow_the_mails(database, with_big):
    """A batch with a big mail (over ``LARGE_VALUE``) takes the other way on PostgreSQL, where
    psycopg's pipeline held one more copy of it, and on SQLite is written in place."""
    mails = [raw_mail(make_mail(message_id=f"<r{n}@example.com>"), n) for n in range(5)]
    if with_big:
        mails.insert(2, raw_mail(bytearray(b"Subject: big\r\n\r\n" + b"x" * LARGE_VALUE), 8))
    mails.append(raw_mail(bytearray(b"Subject: a read buffer\r\n\r\nbytes \x00\xff\r\n"), 5))
    mails.append(raw_mail(None, 6, blob_path="ab/cdef"))
    mails.append(raw_mail(b"Subject: from IMAP\r\n\r\nx\r\n", 7, imap_key="box\x1fINBOX\x1f1\x1f9"))
    now = utcnow()
    with database.transaction() as connection:
        ids = inbound.add_raw(connection, mails, now)
    assert len(ids) == len(mails) and ids == sorted(ids)
    with database.engine.connect() as conn:
        rows = {row.id: row for row in conn.execute(sa.select(Inbound.__table__))}
    assert set(rows) == set(ids)
    for stored_id, mail in zip(ids, mails):
        row = rows[stored_id]
        assert (None if row.raw is None else bytes(row.raw)) == (
            None if mail.raw is None else bytes(mail.raw))
        assert (row.mail_from, row.rcpt_tos, row.peer, row.source) == (
            mail.envelope.mail_from, f'["r{mail.envelope.mail_from[1]}@desk.test", '
            '"other@desk.test"]', mail.envelope.peer, "smtp")
        assert (row.size, row.sha256, row.blob_path, row.imap_key) == (
            mail.size, mail.sha256, mail.blob_path, mail.imap_key)
        assert (row.status, row.attempts) == ("received", 0)
        assert as_utc(row.received_at) == now


def test_a_batch_that_fails_stores_none_of_its_mails(database):
    key = "box\x1fINBOX\x1f1\x1f1"
    with database.transaction() as connection:
        inbound.add_raw(connection, [raw_mail(b"Subject: first\r\n\r\n", 0, imap_key=key)],
                        utcnow())
    batch = [raw_mail(b"Subject: fine\r\n\r\n", 1),
             raw_mail(b"Subject: the same IMAP message again\r\n\r\n", 2, imap_key=key)]
    with pytest.raises(IntegrityError), database.transaction() as connection:
        inbound.add_raw(connection, batch, utcnow())
    with database.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM inbound")).scalar() == 1
