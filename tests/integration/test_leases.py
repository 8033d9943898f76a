"""Leases and cursors on both databases: one holder at a time, takeover after expiry."""

from postdesk.store.db import Database
from postdesk.store.leases import StoreCursors, StoreLeases
from tests.clocks import Clock


def test_one_holder_at_a_time_and_takeover(db_url):
    db = Database(db_url)
    clock = Clock()
    leases = StoreLeases(db, clock=clock.now)
    assert leases.acquire("imap:support", "a", 60)
    assert not leases.acquire("imap:support", "b", 60)
    assert leases.acquire("imap:support", "a", 60)  # renewal
    assert leases.acquire("imap:other", "b", 60)
    assert leases.acquire("imap:short", "a", 0.2)
    clock.advance(0.1)
    assert not leases.acquire("imap:short", "b", 60)  # not expired yet
    clock.advance(0.2)
    assert leases.acquire("imap:short", "b", 60)  # the holder stopped renewing
    assert not leases.acquire("imap:short", "a", 60)
    leases.release("imap:support", "a")
    assert leases.acquire("imap:support", "b", 60)
    db.dispose()


def test_cursors(db_url):
    db = Database(db_url)
    cursors = StoreCursors(db)
    assert cursors.load_cursor("support", "INBOX") is None
    cursors.save_cursor("support", "INBOX", 4_000_000_000, 12)
    cursors.save_cursor("support", "INBOX", 4_000_000_000, 15)
    assert cursors.load_cursor("support", "INBOX") == (4_000_000_000, 15)
    db.dispose()
