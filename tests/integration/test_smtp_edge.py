"""A real SmtpGateway on loopback, spoken to by smtplib, raw sockets and swaks: the edge's promises.

The gateway runs on its own asyncio loop in a background thread, as ``postdesk serve`` runs it;
``MemoryStore`` is a real ``Accept`` (it keeps the bytes in a list), ``FlakyStore`` fails first.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import shutil
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from postdesk.errors import TempFail
from postdesk.gateway.smtp import MAX_LINE_BYTES, SmtpGateway
from postdesk.mail.envelope import Envelope

DOMAINS = ["Support.Example", "bücher.example"]
SENDER = "customer@client.example"
HELPDESK = "help@support.example"
RCPT_OK = (250, b"2.1.5 Recipient OK")
RCPT_REFUSED = (550, b"5.1.1 No such mailbox: relay denied, domain not served here")
TRY_LATER = (451, b"4.3.0 Local error, try again later")
NO_STORAGE = (452, b"4.3.1 Insufficient system storage, try again later")
TOO_BIG = (552, b"5.3.4 Message too big, the limit is 2000 bytes")
MAIL = (
    b"From: Customer <customer@client.example>\r\n"
    b"To: help@support.example\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9?=\r\n"
    b"Content-Type: text/plain; charset=latin-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"caf\xe9 cr\xe8me, \xc3\xa9 in utf-8 too\r\n"
    b".a line that starts with a dot\r\n"
    b"trailing spaces stay   \r\n"
)


class MemoryStore:
    """A real Accept: keeps every raw mail and its envelope in a list; ids count from 1."""

    def __init__(self) -> None:
        self.mails: list[tuple[bytes, Envelope]] = []

    async def __call__(self, raw: bytes, envelope: Envelope) -> int:
        self.mails.append((raw, envelope))
        return len(self.mails)


class FlakyStore(MemoryStore):
    """A store that raises each of ``failures`` once, in order, before it stores again."""

    def __init__(self, *failures: Exception) -> None:
        super().__init__()
        self.failures = list(failures)

    async def __call__(self, raw: bytes, envelope: Envelope) -> int:
        if self.failures:
            raise self.failures.pop(0)
        return await super().__call__(raw, envelope)


class GatedStore(MemoryStore):
    """A store that holds each mail until the test opens its gate (a store slow to commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate: asyncio.Event | None = None

    async def __call__(self, raw: bytes, envelope: Envelope) -> int:
        self.gate = asyncio.Event()
        self.entered.set()
        await self.gate.wait()
        return await super().__call__(raw, envelope)


class Wire:
    """A raw-socket SMTP/LMTP client that reads exactly the replies it is asked for."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.lines = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> bytes:
        """One (possibly multi-line) reply; returns its last line without CRLF."""
        while True:
            line = self.lines.readline().rstrip(b"\r\n")
            if line[3:4] != b"-":
                return line

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: str) -> bytes:
        self.send(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


def caused_by(error: Exception, cause: Exception) -> Exception:
    error.__cause__ = cause
    return error


def run(loop: asyncio.AbstractEventLoop, coro):
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=5)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="smtp-test-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


@pytest.fixture
def serve(loop):
    """Start a gateway on 127.0.0.1:0 with the given store and options; stopped after the test."""
    started: list[SmtpGateway] = []

    def serve(store: MemoryStore | None = None, **options) -> tuple[SmtpGateway, MemoryStore]:
        store = MemoryStore() if store is None else store
        options.setdefault("domains", DOMAINS)
        options.setdefault("hostname", "postdesk.test")
        gateway = SmtpGateway(host="127.0.0.1", port=0, accept=store, **options)
        run(loop, gateway.start())
        started.append(gateway)
        return gateway, store

    yield serve
    for gateway in started:
        run(loop, gateway.stop(grace=1))


def smtp_client(gateway: SmtpGateway) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", gateway.port, local_hostname="client.test", timeout=3)
    client.ehlo()
    return client


def send_raw(wire: Wire, body: bytes, recipients=(HELPDESK,)) -> None:
    """MAIL, RCPT and DATA on a raw wire, then ``body`` dot-stuffed (RFC 5321 4.5.2) and the end."""
    assert wire.command(f"MAIL FROM:<{SENDER}> BODY=8BITMIME").startswith(b"250")
    for rcpt in recipients:
        wire.command(f"RCPT TO:<{rcpt}>")
    assert wire.command("DATA").startswith(b"354")
    wire.send(re.sub(rb"(^|\r\n)\.", rb"\1..", body) + b".\r\n")


def test_smtp_stores_the_exact_8bit_bytes_and_answers_queued(serve):
    accepted = []
    gateway, store = serve(on_accepted=lambda stored_id, env: accepted.append((stored_id, env)))
    with smtp_client(gateway) as client:
        assert {"size", "8bitmime", "smtputf8"} <= set(client.esmtp_features)
        assert client.mail(SENDER, ["BODY=8BITMIME"]) == (250, b"2.1.0 Sender OK")
        assert client.rcpt(HELPDESK) == (250, b"2.1.5 Recipient OK")
        assert client.data(MAIL) == (250, b"2.0.0 Queued as 1")
    expected = Envelope(SENDER, (HELPDESK,), source="smtp", peer="127.0.0.1")
    assert store.mails == [(MAIL, expected)]
    assert accepted == [(1, expected)]


def test_bare_lf_bare_cr_and_long_lines_are_stored_untouched(serve):
    gateway, store = serve()
    body = b"Subject: bare LF\n\n" + b"lf only\n" * 400 + b"a bare\rcr\n" + b"x" * 5000 + b"\n"
    wire = Wire(gateway.port)
    wire.command("EHLO client.test")
    send_raw(wire, body + b"\r\n")
    assert wire.reply() == b"250 2.0.0 Queued as 1"
    wire.close()
    assert store.mails[0][0] == body + b"\r\n"


@pytest.mark.parametrize(
    ("recipient", "reply"),
    [
        ("help@support.example", RCPT_OK),
        ("Help@SUPPORT.EXAMPLE", RCPT_OK),
        ("info@xn--bcher-kva.example", RCPT_OK),
        ("Postmaster", RCPT_OK),
        ("someone@other.example", RCPT_REFUSED),
        ("help@support.example.evil.test", RCPT_REFUSED),
        ("help@sub.support.example", RCPT_REFUSED),
        ('"help@support.example"@evil.test', RCPT_REFUSED),
    ],
)
def test_rcpt_takes_only_the_domains_we_serve(serve, recipient, reply):
    gateway, store = serve()
    with smtp_client(gateway) as client:
        client.mail(SENDER)
        assert client.rcpt(recipient) == reply


def test_refused_recipients_leave_only_the_served_ones_in_the_envelope(serve):
    gateway, store = serve()
    with smtp_client(gateway) as client:
        refused = client.sendmail(SENDER, ["a@other.example", HELPDESK], MAIL)
    assert refused == {"a@other.example": RCPT_REFUSED}
    assert store.mails[0][1].rcpt_tos == (HELPDESK,)


def test_smtputf8_addresses_are_accepted(serve):
    gateway, store = serve()
    with smtp_client(gateway) as client:
        options = ["SMTPUTF8", "BODY=8BITMIME"]
        client.sendmail("jürgen@absender.example", ["büro@support.example"], MAIL, options)
    assert store.mails[0][1].mail_from == "jürgen@absender.example"
    assert store.mails[0][1].rcpt_tos == ("büro@support.example",)


def test_invalid_utf8_in_an_address_is_refused(serve):
    gateway, store = serve()
    wire = Wire(gateway.port)
    wire.command("EHLO client.test")
    wire.send(b"MAIL FROM:<bad\xff@client.example> SMTPUTF8\r\n")
    assert wire.reply() == b"553 5.1.7 Malformed sender address"
    wire.close()


def test_a_bounce_with_empty_reverse_path_is_accepted(serve):
    gateway, store = serve()
    with smtp_client(gateway) as client:
        client.sendmail("", [HELPDESK], MAIL)
    assert store.mails[0][1].is_bounce


def test_size_is_advertised_and_a_declared_size_over_it_is_refused(serve):
    gateway, store = serve(max_message_bytes=2000)
    with smtp_client(gateway) as client:
        assert client.esmtp_features["size"] == "2000"
        assert client.mail(SENDER, ["SIZE=2001"]) == TOO_BIG
        assert client.mail(SENDER, ["SIZE=1999"])[0] == 250
    assert store.mails == []


def test_data_over_the_limit_is_refused_and_the_session_goes_on(serve):
    gateway, store = serve(max_message_bytes=2000)
    with smtp_client(gateway) as client:
        client.mail(SENDER)
        client.rcpt(HELPDESK)
        assert client.data(MAIL + b"x" * 2000 + b"\r\n") == TOO_BIG
        assert client.sendmail(SENDER, [HELPDESK], MAIL) == {}
    assert [raw for raw, _ in store.mails] == [MAIL]


@pytest.mark.parametrize(
    ("failure", "reply"),
    [
        (TempFail("database is not reachable"), TRY_LATER),
        (TempFail("insufficient storage for the raw mail: disk quota exceeded"), NO_STORAGE),
        (caused_by(TempFail("blob not written"), OSError(errno.ENOSPC, "No space")), NO_STORAGE),
        (RuntimeError("a bug in the store"), TRY_LATER),
    ],
)
def test_store_trouble_answers_4xx_stores_nothing_then_a_retry_works(serve, caplog, failure, reply):
    gateway, store = serve(FlakyStore(failure))
    with smtp_client(gateway) as client:
        client.mail(SENDER)
        client.rcpt(HELPDESK)
        assert client.data(MAIL) == reply
        assert store.mails == []
        assert client.sendmail(SENDER, [HELPDESK], MAIL) == {}
    assert len(store.mails) == 1
    with_traceback = [record for record in caplog.records if record.exc_info]
    assert bool(with_traceback) == (not isinstance(failure, TempFail))


@pytest.mark.parametrize("body", [b"", b"\r\n", b"   \r\n", b"just some words, no header\r\n"])
def test_empty_or_headerless_content_is_unusable(serve, body):
    gateway, store = serve()
    with smtp_client(gateway) as client:
        client.mail(SENDER)
        client.rcpt(HELPDESK)
        assert client.data(body) == (554, b"5.6.0 Message content is not a usable mail")
    assert store.mails == []


def test_bad_sequences_answer_503_5_5_1(serve):
    gateway, _ = serve()
    with smtp_client(gateway) as client:
        assert client.rcpt(HELPDESK) == (503, b"5.5.1 Bad sequence of commands: need MAIL first")
        client.mail(SENDER)
        assert client.docmd("DATA") == (503, b"5.5.1 Bad sequence of commands: need RCPT first")
        assert client.mail(SENDER) == (503, b"5.5.1 Bad sequence of commands: nested MAIL")


def test_info_log_names_id_size_source_peer_and_no_address(serve, caplog):
    caplog.set_level(logging.INFO)
    gateway, _ = serve()
    with smtp_client(gateway) as client:
        client.sendmail(SENDER, [HELPDESK], MAIL)
    info = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert f"accepted raw mail id=1 size={len(MAIL)} source=smtp peer=127.0.0.1" in info
    assert not [line for line in info if "@" in line]


def test_a_line_over_the_line_limit_is_refused_not_cut(serve):
    gateway, store = serve(max_message_bytes=4 * MAX_LINE_BYTES)
    with smtp_client(gateway) as client:
        client.mail(SENDER)
        client.rcpt(HELPDESK)
        reply = client.data(MAIL + b"y" * (MAX_LINE_BYTES + 1) + b"\r\n")
    assert reply == (554, f"5.6.0 Message has a line longer than {MAX_LINE_BYTES} bytes".encode())
    assert store.mails == []


def test_a_connection_past_max_connections_is_told_421_and_a_freed_place_is_taken_again(
        serve, caplog):
    gateway, store = serve(max_connections=2)
    first, second = Wire(gateway.port), Wire(gateway.port)
    assert first.greeting.startswith(b"220") and second.greeting.startswith(b"220")
    third = Wire(gateway.port)
    assert third.greeting == b"421 4.3.2 Too many connections, try again later"
    assert third.lines.readline() == b""  # and closed
    third.close()
    assert "connection from 127.0.0.1 refused: 2 connections open" in caplog.text
    second.command("EHLO client.test")
    send_raw(second, b"Subject: still served\r\n\r\nhello\r\n")
    assert second.reply() == b"250 2.0.0 Queued as 1"
    assert second.command("QUIT").startswith(b"221")
    second.close()
    deadline = time.monotonic() + 3
    while True:  # the server sees the QUIT's close a moment later
        fourth = Wire(gateway.port)
        if fourth.greeting.startswith(b"220") or time.monotonic() > deadline:
            break
        fourth.close()
        time.sleep(0.05)
    assert fourth.greeting.startswith(b"220")
    assert fourth.command("EHLO client.test").startswith(b"250")
    fourth.close()
    first.close()
    assert len(store.mails) == 1


def test_no_connection_limit_with_max_connections_0(serve):
    gateway, _ = serve(max_connections=0)
    wires = [Wire(gateway.port) for _ in range(120)]
    assert all(w.greeting.startswith(b"220") for w in wires)
    for wire in wires:
        wire.close()


def test_stop_lets_a_mail_being_stored_finish_then_says_421(serve, loop):
    store = GatedStore()
    gateway, _ = serve(store)
    wire = Wire(gateway.port)
    wire.command("EHLO client.test")
    send_raw(wire, MAIL)
    assert store.entered.wait(timeout=3)
    stopping = asyncio.run_coroutine_threadsafe(gateway.stop(grace=3), loop)
    loop.call_soon_threadsafe(store.gate.set)
    stopping.result(timeout=5)
    assert wire.reply() == b"250 2.0.0 Queued as 1"
    assert wire.reply() == b"421 4.3.2 Service shutting down, try again later"
    wire.close()
    assert len(store.mails) == 1


def test_stop_says_421_to_open_sessions(serve, loop):
    gateway, _ = serve()
    wire = Wire(gateway.port)
    assert wire.command("EHLO client.test").startswith(b"250")
    run(loop, gateway.stop(grace=1))
    assert wire.reply() == b"421 4.3.2 Service shutting down, try again later"
    wire.close()


@pytest.mark.parametrize(
    ("store", "max_bytes", "reply"),
    [
        (MemoryStore, 25_000, b"250 2.0.0 Queued as 1"),
        (lambda: FlakyStore(TempFail("no database")), 25_000, b"451 " + TRY_LATER[1]),
        (MemoryStore, 200, b"552 5.3.4 Message too big, the limit is 200 bytes"),
    ],
)
def test_lmtp_answers_once_per_accepted_recipient(serve, store, max_bytes, reply):
    gateway, memory = serve(store(), lmtp=True, max_message_bytes=max_bytes)
    wire = Wire(gateway.port)
    assert wire.greeting.startswith(b"220 postdesk.test")
    assert wire.command("LHLO client.test").startswith(b"250")
    send_raw(wire, MAIL, recipients=[HELPDESK, "sales@support.example", "x@other.example"])
    assert [wire.reply(), wire.reply()] == [reply, reply]
    assert wire.command("NOOP").startswith(b"250")  # nothing more was waiting
    wire.close()
    stored = [(raw, env.rcpt_tos, env.source) for raw, env in memory.mails]
    expected = [(MAIL, (HELPDESK, "sales@support.example"), "lmtp")]
    assert stored == (expected if reply.startswith(b"250") else [])


def test_smtplib_lmtp_with_one_recipient(serve):
    gateway, store = serve(lmtp=True)
    with smtplib.LMTP("127.0.0.1", gateway.port, local_hostname="client.test", timeout=3) as client:
        assert client.sendmail(SENDER, [HELPDESK], MAIL) == {}
    assert store.mails[0][0] == MAIL


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_speaks_lmtp_to_two_recipients(serve):
    gateway, store = serve(lmtp=True)
    command = [
        "swaks", "--server", "127.0.0.1", "--port", str(gateway.port), "--protocol", "LMTP",
        "--helo", "client.test", "--from", SENDER, "--to", f"{HELPDESK},sales@support.example",
        "--body", "hi from swaks", "--timeout", "3",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("<-  250 2.0.0 Queued as 1") == 2
    assert store.mails[0][1].rcpt_tos == (HELPDESK, "sales@support.example")


class FirstHeldStore(MemoryStore):
    """Holds the first mail until the test opens the gate (a slow commit); later ones go in."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate: asyncio.Event | None = None

    async def __call__(self, raw: bytes, envelope: Envelope) -> int:
        if not self.entered.is_set():
            self.gate = asyncio.Event()
            self.entered.set()
            await self.gate.wait()
        return await super().__call__(raw, envelope)


def hold_first_mail(serve, budget: int, wait: float = 0.2):
    """A gateway with an in-flight budget whose first mail (``MAIL``) waits for its commit."""
    store = FirstHeldStore()
    gateway, _ = serve(store, max_bytes_in_flight=budget, budget_wait=wait)
    wire = Wire(gateway.port)
    wire.command("EHLO client.test")
    send_raw(wire, MAIL)
    assert store.entered.wait(timeout=3)
    return gateway, store, wire


def release(loop, store: FirstHeldStore, wire: Wire) -> None:
    loop.call_soon_threadsafe(store.gate.set)
    assert wire.reply() == b"250 2.0.0 Queued as 1"
    wire.close()


def test_a_mail_outgrowing_the_budget_is_dropped_with_452_and_the_session_goes_on(serve, loop):
    gateway, store, first = hold_first_mail(serve, budget=len(MAIL) + 500)
    big = MAIL + (b"z" * 76 + b"\r\n") * 10
    with smtp_client(gateway) as client:
        client.mail(SENDER)
        client.rcpt(HELPDESK)
        assert client.data(big) == NO_STORAGE
        assert client.mail(SENDER)[0] == 250  # the transaction was reset, the session goes on
        client.rset()
        release(loop, store, first)
        assert client.sendmail(SENDER, [HELPDESK], big) == {}  # alone now: it fits
    assert [raw for raw, _ in store.mails] == [MAIL, big]


def test_a_declared_size_that_does_not_fit_is_refused_at_mail(serve, loop):
    gateway, store, first = hold_first_mail(serve, budget=len(MAIL) + 500)
    with smtp_client(gateway) as client:
        assert client.mail(SENDER, ["SIZE=501"]) == NO_STORAGE
        assert client.mail(SENDER, ["SIZE=400"])[0] == 250
    release(loop, store, first)


def test_a_declared_size_waits_for_room_then_goes_in(serve, loop):
    gateway, store, first = hold_first_mail(serve, budget=len(MAIL) + 500, wait=5)
    threading.Timer(0.3, loop.call_soon_threadsafe, (store.gate.set,)).start()
    with smtp_client(gateway) as client:
        assert client.mail(SENDER, [f"SIZE={len(MAIL) + 500}"])[0] == 250
        client.rcpt(HELPDESK)
        assert client.data(MAIL) == (250, b"2.0.0 Queued as 2")
    assert first.reply() == b"250 2.0.0 Queued as 1"
    first.close()


def test_a_mail_alone_fits_whatever_its_size(serve):
    gateway, store = serve(max_bytes_in_flight=100, budget_wait=0.2)
    with smtp_client(gateway) as client:
        assert client.sendmail(SENDER, [HELPDESK], MAIL, [f"SIZE={len(MAIL)}"]) == {}
        assert client.sendmail(SENDER, [HELPDESK], MAIL) == {}
    assert len(store.mails) == 2


def test_a_connection_lost_during_data_gives_its_bytes_back(serve):
    budget = 2000
    gateway, store = serve(max_bytes_in_flight=budget, budget_wait=2)
    wire = Wire(gateway.port)
    wire.command("EHLO client.test")
    assert wire.command(f"MAIL FROM:<{SENDER}> SIZE=1500").startswith(b"250")
    wire.command(f"RCPT TO:<{HELPDESK}>")
    assert wire.command("DATA").startswith(b"354")
    wire.send(MAIL + b"w" * 76 + b"\r\n")
    wire.close()  # gone in the middle of the mail
    with smtp_client(gateway) as client:  # the whole budget, with another connection open
        other = Wire(gateway.port)
        assert client.mail(SENDER, [f"SIZE={budget}"])[0] == 250
        other.close()
    assert store.mails == []


@pytest.mark.parametrize("first_line", [
    b"From jean@client.test Mon Mar  3 10:00:00 2025\r\n",  # an mbox line from a pipe
    b"---- Original email message ----\r\n",  # a forwarding client's stray line
    b"\r\n",
])
def test_a_mail_whose_header_follows_a_stray_first_line_is_accepted(serve, first_line):
    gateway, store = serve()
    with smtp_client(gateway) as client:
        client.mail(SENDER)
        client.rcpt(HELPDESK)
        assert client.data(first_line + MAIL)[0] == 250
    assert len(store.mails) == 1


@pytest.mark.parametrize("lmtp", [False, True])
def test_refusals_are_logged_at_info_with_the_reason_and_no_address(serve, caplog, lmtp):
    caplog.set_level(logging.INFO, logger="postdesk.gateway.smtp")
    gateway, store = serve(lmtp=lmtp, max_message_bytes=2000)
    wire = Wire(gateway.port)
    wire.command("LHLO client.test" if lmtp else "EHLO client.test")
    assert wire.command(f"MAIL FROM:<{SENDER}>").startswith(b"250")
    assert wire.command("RCPT TO:<someone@other.example>").startswith(b"550")
    assert wire.command(f"RCPT TO:<{HELPDESK}>").startswith(b"250")
    assert wire.command("RCPT TO:<sales@support.example>").startswith(b"250")
    assert wire.command("DATA").startswith(b"354")
    wire.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 40 + b".\r\n")
    replies = [wire.reply() for _ in range(2 if lmtp else 1)]
    assert all(reply.startswith(b"552") for reply in replies)
    assert wire.command(f"MAIL FROM:<{SENDER}> SIZE=5000").startswith(b"552")
    wire.close()
    refused = [r for r in caplog.records if "refused a mail" in r.getMessage()]
    protocol = "lmtp" if lmtp else "smtp"
    assert [(r.levelno, r.getMessage()) for r in refused] == [
        (logging.INFO, f"{protocol} refused a mail from 127.0.0.1: {RCPT_REFUSED[0]} "
                       f"{RCPT_REFUSED[1].decode()}"),
        (logging.INFO, f"{protocol} refused a mail from 127.0.0.1: 552 {TOO_BIG[1].decode()}"),
        (logging.INFO, f"{protocol} refused a mail from 127.0.0.1: 552 {TOO_BIG[1].decode()}"),
    ]
    assert store.mails == []
