"""The worker's claim: one ``UPDATE ... RETURNING`` statement, oldest first, a retried mail
alone, and on PostgreSQL concurrent claims that skip each other's rows without waiting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from postdesk.mail.envelope import Envelope
from postdesk.store import inbound
from postdesk.store.clock import utcnow
from tests.helpers import make_mail

SMTP = Envelope("alice@example.com", ("support@desk.test",), "smtp", "127.0.0.1")


def store(app, count: int) -> list[int]:
    return app.intake().store_many([(make_mail(message_id=f"<c{n}@example.com>",
                                               subject=f"Request {n}"), SMTP)
                                    for n in range(count)])


def statements_of(app) -> list[str]:
    seen: list[str] = []

    @event.listens_for(app.db.engine, "before_cursor_execute")
    def record(_conn, _cursor, statement, *_rest):
        if not statement.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE")):
            seen.append(statement)
    return seen


def test_a_claim_is_one_statement_oldest_first_with_its_holder_and_attempt(make_app):
    app = make_app()
    ids = store(app, 5)
    seen = statements_of(app)
    now = utcnow()
    with app.db.session() as session:
        rows = inbound.claim(session, "here:1:a", 3, now, postgres=not app.db.is_sqlite)
    assert len(seen) == 1
    assert "UPDATE inbound" in seen[0] and "RETURNING" in seen[0]
    assert [row.id for row in rows] == ids[:3]
    assert {(row.status, row.claimed_by, row.attempts) for row in rows} == {
        (inbound.PROCESSING, "here:1:a", 1)}
    assert all("raw" not in row.__dict__ for row in rows)  # the bytes stay in the store
    with app.db.session() as session:
        assert inbound.raw_of(rows[0], app.blobs, session).startswith(b"From: alice@example.com")
    with app.db.reader() as session:
        assert inbound.counts(session) == {inbound.PROCESSING: 3, inbound.RECEIVED: 2}


def test_a_mail_claimed_before_comes_back_first_and_alone(make_app):
    app = make_app()
    ids = store(app, 5)
    postgres = not app.db.is_sqlite
    with app.db.session() as session:  # a worker takes the three oldest and dies
        inbound.claim(session, "gone:1:a", 3, utcnow(), postgres=postgres)
    with app.db.session() as session:
        assert inbound.release_stale(session, utcnow(), timedelta(hours=1), ["gone:1:a"]) == 3
    taken = []
    for _ in range(4):
        with app.db.session() as session:
            rows = inbound.claim(session, "here:1:b", 10, utcnow(), postgres=postgres)
        taken.append([(row.id, row.attempts) for row in rows])
    assert taken == [[(ids[0], 2)], [(ids[1], 2)], [(ids[2], 2)], [(ids[3], 1), (ids[4], 1)]]
    with app.db.session() as session:
        assert inbound.claim(session, "here:1:b", 10, utcnow(), postgres=postgres) == []


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_concurrent_claims_skip_each_others_rows_without_waiting(make_app):
    """Two workers claim at the same time: the second, while the first's transaction is still
    open, takes the next mails (its ``SKIP LOCKED`` subquery passes over the locked rows)."""
    app = make_app()
    ids = store(app, 6)
    with app.db.session() as first:
        mine = inbound.claim(first, "here:1:a", 2, utcnow(), postgres=True)
        with app.db.session() as second:
            second.connection().exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            theirs = inbound.claim(second, "here:1:b", 2, utcnow(), postgres=True)
    assert [row.id for row in mine] == ids[:2]
    assert [row.id for row in theirs] == ids[2:4]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_retried_mail_locked_by_another_claim_is_skipped(make_app):
    app = make_app()
    ids = store(app, 4)
    with app.db.session() as session:
        inbound.claim(session, "gone:1:a", 1, utcnow(), postgres=True)
        inbound.release_stale(session, utcnow(), timedelta(hours=1), ["gone:1:a"])
    with app.db.session() as first:
        alone = inbound.claim(first, "here:1:a", 3, utcnow(), postgres=True)
        with app.db.session() as second:
            second.connection().exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            batch = inbound.claim(second, "here:1:b", 3, utcnow(), postgres=True)
    assert [(row.id, row.attempts) for row in alone] == [(ids[0], 2)]
    assert [(row.id, row.attempts) for row in batch] == [(i, 1) for i in ids[1:4]]
