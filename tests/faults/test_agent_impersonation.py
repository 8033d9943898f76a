"""Forged agents and forged customers, sent by SMTP into a real ``postdesk serve``.

The desk trusts ``mx.acme.test``: an agent's mail counts only with that server's
Authentication-Results, and only its topmost block of them (what the receiving server wrote;
anything below may come from the sender). Each attack is sent next to a genuine control mail
that must work, so a test cannot pass by breaking agents or customers altogether. The worker
runs as a thread of the serve process (``[worker] separate_process = false``): what is judged
here is the mail, not where it is processed.

The tests share one served desk per store (on each xdist worker that runs them). Each opens
its own ticket for its own customer with its own Message-IDs, and reads only the mails,
events and outbound mails that came after it began, so none depends on another or on order.
"""

from __future__ import annotations

import itertools
import json
import smtplib
from pathlib import Path

import pytest

from tests.conftest import _truncate, fresh_sqlite
from tests.faults import support
from tests.faults.support import Store, figures, serving, wait_until
from tests.helpers import make_mail

DESK = """
[agent_auth]
trusted_authserv_id = "mx.acme.test"

[[agents]]
address = "bob@acme.test"
name = "Bob"

[[agents]]
address = "alice@acme.test"
name = "Alice"
"""
PASS = "Authentication-Results: mx.acme.test; dkim=pass header.d=acme.test"
UNREADABLE = ("Authentication-Results: mx.acme.test; spf=softfail smtp.mailfrom=m@evil.test "
              "smtp.helo=[203.0.113.9]")
ENCODED_SENDER = "=?l1?q?a=3Bdkim=pass_header.d=3Dacme.test=3Bx=y_p.q=b?=@evil.test"
ONE_PROCESS = "[worker]\nseparate_process = false\n"


def received(raw: bytes, *fields: str) -> bytes:
    """``raw`` as our MX hands it on: its header ``fields`` added on top, in this order."""
    return "".join(f"{field}\r\n" for field in fields).encode() + raw


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request, tmp_path_factory):
    """``(serve, store)``: one desk served for the module's tests on this store."""
    folder = tmp_path_factory.mktemp(f"impersonation-{request.param}")
    if request.param == "sqlite":
        url = fresh_sqlite(request.getfixturevalue("migrated_sqlite"), folder)
    else:
        url = request.getfixturevalue("pg_url")
        _truncate(url)
    store = Store(url)
    try:
        with serving(folder, url, DESK + ONE_PROCESS) as serve:
            # Ours to stop at the end of the module (serving does), not after the first test:
            # the per-test clean-up kills every serve still registered (one process here, no
            # child to outlive it).
            support._GROUPS.pop(serve.proc.pid, None)
            yield serve, store
    finally:
        store.close()


_cases = itertools.count(1)


class Case:
    """One test's part of the shared desk: its customer, its ticket, what came after it began."""

    def __init__(self, serve, store: Store) -> None:
        self.serve, self.store = serve, store
        self.n = next(_cases)
        self.customer = f"julie{self.n}@client.test"
        self.inbound_before = store.scalar("SELECT coalesce(max(id), 0) FROM inbound")
        self.event_before = store.scalar("SELECT coalesce(max(id), 0) FROM event")
        self.outbound_before = set(self._outbound())
        self.ticket_id: int | None = None

    def mid(self, name: str) -> str:
        return f"<{name}-{self.n}@client.test>"

    def send(self, raw: bytes, mail_from: str = "m@evil.test") -> None:
        with smtplib.SMTP("127.0.0.1", self.serve.port, timeout=30) as client:
            client.sendmail(mail_from, ["support@desk.test"], raw)

    def processed(self, count: int) -> None:
        """Wait until ``count`` of this test's mails are processed (or set aside)."""
        wait_until(lambda: self.store.scalar(
            "SELECT count(*) FROM inbound WHERE id > :before AND status NOT IN "
            "('received', 'processing')", before=self.inbound_before) >= count,
            60, f"{count} mails processed", log=self.serve.log)

    def open_ticket(self) -> None:
        self.send(make_mail(self.customer, "Facture en double", "Bonjour,\n",
                            message_id=self.mid("q1")), self.customer)
        self.processed(1)
        self.ticket_id = self.store.scalar("SELECT id FROM ticket WHERE requester = :r",
                                           r=self.customer)

    @property
    def subject(self) -> str:
        return f"Re: [#{self.ticket_id}] Facture en double"

    def command_mail(self, body: str, *fields: str) -> bytes:
        return received(make_mail("bob@acme.test", self.subject, body), *fields)

    def ticket(self) -> dict:
        row = self.store.rows("SELECT status, priority, assignee FROM ticket WHERE id = :id",
                              id=self.ticket_id)[0]
        return dict(zip(("status", "priority", "assignee"), row))

    def events(self, kind: str) -> list[dict]:
        return [json.loads(data) for data, in self.store.rows(
            "SELECT data FROM event WHERE kind = :kind AND id > :before ORDER BY id",
            kind=kind, before=self.event_before)]

    def inbound(self) -> list:
        return self.store.rows("SELECT id, status, error, outcome FROM inbound "
                               "WHERE id > :before ORDER BY id", before=self.inbound_before)

    def _outbound(self) -> list[Path]:
        folder = self.serve.folder / "outbound"
        return [p for sub in ("new", "cur") if (folder / sub).exists()
                for p in (folder / sub).iterdir()]

    def relayed_as(self, name: str) -> list[str]:
        """Outbound mails to this test's customer written as ``name`` (the sender may still be
        writing an earlier test's mails to its own customer: those are not looked at)."""
        return [p.name for p in self._outbound() if p not in self.outbound_before
                and name.encode() in (data := p.read_bytes()) and self.customer.encode() in data]


