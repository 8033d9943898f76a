"""Bounded reading of hostile mail, through the real ``postdesk serve`` and smtplib.

Each test sends what an attacker would to a real server on SQLite and reads the store: a
megabyte Message-ID header that once cost the worker minutes inside its write transaction,
a flood of mails without From, ``#cc`` commands that smuggle a second address into outbound
``Cc:``, and an address whose Unicode lower case is someone else's.
"""

from __future__ import annotations

import base64
import smtplib

import pytest

from tests.faults.support import Serve, Store, wait_until
from tests.helpers import make_mail

AGENTS = ('[[agents]]\naddress = "agent@desk.test"\nname = "Agent"\n'
          '[agent_auth]\nrequired = false\n')


# What these tests prove is in the worker's reading of the mail, not in how serve splits its
# work: one process (no processing child to start, about a second of CPU less) does.
ONE_PROCESS = "[worker]\nseparate_process = false\n"


@pytest.fixture
def desk(tmp_path):
    """A started ``postdesk serve`` on SQLite (``desk(extra_toml)``) and a reader of its store."""
    started: list[tuple[Serve, Store]] = []

    def start(extra: str = ONE_PROCESS) -> tuple[Serve, Store]:
        url = f"sqlite:///{tmp_path / 'postdesk.db'}"
        serve = Serve(tmp_path, url, extra)
        serve.run("init")
        serve.start()
        started.append((serve, Store(url)))
        return started[-1]

    yield start
    for serve, store in started:
        serve.kill()
        store.close()


def send(serve: Serve, raw: bytes, sender: str = "customer@example.org") -> None:
    with smtplib.SMTP("127.0.0.1", serve.port, timeout=60) as smtp:
        smtp.sendmail(sender, ["support@desk.test"], raw)


def settled(serve: Serve, store: Store, count: int) -> None:
    """Wait until ``count`` mails were stored and none is left unprocessed."""
    wait_until(lambda: sum(store.inbound_statuses().values()) >= count and store.unfinished() == 0,
               120, f"{count} mails processed", log=serve.log)


def no_from(subject: str, **headers: str) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (f"To: support@desk.test\r\nSubject: {subject}\r\n{extra}\r\nHello.\r\n").encode()


def with_folded_header(raw: bytes, name: str, value: str) -> bytes:
    """``raw`` with a ``name`` header of ``value`` as a mail client sends a value too long for a
    line: UTF-8 encoded words, one per folded line. Written here, in linear time: the email
    package's own folding of a megabyte took 3-4 s of CPU per mail on the test machines."""
    data = value.encode()
    words = (f"=?utf-8?b?{base64.b64encode(data[at:at + 45]).decode()}?="
             for at in range(0, len(data), 45))
    head, body = raw.split(b"\r\n\r\n", 1)
    return head + f"\r\n{name}: ".encode() + "\r\n ".join(words).encode() + b"\r\n\r\n" + body


@pytest.mark.timeout(300)
@pytest.mark.parametrize("filler", ["a", "=?"])
def test_a_megabyte_message_id_header_costs_the_worker_no_more_than_a_plain_mail(desk, filler):
    serve, store = desk("")  # the processing child, as deployed: the edge answers meanwhile
    value = filler * (1_000_000 // len(filler))
    send(serve, with_folded_header(make_mail(sender="eve@example.org"), "In-Reply-To", value))
    send(serve, with_folded_header(make_mail(sender="eve@example.org", subject="two"),
                                   "References", value))
    send(serve, make_mail(sender="bob@example.org", subject="after"))  # a 250, not a 451
    settled(serve, store, 3)
    assert store.inbound_statuses() == {"processed": 3}
    assert store.scalar("SELECT count(*) FROM ticket") == 3


@pytest.mark.timeout(300)
def test_the_flood_limit_counts_mail_without_from_by_its_envelope_sender(desk):
    serve, store = desk(ONE_PROCESS + "[limits]\ninbound_per_sender = 20\n")
    for number in range(30):
        send(serve, no_from(f"flood {number}"), sender="flood@example.org")
    settled(serve, store, 30)
    statuses = store.inbound_statuses()
    assert statuses == {"processed": 20, "quarantined": 10}, statuses
    errors = {e for e, in store.rows("SELECT error FROM inbound WHERE status = 'quarantined'")}
    assert all("flood: 20 mails from this envelope sender" in e for e in errors), errors


@pytest.mark.timeout(300)
def test_the_flood_limit_counts_mail_without_from_or_envelope_sender_by_the_peer(desk):
    serve, store = desk(ONE_PROCESS + "[limits]\ninbound_per_sender = 5\n")
    for number in range(8):  # a new Reply-To each time: only the peer stays the same
        send(serve, no_from(f"flood {number}", **{"Reply-To": f"r{number}@example.org"}),
             sender="")
    settled(serve, store, 8)
    statuses = store.inbound_statuses()
    assert statuses == {"processed": 5, "quarantined": 3}, statuses
    errors = {e for e, in store.rows("SELECT error FROM inbound WHERE status = 'quarantined'")}
    assert all("from this peer" in e for e in errors), errors


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", ["#cc add x@y.test,bcc@evil.test", "#cc add a@b@c",
                                     "#cc add x@y.test bcc@evil.test"])
def test_cc_takes_exactly_one_address_else_the_agent_gets_a_command_error(desk, command):
    serve, store = desk(ONE_PROCESS + AGENTS)
    send(serve, make_mail(sender="kate@example.org", subject="Help"))
    settled(serve, store, 1)
    ticket = store.scalar("SELECT id FROM ticket")
    send(serve, make_mail(sender="agent@desk.test", subject=f"Re: [#{ticket}] Help",
                          body=f"{command}\n\nWe are looking into it.\n"),
         sender="agent@desk.test")
    send(serve, make_mail(sender="agent@desk.test", subject=f"Re: [#{ticket}] Help",
                          body="Fixed now, tell us.\n"), sender="agent@desk.test")
    settled(serve, store, 3)
    participants = {a for a, in store.rows("SELECT address FROM participant")}
    assert not participants & {"x@y.test", "a@b@c", "bcc@evil.test",
                               "x@y.test,bcc@evil.test"}, participants
    templates = [t for t, in store.rows("SELECT template FROM outbox ORDER BY id")]
    assert "command_error" in templates, templates
    for raw, in store.rows("SELECT raw FROM outbox"):
        assert b"evil.test" not in raw.split(b"\r\n\r\n")[0]
        assert b"a@b@c" not in raw.split(b"\r\n\r\n")[0]


@pytest.mark.timeout(300)
def test_a_kelvin_sign_address_is_not_the_requester_of_a_ticket_of_k(desk):
    serve, store = desk()
    send(serve, make_mail(sender="kate@example.org", subject="Help"))
    settled(serve, store, 1)
    ticket = store.scalar("SELECT id FROM ticket")
    kelvin = "\u212aate@example.org"  # U+212A KELVIN SIGN, whose lower case is "k"
    raw = (f"From: {kelvin}\r\nTo: support@desk.test\r\nSubject: Re: [#{ticket}] Help\r\n"
           f"Message-ID: <kelvin@example.org>\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\nPut this in Kate's ticket.\r\n")
    send(serve, raw.encode(), sender="eve@example.org")
    settled(serve, store, 2)
    requesters = {r for r, in store.rows("SELECT requester FROM ticket")}
    assert requesters == {"kate@example.org", kelvin}, requesters
    kate = store.scalar("SELECT count(*) FROM message WHERE ticket_id = :t AND direction = 'in'",
                        t=ticket)
    assert kate == 1
