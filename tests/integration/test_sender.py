"""The sender against a real SMTP relay on loopback: delivery, backoff on 4xx, failure on 5xx,
one relay connection per batch and what happens when the relay drops it.

The relay is an aiosmtpd server whose answers the test sets; what it received is what postdesk
really sent (same bytes, same Message-ID on every retry), and the client port of each MAIL says
which connection carried it.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections import Counter
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller

from postdesk.config import OutboundSettings
from postdesk.notify import transports
from postdesk.mail.envelope import Envelope
from postdesk.notify.sender import Sender
from postdesk.notify.transports import SmtpTransport
from postdesk.store import outbox
from postdesk.store.clock import as_utc, utcnow
from tests.clocks import Clock
from tests.helpers import make_mail


class Relay:
    def __init__(self) -> None:
        self.answer = "250 OK"
        self.answers: dict[str, str] = {}  # DATA answer by (first) recipient, else ``answer``
        self.refused: set[str] = set()  # recipients refused at RCPT with 550
        self.drop_at_mail: set[int] = set()  # the n-th MAIL (from 1) finds the connection cut
        self.drop_after_data: set[str] = set()  # keep the mail, cut before the 250 (by recipient)
        self.received: list[bytes] = []
        self.peers: list[tuple] = []  # the client's address of every MAIL: one per connection
        self.rsets = 0

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.peers.append(session.peer)
        if len(self.peers) in self.drop_at_mail:
            server.transport.abort()  # as a relay that timed out an idle client: no reply at all
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.refused:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        self.rsets += 1
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        answer = self.answers.get(envelope.rcpt_tos[0], self.answer)
        if answer.startswith("250"):
            self.received.append(envelope.original_content)
        if envelope.rcpt_tos[0] in self.drop_after_data:
            server.transport.abort()
        return answer

    def connections(self) -> int:
        return len(set(self.peers))

    def message_ids(self) -> Counter:
        return Counter(email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"]
                       for raw in self.received)


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


def relay_app(make_app, relay, extra: str = ""):
    return make_app(f"[outbound]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {relay.port}\n"
                    + extra)


def acknowledgements(app, count: int) -> list[str]:
    """``count`` customers write in; each gets a queued acknowledgement. Returns their addresses."""
    customers = [f"customer{n}@example.com" for n in range(count)]
    intake = app.intake()
    for address in customers:
        intake.store(make_mail(sender=address),
                     Envelope(address, ("support@desk.test",), "smtp"))
    app.worker().process_until_idle()
    return customers


def outcome(app) -> dict[str, tuple]:
    """Each outbox row's (status, attempts), by recipient."""
    with app.db.reader() as session:
        return {row.primary_rcpt: (row.status, row.attempts) for row in outbox.listing(session)}


def test_temporary_failure_backs_off_then_delivers_the_same_mail(make_app, relay):
    app = make_app(f"[outbound]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {relay.port}\n"
                   "retry_base_seconds = 60\n")
    app.intake().store(make_mail(), Envelope("alice@example.com", ("support@desk.test",), "smtp"))
    app.worker().process_until_idle()
    clock = Clock()
    sender = Sender(app.db, app.sender().transport, app.settings.outbound, clock=clock.now)
    relay.answer = "451 4.3.0 try later"
    assert sender.send_due() == 1
    with app.db.reader() as session:
        [row] = outbox.listing(session)
    assert row.status == "queued" and row.attempts == 1 and "451" in row.last_error
    assert as_utc(row.next_attempt_at) == clock.now() + timedelta(seconds=60)
    clock.advance(59)
    assert sender.send_due() == 0  # not due yet
    relay.answer = "250 OK"
    clock.advance(2)
    assert sender.send_due() == 1
    [delivered] = relay.received
    assert email.message_from_bytes(delivered, policy=email.policy.default)["Message-ID"] == \
        row.message_id
    with app.db.reader() as session:
        [sent] = outbox.listing(session)
    assert sent.status == "sent" and as_utc(sent.sent_at) == clock.now()


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