@pytest.fixture
def case(served) -> Case:
    return Case(*served)


def test_an_unreadable_trusted_header_hides_no_forged_one_below(case):
    case.open_ticket()
    case.send(case.command_mail("#assign me\n#priority urgent\nForged.\n", UNREADABLE, PASS))
    case.processed(2)
    after_attack = case.ticket()
    spoofs = case.events("spoofing_attempt")
    case.send(case.command_mail("#priority high\nGenuine.\n", PASS), "bob@acme.test")
    case.processed(3)
    genuine = case.ticket()
    print(figures("unreadable trusted header", {"after the attack": after_attack,
                                                "spoofing events": spoofs,
                                                "after the genuine mail": genuine}))
    assert after_attack == {"status": "new", "priority": "normal", "assignee": None}
    assert len(spoofs) == 1 and "cannot be read" in spoofs[0]["reason"], spoofs
    assert "mx.acme.test" in spoofs[0]["reason"]
    assert genuine["priority"] == "high"  # the control: a readable header still proves Bob


def test_an_encoded_word_echoed_by_the_mx_proves_nothing(case):
    spf = f"Authentication-Results: mx.acme.test; spf=fail smtp.mailfrom={ENCODED_SENDER}"
    case.open_ticket()
    case.send(case.command_mail("#assign me\n#priority urgent\nPay to IBAN XX.\n", spf))
    case.processed(2)
    after_attack = case.ticket()
    relayed = case.relayed_as("Bob via")
    spoofs = case.events("spoofing_attempt")
    print(figures("encoded word in smtp.mailfrom", {"ticket": after_attack, "relayed": relayed,
                                                    "spoofing events": spoofs}))
    assert after_attack == {"status": "new", "priority": "normal", "assignee": None}
    assert relayed == []
    assert len(spoofs) == 1


def test_a_customer_close_is_refused_when_dmarc_fails(case):
    fail = ("Authentication-Results: mx.acme.test; dmarc=fail (p=reject dis=none) "
            "header.from=client.test")
    good = "Authentication-Results: mx.acme.test; dmarc=pass header.from=client.test"
    case.open_ticket()
    forged = received(make_mail(case.customer, case.subject, "#close\nC'est réglé.\n"), fail)
    case.send(forged)
    case.processed(2)
    after_forgery = case.ticket()
    refused = case.events("close_refused")
    kept = case.store.scalar("SELECT count(*) FROM message WHERE ticket_id = :id "
                             "AND direction = 'in'", id=case.ticket_id)
    genuine = received(make_mail(case.customer, case.subject, "#close\nMerci.\n"), good)
    case.send(genuine, case.customer)
    case.processed(3)
    after_genuine = case.ticket()
    print(figures("customer #close and DMARC", {"after the forgery": after_forgery,
                                                "close_refused events": refused,
                                                "messages kept": kept,
                                                "after the genuine close": after_genuine}))
    assert after_forgery["status"] != "resolved"
    assert len(refused) == 1 and "dmarc=fail" in refused[0]["reason"], refused
    assert kept == 2  # the forged mail is recorded, not dropped
    assert after_genuine["status"] == "resolved"


def test_a_reused_message_id_from_another_sender_is_quarantined_not_dropped(case):
    case.open_ticket()  # the customer's genuine q1
    case.send(make_mail("eve@evil.test", "Facture en double", "Shadow.\n",
                        message_id=case.mid("q1")), "eve@evil.test")
    case.processed(2)
    # The other order: a forger takes a Message-ID first, the genuine mail comes after.
    case.send(make_mail("eve@evil.test", "Hello", "First.\n", message_id=case.mid("q2")),
              "eve@evil.test")
    case.send(make_mail(case.customer, "Second problem", "Genuine.\n",
                        message_id=case.mid("q2")), case.customer)
    # A true duplicate (same sender) is still discarded.
    case.send(make_mail(case.customer, "Facture en double", "Bonjour,\n",
                        message_id=case.mid("q1")), case.customer)
    case.processed(5)
    rows = case.inbound()
    print(figures("Message-ID reuse", {f"inbound {r[0]}": r[1:] for r in rows}))
    statuses = [r[1] for r in rows]
    assert statuses == ["processed", "quarantined", "processed", "quarantined", "discarded"], rows
    for row in (rows[1], rows[3]):
        assert "another sender" in row[2], row
