"""What the worker's hot path costs in statements, and what its shortcuts must keep equal
(SQLite and PostgreSQL; issue 24: the CPU per mail is mostly SQLAlchemy around each statement).

A new request is counted statement by statement, so that a statement added to the hot path is
a decision, not a drift. The shortcuts are held to the answers they replace: a ticket opened in
the transaction knows its thread without a query, and a group of mails shares its transaction
without a savepoint each, redone when one of them fails.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from postdesk.gateway import steps
from postdesk.mail.envelope import Envelope
from postdesk.store import inbound, limits, locks, outbox, tickets
from postdesk.store.clock import utcnow
from tests.helpers import deliver, make_mail

SMTP = Envelope("alice@example.com", ("support@desk.test",), "smtp", "127.0.0.1")
# Per new request from a new customer, no attachment, no Cc (docs/performance.md, rounds N
# and Q, round AD): dedupe, the flood count (which also counts the automatic mail queued to the
# sender, for the acknowledgement's limits, and reads the sender's contact), contact, ticket,
# participant and message written, outbox row and outgoing message written, the inbound row
# finished. PostgreSQL adds
# the sender's advisory lock (taken before the mail's first step, held for the flood count and
# the limits). The events of the whole group are one statement.
PER_NEW_MAIL = {"sqlite": 9, "postgresql": 10}
PER_GROUP = 1


def _store(app, count: int, prefix: str = "m", duplicate_of: dict[int, int] | None = None):
    duplicate_of = duplicate_of or {}
    mails = []
    for i in range(count):
        n = duplicate_of.get(i, i)
        mails.append((make_mail(sender=f"c{n}@example.com", message_id=f"<{prefix}{n}@example.com>",
                                subject=f"Request {n}"), SMTP))
    return app.intake().store_many(mails)


def _statements(app) -> list[str]:
    seen: list[str] = []
    event.listen(app.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: seen.append(statement))
    return seen


def _group_statements(app, count: int) -> int:
    """Statements of the mails' group alone: the claim and the read of the raw mails come
    before it, each in its transaction."""
    _store(app, count)
    seen = _statements(app)
    worker = app.worker()
    assert worker.process_batch() == count
    first_write = next(i for i, s in enumerate(seen) if s.lstrip().upper().startswith(
        ("SELECT INBOUND.ID, INBOUND.RAW",)))
    # The renderer reads the template overrides now and then, not per mail.
    return len([s for s in seen[first_write + 1:]
                if not s.lstrip().upper().startswith(("BEGIN", "COMMIT"))
                and "template_version" not in s])


def test_a_new_request_costs_a_fixed_number_of_statements(make_app):
    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    dialect = app.db.engine.dialect.name
    count = 8
    assert _group_statements(app, count) == count * PER_NEW_MAIL[dialect] + PER_GROUP
    with app.db.reader() as session:
        assert inbound.counts(session) == {"processed": count}
        assert tickets.count(session) == count


def test_a_group_has_no_savepoint_while_its_mails_succeed(make_app):
    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    _store(app, 5)
    seen = _statements(app)
    app.worker().process_batch()
    assert not [s for s in seen if "SAVEPOINT" in s.upper()]


def _thread_answers(session, ticket_id: int):
    return (tickets.thread_seen_by_customer(session, ticket_id),
            tickets.thread_message_ids(session, ticket_id))


def test_a_ticket_opened_in_the_transaction_knows_its_thread_as_the_query_does(make_app):
    app = make_app()
    now = utcnow()
    kinds = [("in", "customer"), ("out", "system"), ("in", "note"), ("out", "internal"),
             ("out", "agent"), ("in", "customer"), ("in", "customer"), ("out", "system")]
    with app.db.session() as session:
        ticket = tickets.open_ticket(session, now, subject="s", requester="c@example.com")
        assert tickets.thread_seen_by_customer(session, ticket.id) == ([], None)
        for n in range(14):
            direction, kind = kinds[n % len(kinds)]
            tickets.add_message(session, ticket.id, now + timedelta(seconds=n),
                                direction=direction, kind=kind, from_addr="c@example.com",
                                message_id=None if n == 3 else f"<t{n}@example.com>",
                                threaded_by="test")
        known = _thread_answers(session, ticket.id)
    with app.db.session() as session:
        assert _thread_answers(session, ticket.id) == known
    (seen, last), everything = known
    # Customer-visible with a Message-ID: 0, 1, 4-9, 12, 13 (the first and the latest nine).
    assert seen == [f"<t{n}@example.com>" for n in (0, 1, 4, 5, 6, 7, 8, 9, 12, 13)]
    assert last == "<t13@example.com>"  # the customer's latest mail
    # Every message with a Message-ID (3 has none): the first and the latest nine.
    assert everything == [f"<t{n}@example.com>" for n in (0, 5, 6, 7, 8, 9, 10, 11, 12, 13)]


def test_a_reply_in_the_same_group_threads_on_a_ticket_opened_before_it(make_app):
    """The request and its follow-up mail in one transaction: the second's acknowledgement
    (if any) and its message land on the ticket the first opened."""
    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    first = make_mail(sender="c1@example.com", message_id="<r1@example.com>", subject="Help")
    second = make_mail(sender="c1@example.com", message_id="<r2@example.com>",
                       subject="Re: Help", in_reply_to="<r1@example.com>")
    app.intake().store_many([(first, SMTP), (second, SMTP)])
    assert app.worker().process_batch() == 2
    with app.db.reader() as session:
        assert tickets.count(session) == 1
        [ticket] = tickets.list_tickets(session)
        received = [m for m in tickets.messages(session, ticket.id) if m.direction == "in"]
        assert [m.message_id for m in received] == ["<r1@example.com>", "<r2@example.com>"]


def test_a_failing_mail_in_a_group_redoes_its_neighbours_once(make_app, monkeypatch, caplog):
    """Mail 3 is a second copy of mail 1 (discarded) and mail 5 crashes in ``record``: every
    other mail is processed once, logged once, and what the crash wrote is gone."""
    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    _store(app, 8, duplicate_of={3: 1})
    original = steps.REGISTRY["record"]

    def record(ctx):
        original(ctx)
        if ctx.mail.message_id == "<m5@example.com>":
            raise RuntimeError("boom")

    monkeypatch.setitem(steps.REGISTRY, "record", record)
    with caplog.at_level(logging.INFO, logger="postdesk.worker"):
        assert app.worker().process_batch() == 8
    processed = [r.getMessage() for r in caplog.records
                 if r.getMessage().startswith("processed inbound=")]
    assert len(processed) == len(set(processed)) == 6
    with app.db.reader() as session:
        assert inbound.counts(session) == {"processed": 6, "discarded": 1, "quarantined": 1}
        assert tickets.message_by_id(session, "<m5@example.com>") is None
        assert tickets.contact(session, "c5@example.com") is None
        assert tickets.count(session) == 6


def test_a_reply_reads_and_changes_its_ticket_as_a_row(make_app, monkeypatch):
    """A customer's reply that reopens a resolved ticket goes through the threading, the
    survey check and the reply without a ``Ticket`` object (docs/performance.md, round P), and
    the reopening is written: status, timers, resolution and the event."""
    app = make_app()
    deliver(app, make_mail(message_id="<first@example.com>"))
    with app.db.session() as session:
        ticket = tickets.get(session, 1)
        ticket.status, ticket.resolved_at, ticket.resolution = "resolved", utcnow(), "agent"
        ticket.survey_due_at = utcnow() + timedelta(days=1)
    loaded: list[int] = []
    for name in ("get", "get_for_update"):
        original = getattr(tickets, name)
        monkeypatch.setattr(tickets, name, lambda s, i, _o=original: loaded.append(i) or _o(s, i))
    deliver(app, make_mail(subject="Re: [#1] Cannot log in", body="Not fixed after all.\n"))
    assert loaded == []
    with app.db.reader() as session:
        ticket = tickets.get(session, 1)
        assert (ticket.status, ticket.resolved_at, ticket.resolution, ticket.survey_due_at) == (
            "open", None, None, None)
        kinds = [e.kind for e in tickets.events(session, 1)]
    assert "reopened" in kinds


def test_a_ticket_row_follows_the_transaction(make_app):
    """A change written to a row is undone with its savepoint, and the row read again; a
    ``Ticket`` loaded after a change sees it, and is from then on what ``row`` returns."""
    app = make_app()
    deliver(app, make_mail(message_id="<first@example.com>"))
    with app.db.session() as session:
        row = tickets.row(session, 1, lock=True)
        assert isinstance(row, tickets.TicketRow) and tickets.row(session, 1) is row
        with session.begin_nested() as nested:
            tickets.change(session, row, status="pending", reminders_sent=2)
            assert tickets.row(session, 1).status == "pending"
            nested.rollback()
        again = tickets.row(session, 1, lock=True)
        assert again is not row and (again.status, again.reminders_sent) == ("new", 0)
        tickets.change(session, again, queue="billing")
        loaded = tickets.get(session, 1)
        assert loaded.queue == "billing" and tickets.row(session, 1) is loaded
        tickets.change(session, loaded, priority="high")  # the object's change, for its flush
    with app.db.reader() as session:
        ticket = tickets.get(session, 1)
        assert (ticket.queue, ticket.priority, ticket.status) == ("billing", "high", "new")


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_ticket_another_transaction_holds_is_busy_for_a_session_that_may_not_wait(make_app):
    """``locks.wait_for_locks(session, False)``: a ticket another transaction has locked raises
    ``LockBusy`` at once, whether read as a row or held as a ``Ticket`` object; a free one is
    locked as before, a missing one is None, an unlocked read never waits; once the holder
    has committed the ticket is free again."""
    app = make_app()
    for number in (1, 2):
        deliver(app, make_mail(message_id=f"<request{number}@example.com>"))
    with app.db.session() as holder:
        assert tickets.row(holder, 1, lock=True) is not None
        with app.db.session() as session:
            locks.wait_for_locks(session, False)
            with pytest.raises(locks.LockBusy, match="ticket #1"):
                tickets.row(session, 1, lock=True)
            assert tickets.row(session, 2, lock=True).id == 2
            assert "ticket:2" in locks.held_locks(session)
            assert tickets.row(session, 99, lock=True) is None
            assert tickets.get(session, 1).id == 1  # unlocked reads never wait
            with pytest.raises(locks.LockBusy, match="ticket #1"):
                tickets.row(session, 1, lock=True)  # the object held: get_for_update
    with app.db.session() as session:
        locks.wait_for_locks(session, False)
        assert tickets.row(session, 1, lock=True).id == 1  # committed: free again


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_locked_ticket_lets_another_transaction_add_a_row_that_refers_to_it(make_app):
    """Tickets are locked ``FOR NO KEY UPDATE``: a row that only refers to a ticket another
    transaction has locked (its foreign key's check) is written without waiting for it, where
    ``FOR UPDATE`` made that INSERT wait for the holder's commit."""
    app = make_app()
    deliver(app, make_mail(message_id="<request@example.com>"))
    with app.db.session() as holder:
        assert tickets.row(holder, 1, lock=True) is not None
        with app.db.session() as session:
            session.execute(text("SET LOCAL lock_timeout = '2s'"))
            assert tickets.add_participant(session, 1, "colleague@example.com", "cc", utcnow())


def test_held_events_follow_the_savepoints_they_were_added_in(make_app):
    """A group's events are one statement at its end (docs/performance.md, round Q): those of
    a rolled-back savepoint are dropped, those of a released one kept, in the order added, and
    ``events`` reads the held ones too."""
    app = make_app()
    deliver(app, make_mail(message_id="<first@example.com>"))
    now = utcnow()
    with app.db.session() as session:
        before = [e.kind for e in tickets.events(session, 1)]
        with tickets.events_held(session):
            tickets.add_event(session, 1, "kept_first", now)
            with session.begin_nested():
                tickets.add_event(session, 1, "released", now)
            nested = session.begin_nested()
            tickets.add_event(session, 1, "rolled_back", now)
            with session.begin_nested():
                tickets.add_event(session, 1, "inside_rolled_back", now)
            nested.rollback()
            tickets.add_event(session, 1, "kept_last", now)
            assert [e.kind for e in tickets.events(session, 1)][len(before):] == [
                "kept_first", "released", "kept_last"]
            tickets.add_event(session, 1, "after_the_read", now)
    with app.db.reader() as session:
        assert [e.kind for e in tickets.events(session, 1)][len(before):] == [
            "kept_first", "released", "kept_last", "after_the_read"]


def test_the_automatic_counts_known_from_the_flood_count_are_the_querys(make_app):
    """The acknowledgement of a ticket opened in the transaction is judged on what the flood
    count read of the automatic mail queued to the sender, and on what the transaction queued
    since (docs/performance.md, round Q): the same three counts as the query's, whatever was
    queued before (in and out of the windows), on the ticket, on others, to others."""
    app = make_app()
    now = utcnow()
    rcpt, other = "c@example.com", "d@example.com"
    numbers = iter(range(100))

    def queue(session, to, at, ticket_id=None, automatic=True):
        outbox.add(session, at, rcpts=[to], ticket_id=ticket_id, template="t", mail_from="x",
                   message_id=f"<{next(numbers)}@desk.test>", raw=b"", automatic=automatic)

    with app.db.session() as session:
        old = tickets.open_ticket(session, now, subject="s", requester=rcpt)
        for minutes in (2, 5, 30, 61, 300, 1500):
            queue(session, rcpt, now - timedelta(minutes=minutes), old.id)
        queue(session, other, now - timedelta(minutes=3))
        queue(session, rcpt, now - timedelta(minutes=4), automatic=False)
    with app.db.session() as session:
        queue(session, rcpt, now - timedelta(minutes=1))  # before the count: read by it
        assert limits.received_from(session, rcpt, now - timedelta(hours=1), now) == 0
        ticket = tickets.open_ticket(session, now, subject="s", requester=rcpt)
        assert tickets.opened_here(session, ticket.id)
        for to, ticket_id, automatic in ((rcpt, ticket.id, True), (rcpt, old.id, True),
                                         (other, ticket.id, True), (rcpt, ticket.id, False),
                                         (rcpt, ticket.id, True)):
            queue(session, to, now, ticket_id, automatic)
        for window in (timedelta(minutes=10), timedelta(days=2)):
            known = limits.automatic_counts(session, rcpt, ticket.id, now - window, now,
                                            ticket_is_new=True)
            asked = limits.automatic_counts(session, rcpt, ticket.id, now - window, now,
                                            ticket_is_new=False)
            assert known == asked == (2, 7, 9)