def test_an_unreachable_relay_defers_the_whole_batch_after_one_try(make_app, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    app = make_app(f"[outbound]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\n"
                   "retry_base_seconds = 60\n")
    customers = acknowledgements(app, 4)
    sender = app.sender()
    tries = []
    connect = sender.transport._connect
    monkeypatch.setattr(sender.transport, "_connect", lambda: tries.append(1) or connect())
    assert sender.send_due() == 4
    assert len(tries) == 1
    rows = outcome(app)
    assert {rows[c] for c in customers} == {("queued", 1)}
    with app.db.reader() as session:
        assert all("unreachable" in row.last_error and row.next_attempt_at > utcnow()
                   for row in outbox.listing(session))


def test_one_connection_carries_the_whole_batch(make_app, relay):
    app = relay_app(make_app, relay)
    customers = acknowledgements(app, 5)
    assert app.sender().send_due() == 5
    assert relay.connections() == 1
    assert len(relay.message_ids()) == 5 and set(relay.message_ids().values()) == {1}
    assert set(outcome(app).values()) == {("sent", 1)}
    acknowledgements(app, 0)
    app.intake().store(make_mail(sender="late@example.com"),
                       Envelope("late@example.com", ("support@desk.test",), "smtp"))
    app.worker().process_until_idle()
    assert app.sender().send_due() == 1
    assert relay.connections() == 2, "each batch closes its connection at the end"
    assert len(customers) + 1 == len(relay.received)


def test_a_dropped_kept_connection_is_opened_again_once(make_app, relay):
    app = relay_app(make_app, relay)
    acknowledgements(app, 5)
    relay.drop_at_mail = {3}  # two mails went through; the relay cut the connection meanwhile
    assert app.sender().send_due() == 5
    assert relay.connections() == 2
    assert len(relay.received) == 5 and set(relay.message_ids().values()) == {1}
    assert set(outcome(app).values()) == {("sent", 1)}


def test_a_connection_dropped_twice_for_one_mail_defers_only_that_mail(make_app, relay):
    app = relay_app(make_app, relay, "retry_base_seconds = 60\n")
    customers = acknowledgements(app, 4)
    relay.drop_at_mail = {2, 3}  # the kept connection, then the new one, cut at MAIL
    assert app.sender().send_due() == 4
    rows = outcome(app)
    assert rows[customers[1]] == ("queued", 1)
    assert [rows[c] for c in customers if c != customers[1]] == [("sent", 1)] * 3
    assert len(relay.received) == 3


def test_a_connection_lost_after_data_is_not_sent_again_at_once(make_app, relay):
    app = relay_app(make_app, relay, "retry_base_seconds = 60\n")
    customers = acknowledgements(app, 4)
    relay.drop_after_data = {customers[1]}  # the relay kept it, but its 250 never came
    assert app.sender().send_due() == 4
    rows = outcome(app)
    assert rows[customers[1]][0] == "queued"  # the normal retry, with backoff and the same id
    assert [rows[c] for c in customers if c != customers[1]] == [("sent", 1)] * 3
    assert len(relay.received) == 4 and set(relay.message_ids().values()) == {1}


@pytest.mark.parametrize("where", ["rcpt", "data"])
def test_a_refused_mail_does_not_spoil_the_others_in_its_batch(make_app, relay, where):
    app = relay_app(make_app, relay)
    customers = acknowledgements(app, 4)
    if where == "rcpt":
        relay.refused = {customers[1]}
    else:
        relay.answers = {customers[1]: "554 5.6.0 content rejected"}
    relay.answers[customers[2]] = "451 4.3.0 try later"
    assert app.sender().send_due() == 4
    rows = outcome(app)
    assert rows[customers[1]] == ("failed", 1)
    assert rows[customers[2]] == ("queued", 1)
    assert rows[customers[0]] == rows[customers[3]] == ("sent", 1)
    assert relay.connections() == 1 and relay.rsets == 2  # RSET after each refused transaction
    assert len(relay.received) == 2


def plain(relay) -> OutboundSettings:
    return OutboundSettings(transport="smtp", host="127.0.0.1", port=relay.port, timeout_seconds=5)


def test_a_connection_idle_too_long_is_not_reused(relay):
    now = [0.0]
    transport = SmtpTransport(plain(relay), environ={}, clock=lambda: now[0])
    raw = make_mail(sender="support@desk.test", to="bob@example.com")
    transport.deliver(raw, "support@desk.test", ["bob@example.com"])
    now[0] += transports.IDLE_SECONDS - 1
    transport.deliver(raw, "support@desk.test", ["bob@example.com"])
    now[0] += transports.IDLE_SECONDS
    transport.deliver(raw, "support@desk.test", ["bob@example.com"])
    transport.close()
    assert (transport.connections, relay.connections(), len(relay.received)) == (2, 2, 3)


def statuses(app) -> Counter:
    with app.db.reader() as session:
        return Counter(row.status for row in outbox.listing(session))


@pytest.mark.parametrize("every, within, tick, expected", [
    (10, 3600, 0, [0] * 10 + [10] * 10 + [20] * 5),  # ten at a time
    # or once the first waiting row has waited a second: each delivery takes 0.4 s here, so
    # the first of every four has waited 1.2 s when the fifth comes
    (1000, 1.0, 0.4, [0] * 4 + [4] * 4 + [8] * 4 + [12] * 4 + [16] * 4 + [20] * 4 + [24]),
], ids=["count", "time"])
def test_delivered_mails_are_marked_sent_a_few_at_a_time(make_app, relay, monkeypatch, every,
                                                         within, tick, expected):
    """One transaction marks ``MARK_SENT_EVERY`` delivered rows, or those delivered within
    ``MARK_SENT_WITHIN_SECONDS``, so a sender killed at any moment sends at most that many
    again (each with its Message-ID, which clients dedupe). The sender's monotonic clock is
    the test's: it moves ``tick`` seconds per delivery."""
    from postdesk.notify import sender as sender_module

    monkeypatch.setattr(sender_module, "MARK_SENT_EVERY", every)
    monkeypatch.setattr(sender_module, "MARK_SENT_WITHIN_SECONDS", within)
    app = relay_app(make_app, relay)
    acknowledgements(app, 25)
    clock = Clock()
    sender = Sender(app.db, app.sender().transport, app.settings.outbound,
                    monotonic=clock.monotonic)
    deliver, marked_before = sender.transport.deliver, []

    def watched(*args):
        marked_before.append(statuses(app)["sent"])  # what a kill right now would keep
        clock.advance(tick)
        return deliver(*args)

    sender.transport.deliver = watched
    assert sender.send_due() == 25
    assert marked_before == expected
    assert statuses(app) == {"sent": 25}
    assert len(relay.received) == 25


def test_a_sender_stopped_midway_marks_what_it_delivered(make_app, relay):
    app = relay_app(make_app, relay)
    _stopped_at_the_fourth_of_five(app)
    # The three delivered are sent; the rest stay claimed until a sender releases them.
    assert statuses(app) == {"sent": 3, "sending": 2}


def _stopped_at_the_fourth_of_five(app) -> None:
    """Five acknowledgements queued, and a sender whose thread is stopped as it hands over
    the fourth."""
    acknowledgements(app, 5)
    sender = app.sender()
    deliver, calls = sender.transport.deliver, []

    def stopped(*args):
        calls.append(args)
        if len(calls) == 4:
            raise SystemExit("the sender's thread is stopped here")
        return deliver(*args)

    sender.transport.deliver = stopped
    with pytest.raises(SystemExit):
        sender.send_due()


def test_rows_left_sending_are_released_at_start_and_then_once_a_minute(make_app, relay):
    """Rows a stopped sender left ``sending`` go back to the queue once stale (10 minutes), or
    at once when their holder is dead; a sender looks for them at its first batch and then at
    most once a minute of its clock, not in every batch's transaction (round AD)."""
    from sqlalchemy import event  # noqa: PLC0415

    app = relay_app(make_app, relay)
    _stopped_at_the_fourth_of_five(app)
    assert statuses(app) == {"sent": 3, "sending": 2}  # its holder, this process, is alive
    looks: list[str] = []
    event.listen(app.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: looks.append(statement)
                 if "DISTINCT outbox.claimed_by" in statement else None)
    sender, began = app.sender(), utcnow()
    assert sender.send_due(now=began) == 0 and len(looks) == 1  # not stale yet
    assert sender.send_due(now=began + timedelta(seconds=30)) == 0 and len(looks) == 1
    assert sender.send_due(now=began + timedelta(minutes=5)) == 0 and len(looks) == 2
    assert statuses(app) == {"sent": 3, "sending": 2}
    assert sender.send_due(now=began + timedelta(minutes=11)) == 2 and len(looks) == 3
    assert statuses(app) == {"sent": 5}
    assert len(relay.received) == 5


def test_one_mail_that_cannot_be_handed_over_is_retried_alone(make_app, relay, caplog):
    """A fault that is not the relay's answer (here, one raised while handing the mail over)
    is that mail's: it is deferred with the reason, and the rest of the batch goes out."""
    app = relay_app(make_app, relay, "retry_base_seconds = 60\n")
    customers = acknowledgements(app, 4)
    sender = app.sender()
    deliver = sender.transport.deliver

    def faulty(raw, mail_from, rcpts):
        if rcpts == [customers[1]]:
            raise ValueError("cannot encode this one")
        return deliver(raw, mail_from, rcpts)

    sender.transport.deliver = faulty
    assert sender.send_due() == 4
    rows = outcome(app)
    assert rows[customers[1]] == ("queued", 1)
    assert [rows[c] for c in customers if c != customers[1]] == [("sent", 1)] * 3
    with app.db.reader() as session:
        assert [row.last_error for row in outbox.listing(session) if row.last_error] == [
            "ValueError: cannot encode this one"]
    assert "could not be handed over" in caplog.text


def international_mail(address: str) -> bytes:
    """A mail from ``address`` as an SMTPUTF8 client writes it: UTF-8 in its header."""
    return (f"From: José Núñez <{address}>\r\nTo: support@desk.test\r\nSubject: Accès bloqué\r\n"
            f"Message-ID: <intl-{abs(hash(address))}@example.com>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "Bonjour, je n'arrive plus à me connecter.\r\n").encode()


@pytest.mark.parametrize("smtputf8", [True, False], ids=["relay-with-smtputf8", "relay-without"])
def test_an_address_with_a_non_ascii_local_part_goes_out_by_smtputf8_or_fails_alone(make_app, smtputf8):
    """RFC 6531: such an address can only travel by a relay that offers SMTPUTF8. Without it the
    mail fails at once with the reason (it never will go through that relay), and the mails
    around it in the batch go out on the same connection."""
    handler = Relay()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        handler.port = sock.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port,
                            enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        app = relay_app(make_app, handler)
        intake = app.intake()
        for address in ("first@example.com", "josé@example.com", "last@example.com"):
            raw = international_mail(address) if not address.isascii() else make_mail(sender=address)
            intake.store(raw, Envelope(address, ("support@desk.test",), "smtp"))
        app.worker().process_until_idle()
        assert app.sender().send_due() == 3
        rows = outcome(app)
        assert rows["first@example.com"] == rows["last@example.com"] == ("sent", 1)
        assert handler.connections() == 1
        if smtputf8:
            assert rows["josé@example.com"] == ("sent", 1)
            assert len(handler.received) == 3
        else:
            assert rows["josé@example.com"] == ("failed", 1)
            with app.db.reader() as session:
                error = next(row.last_error for row in outbox.listing(session)
                             if row.primary_rcpt == "josé@example.com")
            assert "SMTPUTF8" in error
            assert len(handler.received) == 2
    finally:
        controller.stop()


def test_a_release_rolled_back_with_its_batch_is_done_again_at_the_next(make_app, relay,
                                                                       monkeypatch):
    """The release of stale rows shares the claim's transaction: when the claim fails (the
    store went away), the release is rolled back with it, and the next batch does it again
    instead of waiting a minute."""
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    app = relay_app(make_app, relay)
    _stopped_at_the_fourth_of_five(app)
    sender, began, claim_due = app.sender(), utcnow(), outbox.claim_due

    def store_gone(*args, **kwargs):
        raise OperationalError("SELECT", {}, Exception("the store went away"))

    monkeypatch.setattr(outbox, "claim_due", store_gone)
    with pytest.raises(OperationalError):
        sender.send_due(now=began + timedelta(minutes=11))
    monkeypatch.setattr(outbox, "claim_due", claim_due)
    assert sender.send_due(now=began + timedelta(minutes=11, seconds=1)) == 2
    assert statuses(app) == {"sent": 5}


def test_a_batch_that_drained_the_queue_waits_for_the_next_ring(make_app):
    """After a batch smaller than the batch size the queue is empty: the sender waits for a
    ring (a row queued since rings it) instead of claiming again at once, a write transaction
    that would find nothing; after a full batch it goes on at once."""
    sender = make_app().sender()
    stop, results, seen = threading.Event(), iter([3, sender.batch, 0]), []

    def send_due(now=None) -> int:
        seen.append(next(results))
        return seen[-1]

    class Wake:
        def clear(self) -> None:
            pass

        def wait(self, timeout: float) -> bool:
            seen.append(f"wait {timeout:g}")
            if seen.count(f"wait {timeout:g}") == 2:
                stop.set()
            return True

    sender.send_due = send_due
    sender.run(stop, Wake())
    poll = f"wait {sender.settings.poll_interval:g}"
    assert seen == [3, poll, sender.batch, 0, poll]
