"""The contacts a transaction read are remembered for the rest of it, misses included, and
answer ``contacts.undeliverable`` without a query; writing bounce state, or rolling a
savepoint back, forgets them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from postdesk.store import contacts, limits, tickets

NOW = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def statements(database):
    seen: list[str] = []  # the queries (not BEGIN, which SQLite sends as a statement)
    def listener(_conn, _cursor, statement, *_):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", listener)
    yield seen
    event.remove(database.engine, "before_cursor_execute", listener)


def test_a_new_contact_is_read_once_and_its_deliverability_costs_no_query(database, statements):
    with database.session() as session:
        assert tickets.contact(session, "ann@client.test") is None
        tickets.ensure_contact(session, "ann@client.test", "Ann", NOW, "fr")
        before = len(statements)
        assert contacts.undeliverable(session, ["ann@client.test"]) == set()
        assert tickets.contact(session, "ann@client.test").name == "Ann"
        assert len(statements) == before
    assert len(statements) == 1  # the miss is remembered: ensure_contact does not ask again


def test_undeliverable_reads_unknown_addresses_in_one_query(database, statements):
    with database.session() as session:
        for address in ("bob@client.test", "eve@client.test"):
            tickets.ensure_contact(session, address, "", NOW)
    with database.session() as session:
        found = contacts.bounce_state(session, "eve@client.test")
        contacts.set_bounce_state(session, found.id, 3.0, NOW, NOW)
    with database.session() as session:
        before = len(statements)
        blocked = contacts.undeliverable(session, ["bob@client.test", "eve@client.test",
                                                   "nobody@client.test"])
        assert blocked == {"eve@client.test"}
        assert len(statements) == before + 1
        assert tickets.contact(session, "nobody@client.test") is None
        assert len(statements) == before + 1


def test_bounce_state_written_is_seen_in_the_same_transaction(database):
    with database.session() as session:
        tickets.ensure_contact(session, "cid@client.test", "", NOW)
        assert contacts.undeliverable(session, ["cid@client.test"]) == set()
        found = contacts.bounce_state(session, "cid@client.test")
        contacts.set_bounce_state(session, found.id, 3.0, NOW, NOW)
        assert contacts.undeliverable(session, ["cid@client.test"]) == {"cid@client.test"}


def test_a_rolled_back_savepoint_forgets_the_contact_it_added(database):
    with database.session() as session:
        savepoint = session.begin_nested()
        tickets.ensure_contact(session, "dan@client.test", "Dan", NOW)
        savepoint.rollback()
        assert tickets.contact(session, "dan@client.test") is None


def test_the_flood_count_reads_the_senders_contact_as_contact_would(database, statements):
    """``limits.received_from`` reads the sender's contact in its own statement (round AD): a
    known contact comes back with every column ``contact`` reads, an unknown address as a
    remembered miss, and neither costs ``contact`` a query afterwards."""
    with database.session() as session:
        tickets.ensure_contact(session, "fay@client.test", "Fay", NOW, "fr")
    with database.session() as session:
        expected = tickets.contact(session, "fay@client.test")
    since = NOW - timedelta(hours=1)
    with database.session() as session:
        before = len(statements)
        assert limits.received_from(session, "fay@client.test", since, NOW) == 0
        assert limits.received_from(session, "gus@client.test", since, NOW) == 0
        assert len(statements) == before + 2
        found = tickets.contact(session, "fay@client.test")
        assert tuple(found) == tuple(expected)
        assert (found.id, found.name, found.locale) == (expected.id, "Fay", "fr")
        assert found.created_at == expected.created_at == NOW
        assert tickets.contact(session, "gus@client.test") is None
        added = tickets.ensure_contact(session, "gus@client.test", "Gus", NOW)
        assert tickets.contact(session, "gus@client.test") == added
        assert len(statements) == before + 2
