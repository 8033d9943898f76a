"""The IMAP poller against a private Dovecot: every mail reaches the intake exactly once.

``MemoryIntake``, ``MemoryCursors`` and ``MemoryLease`` are real, thread-safe implementations of
the poller's interfaces kept in dicts; the intake dedupes on the IMAP key and on the Message-ID
like the real store, counts every attempt, can be taken down (TempFail) or made to crash.
Mail arrives as another client would send it (IMAP APPEND, ``doveadm save``, a Maildir drop).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import socket
import threading
import time
import uuid
from email.parser import BytesHeaderParser

import pytest
from imapclient import IMAPClient

from postdesk.config import ImapSettings
from postdesk.errors import TempFail
from postdesk.gateway import imap
from postdesk.gateway.imap import check_mailbox, connect
from postdesk.gateway.imap_poller import MailboxPoller
from tests.clocks import Clock
from tests.dovecot import PASSWORD, Dovecot

pytestmark = pytest.mark.dovecot
PASSWORD_ENV = "POSTDESK_TEST_IMAP_PASSWORD"
DONE = {"\\Seen", "$Postdesk"}
_users = itertools.count(1)


class Crash(BaseException):
    """The process dies right after the intake committed: nothing after it runs."""


class MemoryIntake:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.rows: dict[int, tuple[bytes, object, tuple]] = {}
        self.by_key: dict[tuple, int] = {}
        self.by_message_id: dict[str, int] = {}
        self.attempts = 0
        self.down = False
        self.delay = 0.0
        self.crash_after: int | None = None
        self.before_commit = None  # called with the key, e.g. to look at the server's flags

    def store_imap(self, raw: bytes, envelope, key: tuple[str, str, int, int]) -> int:
        time.sleep(self.delay)
        with self.cond:
            self.attempts += 1
            if self.down:
                raise TempFail("store is down")
            row = self.by_key.get(key) or self._insert(raw, envelope, key)
            self.cond.notify_all()
        if self.crash_after is not None and len(self.rows) >= self.crash_after:
            raise Crash()
        return row

    def _insert(self, raw: bytes, envelope, key: tuple) -> int:
        message_id = BytesHeaderParser().parsebytes(raw)["Message-ID"]
        if message_id in self.by_message_id:  # same mail under a new UIDVALIDITY
            row = self.by_message_id[message_id]
        else:
            if self.before_commit:
                self.before_commit(key)
            row = len(self.rows) + 1
            self.rows[row] = (raw, envelope, key)
            self.by_message_id[message_id] = row
        self.by_key[key] = row
        return row

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.rows) >= count, timeout)


class MemoryCursors:
    def __init__(self) -> None:
        self.lock, self.cursors = threading.Lock(), {}

    def load_cursor(self, mailbox: str, folder: str):
        with self.lock:
            return self.cursors.get((mailbox, folder))

    def save_cursor(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        with self.lock:
            self.cursors[(mailbox, folder)] = (uidvalidity, last_uid)


class MemoryLease:
    def __init__(self, clock=time.monotonic) -> None:
        self.lock, self.leases, self.clock = threading.Lock(), {}, clock

    def acquire(self, name: str, holder: str, ttl_seconds: float) -> bool:
        with self.lock:
            current, expires = self.leases.get(name, (None, 0.0))
            if current not in (None, holder) and expires > self.clock():
                return False
            self.leases[name] = (holder, self.clock() + ttl_seconds)
            return True

    def release(self, name: str, holder: str) -> None:
        with self.lock:
            if self.leases.get(name, (None,))[0] == holder:
                del self.leases[name]


class DiesWithoutRelease(MemoryLease):
    """The holder's process dies: its lease is never released, only expires."""

    def __init__(self, shared: MemoryLease) -> None:
        self.shared = shared

    def acquire(self, name: str, holder: str, ttl_seconds: float) -> bool:
        return self.shared.acquire(name, holder, ttl_seconds)

    def release(self, name: str, holder: str) -> None:
        pass


class Counting:
    """Counts what one poller handed to a shared intake."""

    def __init__(self, inner: MemoryIntake) -> None:
        self.inner, self.count = inner, 0

    def store_imap(self, raw, envelope, key):
        self.count += 1
        return self.inner.store_imap(raw, envelope, key)


def mail(n: int = 1, subject: str = "Printer on fire") -> bytes:
    return (f"From: Customer <c{n}@client.example>\r\nTo: help@support.example\r\n"
            f"Subject: {subject} {n}\r\nMessage-ID: <{uuid.uuid4().hex}@client.example>\r\n"
            f"\r\nHello {n}\r\n").encode()


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def long_idle(records) -> bool:
    """The poller has entered an IDLE that lasts 2 s or more (after its short re-checks)."""
    found = (re.search(r"IDLE for up to ([\d.]+)s", record.getMessage()) for record in records)
    return any(match and float(match[1]) >= 2 for match in found)


