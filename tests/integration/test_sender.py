"""The sender against a real SMTP relay on loopback: delivery, backoff on 4xx, failure on 5xx.

The relay is an aiosmtpd server whose answer the test sets; what it received is what postdesk
really sent (same bytes, same Message-ID on every retry).
"""

from __future__ import annotations

import email
import email.policy
import socket
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller

from postdesk.store import outbox
from postdesk.store.db import utcnow
from tests.helpers import make_mail
from postdesk.mail.envelope import Envelope


class Relay:
    def __init__(self) -> None:
        self.answer = "250 OK"
        self.received: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        if self.answer.startswith("250"):
            self.received.append(envelope.original_content)
        return self.answer


@pytest.fixture
def relay():
    handler = Relay()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    yield handler
    controller.stop()


def test_temporary_failure_backs_off_then_delivers_the_same_mail(make_app, relay):
    app = make_app(f"[outbound]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {relay.port}\n"
                   "retry_base_seconds = 60\n")
    app.intake().store(make_mail(), Envelope("alice@example.com", ("support@desk.test",), "smtp"))
    app.worker().process_until_idle()
    sender = app.sender()
    relay.answer = "451 4.3.0 try later"
    assert sender.send_due() == 1
    with app.db.reader() as session:
        [row] = outbox.listing(session)
    assert row.status == "queued" and row.attempts == 1 and "451" in row.last_error
    assert row.next_attempt_at > utcnow() + timedelta(seconds=50)
    assert sender.send_due() == 0  # not due yet
    relay.answer = "250 OK"
    assert sender.send_due(now=utcnow() + timedelta(seconds=61)) == 1
    [delivered] = relay.received
    assert email.message_from_bytes(delivered, policy=email.policy.default)["Message-ID"] == \
        row.message_id
    with app.db.reader() as session:
        assert outbox.listing(session)[0].status == "sent"


def test_permanent_failure_is_failed_and_can_be_retried(make_app, relay):
    app = make_app(f"[outbound]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {relay.port}\n")
    app.intake().store(make_mail(), Envelope("alice@example.com", ("support@desk.test",), "smtp"))
    app.worker().process_until_idle()
    relay.answer = "550 5.1.1 no such user"
    app.sender().send_due()
    with app.db.session() as session:
        [row] = outbox.listing(session)
        assert row.status == "failed" and "550" in row.last_error
        assert outbox.retry(session, utcnow(), [row.id]) == 1
    relay.answer = "250 OK"
    app.sender().send_due()
    assert len(relay.received) == 1


def test_relay_unreachable_is_temporary(make_app):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    app = make_app(f"[outbound]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\n"
                   "max_attempts = 2\nretry_base_seconds = 0\n")
    app.intake().store(make_mail(), Envelope("alice@example.com", ("support@desk.test",), "smtp"))
    app.worker().process_until_idle()
    sender = app.sender()
    sender.send_due()
    with app.db.reader() as session:
        assert outbox.listing(session)[0].status == "queued"
    sender.send_due(now=utcnow() + timedelta(seconds=1))
    with app.db.reader() as session:
        row = outbox.listing(session)[0]
    assert row.status == "failed" and "gave up after 2 attempts" in row.last_error
