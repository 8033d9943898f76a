"""Forged agents and forged customers, sent by SMTP into a real ``postdesk serve``.

The desk trusts ``mx.acme.test``: an agent's mail counts only with that server's
Authentication-Results, and only its topmost block of them (what the receiving server wrote;
anything below may come from the sender). Each attack is sent next to a genuine control mail
that must work, so a test cannot pass by breaking agents or customers altogether. The worker
runs as a thread of the serve process (``[worker] separate_process = false``): what is judged
here is the mail, not where it is processed.
"""

from __future__ import annotations

import json
import smtplib

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


def send(serve, raw: bytes, mail_from: str = "m@evil.test") -> None:
    with smtplib.SMTP("127.0.0.1", serve.port, timeout=30) as client:
        client.sendmail(mail_from, ["support@desk.test"], raw)


def processed(serve, store: Store, count: int) -> None:
    wait_until(lambda: store.scalar("SELECT count(*) FROM inbound WHERE status NOT IN "
                                    "('received', 'processing')") >= count,
               60, f"{count} mails processed", log=serve.log)


def ticket(store: Store, number: int) -> dict:
    row = store.rows("SELECT status, priority, assignee FROM ticket WHERE id = :id", id=number)[0]
    return dict(zip(("status", "priority", "assignee"), row))


def events(store: Store, kind: str) -> list[dict]:
    return [json.loads(data) for data, in
            store.rows("SELECT data FROM event WHERE kind = :kind ORDER BY id", kind=kind)]


def relayed_as(serve, name: str) -> list[str]:
    folder = serve.folder / "outbound"
    return [p.name for sub in ("new", "cur") if (folder / sub).exists()
            for p in (folder / sub).iterdir() if name.encode() in p.read_bytes()]


def open_ticket(serve, store: Store) -> None:
    send(serve, make_mail("julie@client.test", "Facture en double", "Bonjour,\n",
                          message_id="<q1@client.test>"), "julie@client.test")
    processed(serve, store, 1)


def command_mail(body: str, *fields: str) -> bytes:
    return received(make_mail("bob@acme.test", "Re: [#1] Facture en double", body), *fields)


def test_an_unreadable_trusted_header_hides_no_forged_one_below(db_url, tmp_path):
    store = Store(db_url)
    with serving(tmp_path, db_url, DESK + ONE_PROCESS) as serve:
        open_ticket(serve, store)
        send(serve, command_mail("#assign me\n#priority urgent\nForged.\n", UNREADABLE, PASS))
        processed(serve, store, 2)
        after_attack = ticket(store, 1)
        spoofs = events(store, "spoofing_attempt")
        send(serve, command_mail("#priority high\nGenuine.\n", PASS), "bob@acme.test")
        processed(serve, store, 3)
        genuine = ticket(store, 1)
    store.close()
    print(figures("unreadable trusted header", {"after the attack": after_attack,
                                                "spoofing events": spoofs,
                                                "after the genuine mail": genuine}))
    assert after_attack == {"status": "new", "priority": "normal", "assignee": None}
    assert len(spoofs) == 1 and "cannot be read" in spoofs[0]["reason"], spoofs
    assert "mx.acme.test" in spoofs[0]["reason"]
    assert genuine["priority"] == "high"  # the control: a readable header still proves Bob


def test_an_encoded_word_echoed_by_the_mx_proves_nothing(db_url, tmp_path):
    store = Store(db_url)
    spf = f"Authentication-Results: mx.acme.test; spf=fail smtp.mailfrom={ENCODED_SENDER}"
    with serving(tmp_path, db_url, DESK + ONE_PROCESS) as serve:
        open_ticket(serve, store)
        send(serve, command_mail("#assign me\n#priority urgent\nPay to IBAN XX.\n", spf))
        processed(serve, store, 2)
        after_attack = ticket(store, 1)
        relayed = relayed_as(serve, "Bob via")
        spoofs = events(store, "spoofing_attempt")
    store.close()
    print(figures("encoded word in smtp.mailfrom", {"ticket": after_attack, "relayed": relayed,
                                                    "spoofing events": spoofs}))
    assert after_attack == {"status": "new", "priority": "normal", "assignee": None}
    assert relayed == []
    assert len(spoofs) == 1


def test_a_customer_close_is_refused_when_dmarc_fails(db_url, tmp_path):
    store = Store(db_url)
    fail = ("Authentication-Results: mx.acme.test; dmarc=fail (p=reject dis=none) "
            "header.from=client.test")
    good = "Authentication-Results: mx.acme.test; dmarc=pass header.from=client.test"
    with serving(tmp_path, db_url, DESK + ONE_PROCESS) as serve:
        open_ticket(serve, store)
        forged = received(make_mail("julie@client.test", "Re: [#1] Facture en double",
                                    "#close\nC'est réglé.\n"), fail)
        send(serve, forged)
        processed(serve, store, 2)
        after_forgery = ticket(store, 1)
        refused = events(store, "close_refused")
        kept = store.scalar("SELECT count(*) FROM message WHERE ticket_id = 1 AND direction = 'in'")
        genuine = received(make_mail("julie@client.test", "Re: [#1] Facture en double",
                                     "#close\nMerci.\n"), good)
        send(serve, genuine, "julie@client.test")
        processed(serve, store, 3)
        after_genuine = ticket(store, 1)
    store.close()
    print(figures("customer #close and DMARC", {"after the forgery": after_forgery,
                                                "close_refused events": refused,
                                                "messages kept": kept,
                                                "after the genuine close": after_genuine}))
    assert after_forgery["status"] != "resolved"
    assert len(refused) == 1 and "dmarc=fail" in refused[0]["reason"], refused
    assert kept == 2  # the forged mail is recorded, not dropped
    assert after_genuine["status"] == "resolved"


def test_a_reused_message_id_from_another_sender_is_quarantined_not_dropped(db_url, tmp_path):
    store = Store(db_url)
    with serving(tmp_path, db_url, DESK + ONE_PROCESS) as serve:
        open_ticket(serve, store)  # julie's genuine <q1@client.test>
        send(serve, make_mail("eve@evil.test", "Facture en double", "Shadow.\n",
                              message_id="<q1@client.test>"), "eve@evil.test")
        processed(serve, store, 2)
        # The other order: a forger takes a Message-ID first, the genuine mail comes after.
        send(serve, make_mail("eve@evil.test", "Hello", "First.\n",
                              message_id="<q2@client.test>"), "eve@evil.test")
        send(serve, make_mail("julie@client.test", "Second problem", "Genuine.\n",
                              message_id="<q2@client.test>"), "julie@client.test")
        # A true duplicate (same sender) is still discarded.
        send(serve, make_mail("julie@client.test", "Facture en double", "Bonjour,\n",
                              message_id="<q1@client.test>"), "julie@client.test")
        processed(serve, store, 5)
        rows = store.rows("SELECT id, status, error, outcome FROM inbound ORDER BY id")
    store.close()
    print(figures("Message-ID reuse", {f"inbound {r[0]}": r[1:] for r in rows}))
    statuses = [r[1] for r in rows]
    assert statuses == ["processed", "quarantined", "processed", "quarantined", "discarded"], rows
    for row in (rows[1], rows[3]):
        assert "another sender" in row[2], row