@pytest.fixture(scope="module")
def dovecot():
    server = Dovecot().start()
    yield server
    server.cleanup()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture
def user(dovecot, env) -> str:
    return dovecot.add_user(f"desk{next(_users)}")


@pytest.fixture
def make(dovecot, user):
    """Builds pollers for this test's mailbox with fast timings; stops them all at the end."""
    made = []

    def build(intake=None, cursors=None, lease=None, *, lease_ttl=3.0,
              monotonic=time.monotonic, **options):
        settings = ImapSettings(**{"name": user, "host": dovecot.host, "port": dovecot.port,
                                   "security": "none", "username": user,
                                   "password_env": PASSWORD_ENV, **options})
        poller = MailboxPoller(settings, intake or MemoryIntake(), cursors or MemoryCursors(),
                               lease or MemoryLease(), lease_ttl=lease_ttl, backoff=(0.05, 0.5),
                               monotonic=monotonic)
        made.append(poller)
        return poller

    yield build
    for poller in made:
        poller.stop()


def test_idle_stores_a_new_mail_fast_and_flags_it_only_after_the_store(
        dovecot, user, make, caplog):
    caplog.set_level(logging.DEBUG, logger="postdesk.gateway.imap")
    intake = MemoryIntake()
    flags_at_store = []
    intake.before_commit = lambda key: flags_at_store.append(dovecot.flags(user, "INBOX")[key[3]])
    poller = make(intake, poll_seconds=60)  # a poll would come after 60 s: only IDLE is fast
    poller.start()
    assert wait_until(lambda: long_idle(caplog.records), timeout=5)  # not a 1 s re-check IDLE
    started = time.monotonic()
    dovecot.append(user, "INBOX", [mail()])
    assert intake.wait_for(1, timeout=3)
    print(f"IDLE latency: {time.monotonic() - started:.2f}s")
    assert any("IDLE woke" in record.message and "EXISTS" in record.message
               for record in caplog.records)  # the server's EXISTS, not a re-check
    assert not flags_at_store[0] & DONE
    assert wait_until(lambda: DONE <= dovecot.flags(user, "INBOX")[1])
    _raw, envelope, key = intake.rows[1]
    assert envelope.source == f"imap:{user}/INBOX" and envelope.mail_from == ""
    assert key[:2] == (user, "INBOX") and key[3] == 1
    started = time.monotonic()
    poller.stop()
    assert time.monotonic() - started < 2 and poller.state == "stopped"


def test_tempfail_leaves_the_mail_unseen_and_it_is_stored_when_the_store_is_back(
        dovecot, user, make):
    intake = MemoryIntake()
    intake.down = True
    poller = make(intake)
    poller.start()
    dovecot.append(user, "INBOX", [mail()])
    assert wait_until(lambda: intake.attempts >= 3)  # retried, with backoff
    assert not dovecot.flags(user, "INBOX")[1] & (DONE | {"\\Deleted"})
    intake.down = False
    assert intake.wait_for(1, timeout=3)
    assert wait_until(lambda: DONE <= dovecot.flags(user, "INBOX")[1])


@pytest.mark.parametrize("move", [True, False], ids=["MOVE", "COPY+EXPUNGE"])
def test_processed_folder_receives_the_stored_mail(dovecot, user, make, monkeypatch, move):
    if not move:
        real = IMAPClient.has_capability
        monkeypatch.setattr(IMAPClient, "has_capability",
                            lambda self, name: name.upper() != "MOVE" and real(self, name))
    dovecot.append(user, "INBOX", [mail(1), mail(2)])
    poller = make(processed="Processed")
    assert poller.run_once() == {"INBOX": 2}
    assert dovecot.list_uids(user, "INBOX") == []
    assert [DONE <= flags for flags in dovecot.flags(user, "Processed").values()] == [True] * 2


def test_200_mails_exactly_once_across_a_stop_and_restart_mid_batch(dovecot, user, make):
    dovecot.append(user, "INBOX", [mail(n) for n in range(200)])
    intake, cursors, lease = MemoryIntake(), MemoryCursors(), MemoryLease()
    intake.delay = 0.003
    first = make(intake, cursors, lease)
    first.start()
    assert wait_until(lambda: len(intake.rows) >= 70)
    first.stop()
    stored = sorted(key[3] for key in intake.by_key)
    assert 70 <= len(stored) < 200
    flagged = sorted(uid for uid, flags in dovecot.flags(user, "INBOX").items() if DONE <= flags)
    assert flagged == stored and cursors.load_cursor(user, "INBOX")[1] == stored[-1]
    second = make(intake, cursors, lease)
    second.start()
    assert intake.wait_for(200, timeout=10)
    assert wait_until(lambda: cursors.load_cursor(user, "INBOX")[1] == 200)
    assert len(intake.rows) == len(intake.by_message_id) == 200 and intake.attempts == 200
    assert all(DONE <= flags for flags in dovecot.flags(user, "INBOX").values())


