"""Bounce scores as Mailman keeps them, on the real store (SQLite and PostgreSQL): permanent
failures of a ticket's own mail raise the address's score once a day; past the threshold the
desk stops mailing it, and says so; a forged report proves nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from postdesk.desk import bounces
from postdesk.mail.bounces import Bounce
from postdesk.store import contacts, outbox, tickets
from postdesk.store.clock import utcnow
from tests.helpers import deliver, make_mail

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bounces"
FAILED = Bounce("delivery-status report", ("claire@client.test",), ())


@pytest.fixture
def app(make_app):
    app = make_app()
    deliver(app, make_mail("claire@client.test", "Imprimante en panne", "Elle ne s'allume plus.\n",
                           message_id="<q1@client.test>"), "claire@client.test")
    return app


def count(app, when, bounce: Bounce = FAILED) -> list[str]:
    with app.db.session() as session:
        return bounces.record(session, app.settings.bounces, tickets.get(session, 1), bounce, when)


def state(app, address: str = "claire@client.test"):
    with app.db.session() as session:  # a locking read: PostgreSQL's readers are READ ONLY
        return contacts.bounce_state(session, address)


def ack_id(app) -> bytes:
    with app.db.reader() as session:
        return [r for r in outbox.listing(session, limit=100) if r.ticket_id == 1][0].message_id.encode()


def notify_claire(app) -> object:
    with app.db.session() as session:
        ticket = tickets.get(session, 1)
        return app.desk.notifier.notify(session, utcnow(), ticket, "ticket_created",
                                        ["claire@client.test"])


def test_permanent_failures_past_the_threshold_stop_the_desk_mailing_the_address(app):
    start = utcnow()
    assert count(app, start) == ["bounce score of claire@client.test: 1 of 3"]
    assert "already counted today" in count(app, start + timedelta(hours=3))[0]
    count(app, start + timedelta(hours=25))
    [line] = count(app, start + timedelta(hours=50))
    assert line.startswith("claire@client.test marked undeliverable (score 3)")
    assert state(app).undeliverable_since is not None
    assert notify_claire(app) is None  # nothing queued for an undeliverable address
    with app.db.session() as session:
        kinds = [e.kind for e in tickets.events(session, 1)]
        assert "address_undeliverable" in kinds and "undeliverable_skipped" in kinds
        assert contacts.clear(session, "claire@client.test") is True
    assert notify_claire(app) is not None  # cleared: mailed again


def test_a_stale_score_starts_again(app):
    start = utcnow()
    count(app, start)
    count(app, start + timedelta(days=2))
    assert state(app).bounce_score == 2
    count(app, start + timedelta(days=10))
    assert state(app).bounce_score == 1


def test_a_bounce_naming_a_stranger_counts_nothing(app):
    lines = count(app, utcnow(), Bounce("delivery-status report", ("eve@evil.test",), ()))
    assert lines == ["bounce names eve@evil.test, who is no participant of #1: not counted"]
    assert state(app, "eve@evil.test") is None


def test_temporary_failures_count_nothing(app):
    assert count(app, utcnow(), Bounce("delivery-status report", (), ("claire@client.test",))) == []
    assert state(app).bounce_score == 0


def test_only_a_report_returning_the_desks_own_mail_counts(app):
    """Through the pipeline: a DSN carrying the acknowledgement's Message-ID raises the
    score; the same DSN with an invented Message-ID is kept (a new automatic ticket), and
    counts for nothing: anyone can write a report that names an address."""
    raw = (CORPUS / "postfix-dsn-user-unknown.eml").read_bytes().replace(
        b"jeanne@client.test", b"claire@client.test")
    deliver(app, raw, "")  # <n1042.1@acme.test> is no mail of this desk
    assert state(app).bounce_score == 0
    deliver(app, raw.replace(b"<n1042.1@acme.test>", ack_id(app))
                    .replace(b"<pf1.b@mx.bounce.test>", b"<pf1.c@mx.bounce.test>"), "")
    assert state(app).bounce_score == 1
    with app.db.reader() as session:
        [event] = [json.loads(e.data) for e in tickets.events(session, 1) if e.kind == "automatic_mail"]
    assert event["failed"] == ["claire@client.test"]


def test_agents_are_told_in_their_notifications_when_the_customer_is_undeliverable(make_app):
    app = make_app('[[agents]]\naddress = "alice@desk-team.test"\nname = "Alice"\n')
    deliver(app, make_mail("claire@client.test", "Imprimante en panne", "Elle ne s'allume plus.\n",
                           message_id="<q1@client.test>"), "claire@client.test")
    start = utcnow()
    for day in range(3):
        count(app, start + timedelta(days=day))
    deliver(app, make_mail("claire@client.test", "Re: [#1] Imprimante en panne", "Toujours rien.\n"),
            "claire@client.test")
    with app.db.reader() as session:
        [notice] = [r for r in outbox.listing(session, limit=100)
                    if r.template == "customer_replied"]
    assert b"claire@client.test" in notice.raw and b"mails reviennent en erreur" in notice.raw
