"""``db.insert_row`` and ``tickets.open_ticket``: the record handed back is the row as written.

The INSERT returns only what the database decides (the id, the columns with a server default);
every other column of the record is what the INSERT wrote. Each record is checked here against
the same row read back from the table, column by column, on both stores.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from postdesk.store import outbox, tickets
from postdesk.store.db import Database
from postdesk.store.models import Attachment, Message, Outbox, Ticket

NOW = datetime(2026, 12, 7, 10, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


def _as_read(session, model, row_id: int) -> dict:
    table = model.__table__
    read = session.execute(select(table).where(table.c.id == row_id)).one()._mapping
    return {column.key: read[column] for column in table.columns}


def _same_as_read(record, read: dict) -> None:
    assert set(record._fields) <= set(read)
    for name in record._fields:
        assert getattr(record, name) == read[name], name
        assert type(getattr(record, name)) is type(read[name]), name


def test_every_written_column_is_the_row_as_read_back(db):
    with db.session() as session:
        ticket = tickets.open_ticket(session, NOW, subject="Imprimante", requester="a@client.test",
                                     locale="fr", thread_root="<m1@client.test>")
        message = tickets.add_message(session, ticket.id, NOW, to=["support@desk.test"],
                                      direction="in", kind="customer", from_addr="a@client.test",
                                      from_name="A", subject="Imprimante",
                                      message_id="<m1@client.test>", text="Elle ne marche plus.")
        file = tickets.add_attachment(session, message.id, filename="a.pdf",
                                      content_type="application/pdf", size=5, sha256="0" * 64,
                                      data=b"%PDF-")
        queued = outbox.add(session, NOW, rcpts=["a@client.test"], ticket_id=ticket.id,
                            template="ticket_created", mail_from="support@desk.test",
                            message_id="<ack@desk.test>", raw=b"mail", automatic=True)
    with db.reader() as session:
        for record, model in ((ticket, Ticket), (message, Message), (file, Attachment),
                              (queued, Outbox)):
            _same_as_read(record, _as_read(session, model, record.id))


def test_what_the_database_decides_comes_from_it(db):
    with db.session() as session:
        ticket = tickets.open_ticket(session, NOW, subject="s", requester="a@client.test")
        first = tickets.add_message(session, ticket.id, NOW, direction="in", kind="customer",
                                    from_addr="a@client.test")
        second = tickets.add_message(session, ticket.id, NOW, direction="in", kind="customer",
                                     from_addr="a@client.test", dmarc_failed=True)
    assert second.id > first.id > 0
    assert first.dmarc_failed is False  # the column's server default
    assert second.dmarc_failed is True
    assert (first.body, first.to_addrs, first.html) == ("", "[]", None)  # Python-side defaults
    assert ticket.status == "new" and ticket.reminders_sent == 0  # the model's defaults


def test_the_record_is_read_only_and_has_no_bytes(db):
    with db.session() as session:
        ticket = tickets.open_ticket(session, NOW, subject="s", requester="a@client.test")
        queued = outbox.add(session, NOW, rcpts=["a@client.test"], ticket_id=ticket.id,
                            template="t", mail_from="support@desk.test",
                            message_id="<q@desk.test>", raw=b"bytes", automatic=False)
    assert "raw" not in queued._fields
    with pytest.raises(AttributeError):
        queued.status = "sent"