def test_a_crash_between_store_and_flag_refetches_and_the_key_dedupes(dovecot, user, make):
    dovecot.append(user, "INBOX", [mail(n) for n in range(30)])
    intake, cursors = MemoryIntake(), MemoryCursors()
    intake.crash_after = 10
    crashed = make(intake, cursors)
    with pytest.raises(Crash):
        crashed.run_once()
    crashed.stop()
    assert len(intake.rows) == 10 and cursors.load_cursor(user, "INBOX") is None
    assert not any(flags & DONE for flags in dovecot.flags(user, "INBOX").values())
    intake.crash_after = None
    assert make(intake, cursors).run_once() == {"INBOX": 30}
    assert len(intake.rows) == 30 and intake.attempts == 40  # 10 re-fetched, deduped by key
    assert cursors.load_cursor(user, "INBOX")[1] == 30


def test_dovecot_restart_while_idling_reconnects_and_picks_up_what_arrived(dovecot, user, make):
    intake = MemoryIntake()
    poller = make(intake, poll_seconds=60)
    poller.start()
    dovecot.append(user, "INBOX", [mail(1)])
    assert intake.wait_for(1, timeout=3) and wait_until(lambda: poller.state == "idle")
    dovecot.stop()
    assert wait_until(lambda: poller.state in ("backoff", "connecting"), timeout=3)
    dovecot.deliver(user, "INBOX", mail(2))  # dropped into the Maildir while the server is down
    time.sleep(1)  # down for a while: several reconnects are refused
    dovecot.start()
    started = time.monotonic()
    assert intake.wait_for(2, timeout=5)
    print(f"picked up {time.monotonic() - started:.2f}s after the restart")
    assert len(intake.rows) == 2


def test_a_connection_dropped_without_bye_during_idle_is_noticed(dovecot, user, make):
    intake = MemoryIntake()
    poller = make(intake, poll_seconds=60)
    poller.start()
    assert wait_until(lambda: poller.state == "idle")
    assert dovecot.kill_sessions(user) == 1  # EOF, no BYE: idle_check() returns [] (#565)
    assert wait_until(lambda: poller.state != "idle", timeout=2)
    assert wait_until(lambda: poller.state == "idle", timeout=3)
    dovecot.append(user, "INBOX", [mail()])
    assert intake.wait_for(1, timeout=3)


def test_a_server_that_never_answers_blocks_no_caller(make, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # connections queue up; no greeting ever comes
    monkeypatch.setattr("postdesk.gateway.imap.CONNECT_TIMEOUT", 1.0)
    poller = make(port=silent.getsockname()[1])
    started = time.monotonic()
    poller.start()
    assert time.monotonic() - started < 0.1
    assert wait_until(lambda: poller.state == "connecting")
    poller.stop()
    assert time.monotonic() - started < 1.5  # the thread gives up by itself a moment later
    assert wait_until(lambda: poller.state == "stopped", timeout=2)
    report = check_mailbox(poller.settings)
    assert not report["ok"] and "timed out" in report["error"], report
    silent.close()


@pytest.mark.parametrize("keywords_kept", [True, False], ids=["same-server", "migrated"])
def test_a_uidvalidity_change_loses_nothing_and_duplicates_nothing(
        dovecot, user, make, keywords_kept):
    intake, cursors = MemoryIntake(), MemoryCursors()
    poller = make(intake, cursors)
    poller.start()
    dovecot.append(user, "INBOX", [mail(n) for n in range(3)])
    assert intake.wait_for(3, timeout=3)
    assert wait_until(lambda: (cursors.load_cursor(user, "INBOX") or (0, 0))[1] == 3)
    old = cursors.load_cursor(user, "INBOX")[0]
    dovecot.set_uidvalidity(user, "INBOX", old + 1000)
    if not keywords_kept:  # a migration that lost $Postdesk: only the Message-ID dedupes
        dovecot.doveadm("flags remove", "\\Seen $Postdesk", "mailbox", "INBOX", "ALL", user=user)
    dovecot.append(user, "INBOX", [mail(n) for n in range(3, 5)])
    assert intake.wait_for(5, timeout=5)
    assert wait_until(lambda: cursors.load_cursor(user, "INBOX")[0] == old + 1000)
    assert len(intake.rows) == len(intake.by_message_id) == 5
    assert intake.attempts == (5 if keywords_kept else 8)
    assert all(DONE <= flags for flags in dovecot.flags(user, "INBOX").values())


def test_mail_in_sent_is_stored_as_agent_mail(dovecot, user, make):
    intake = MemoryIntake()
    dovecot.create_folder(user, "Sent")
    poller = make(intake, sent="Sent", poll_seconds=0.5)
    poller.start()
    assert wait_until(lambda: poller.state == "idle")
    started = time.monotonic()
    dovecot.append(user, "Sent", [mail(subject="Re: Printer on fire")])
    assert intake.wait_for(1, timeout=3)
    print(f"Sent latency: {time.monotonic() - started:.2f}s")
    _raw, envelope, key = intake.rows[1]
    assert envelope.source == f"imap-sent:{user}/Sent" and key[1] == "Sent"
    assert wait_until(lambda: DONE <= dovecot.flags(user, "Sent")[1])


def test_one_process_polls_a_mailbox_and_another_takes_over_when_it_dies(dovecot, user, make):
    """The lease's clock is the test's: it moves past the dead holder's ttl at once."""
    clock = Clock()
    intake, cursors, lease = MemoryIntake(), MemoryCursors(), MemoryLease(clock.monotonic)
    first, second = Counting(intake), Counting(intake)
    doomed = make(first, cursors, DiesWithoutRelease(lease), lease_ttl=1.5,
                  monotonic=clock.monotonic)
    heir = make(second, cursors, lease, lease_ttl=1.5, monotonic=clock.monotonic)
    doomed.start()
    assert wait_until(lambda: doomed.state == "idle")
    heir.start()
    assert wait_until(lambda: heir.state == "waiting-lease")
    dovecot.append(user, "INBOX", [mail(1)])
    assert intake.wait_for(1, timeout=3) and (first.count, second.count) == (1, 0)
    assert heir.run_once() == {}
    doomed.stop()
    assert heir.run_once() == {}  # the dead holder's lease has not expired yet
    clock.advance(1.5)
    started = time.monotonic()
    dovecot.append(user, "INBOX", [mail(2)])
    assert intake.wait_for(2, timeout=5)
    print(f"takeover {time.monotonic() - started:.2f}s after the ttl ran out")
    assert (first.count, second.count) == (1, 1)


def test_a_missing_sent_folder_does_not_stop_the_inbox(dovecot, user, make):
    dovecot.append(user, "INBOX", [mail()])
    assert make(sent="Sent Items").run_once() == {"INBOX": 1}


def test_check_mailbox_reports_the_mailbox(dovecot, user, make):
    dovecot.append(user, "INBOX", [mail(1), mail(2)])
    settings = make(sent="Sent").settings
    report = check_mailbox(settings)
    assert report["ok"] and report["idle"] and report["move"]
    assert report["inbox"]["messages"] == 2 and report["inbox"]["unseen"] == 2
    assert report["inbox"]["uidnext"] == 3 and report["inbox"]["uidvalidity"] > 0
    assert report["configured_folders"] == {"INBOX": True, "Sent": False}


@pytest.mark.parametrize("change, expected", [
    ({"password_env": "POSTDESK_TEST_WRONG"}, "login refused"),
    ({"password_env": "POSTDESK_TEST_UNSET"}, "POSTDESK_TEST_UNSET is not set"),
    ({"security": "tls"}, "TLS failure"),
    ({"port": 1}, "connection refused"),
])
def test_check_mailbox_explains_failures_without_the_password(
        dovecot, user, make, monkeypatch, change, expected):
    monkeypatch.setenv("POSTDESK_TEST_WRONG", "not-the-" + PASSWORD)
    report = check_mailbox(dataclasses.replace(make().settings, **change), timeout=3)
    assert not report["ok"] and expected in report["error"], report
    assert PASSWORD not in repr(report)


def test_connections_use_tcp_keepalive_so_a_silent_drop_is_seen_within_a_minute(make):
    client = connect(make().settings)
    try:
        sock = client.socket()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        if hasattr(socket, "TCP_KEEPIDLE"):  # Linux
            tcp = {name: sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name))
                   for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT")}
            assert tcp == {"TCP_KEEPIDLE": imap.KEEPALIVE_IDLE,
                           "TCP_KEEPINTVL": imap.KEEPALIVE_INTERVAL,
                           "TCP_KEEPCNT": imap.KEEPALIVE_COUNT}
            assert imap.KEEPALIVE_IDLE + imap.KEEPALIVE_COUNT * imap.KEEPALIVE_INTERVAL <= 60
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux: unacknowledged bytes, the same minute
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 60_000
    finally:
        client.logout()

