"""An agent desk as its users see it: mail taken as from SMTP, the tickets read with ``postdesk
tickets show --json``, the outbox with ``postdesk outbox list --json`` and the delivered mails
from the outbound Maildir. One test runs it all through a real ``postdesk serve`` with smtplib;
the others work the mail in-process (``LocalDesk``: serve's intake, worker and sender without
the server's start-up), as what they check is the desk's, not the server's.

Covers what an agent and a customer notice: a closed ticket stays closed (an agent's mail on
it is refused with ``command_error`` and kept), the error mail names the line number and the
line, a new ticket's subject loses ``RE: TR:``, a queue move is announced as a move, the agent
mails list ``#cc``, the signature is not doubled, and resolving sends the customer one mail.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import smtplib
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import write_config
from tests.faults.support import Store, serving, wait_until
from tests.helpers import LocalDesk, make_mail, outbound_mails

pytestmark = pytest.mark.timeout(300)

DESK = """
[agent_auth]
trusted_authserv_id = "mx.desk.test"

[[agents]]
address = "alice@desk-team.test"
name = "Alice"
queues = ["default"]

[[agents]]
address = "bob@desk-team.test"
name = "Bob"
queues = ["tech"]

[[queues]]
name = "tech"
keywords = ["api"]
notify = ["bob@desk-team.test"]
"""
AUTH = "mx.desk.test; dkim=pass header.d=desk-team.test; spf=pass smtp.mailfrom={addr}"
ALICE = "alice@desk-team.test"


@pytest.fixture
def desk(tmp_path, sqlite_url):
    desk = LocalDesk(write_config(tmp_path, sqlite_url, DESK))
    yield desk
    desk.close()


@pytest.fixture
def served(tmp_path, sqlite_url):
    with serving(tmp_path, sqlite_url, DESK) as serve:
        yield serve


def send(desk, raw: bytes, sender: str) -> None:
    if isinstance(desk, LocalDesk):
        desk.send(raw, sender)
        return
    with smtplib.SMTP("127.0.0.1", desk.port, timeout=30) as smtp:
        smtp.sendmail(sender, ["support@desk.test"], raw)


def from_agent(desk, body: str, subject: str = "Re: [#1] Imprimante en panne") -> None:
    send(desk, make_mail(ALICE, subject, body, name="Alice",
                         headers={"Authentication-Results": AUTH.format(addr=ALICE)}), ALICE)


def show(desk, ticket: int) -> dict | None:
    result = desk.run("tickets", "show", str(ticket), "--json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def outbox(desk) -> list[dict]:
    return sorted(json.loads(desk.run("outbox", "list", "--json").stdout), key=lambda r: r["id"])


def at_least(count: int, found: list) -> list | None:
    return found if len(found) >= count else None


def wait_outbox(desk, count: int) -> list[dict]:
    return wait_until(lambda: at_least(count, outbox(desk)), 90, f"{count} queued mails",
                      every=0.3, log=desk.log)


def delivered(desk, count: int) -> list[email.message.EmailMessage]:
    folder = desk.folder / "outbound"
    return wait_until(lambda: at_least(count, outbound_mails(folder)), 90,
                      f"{count} delivered mails", every=0.3, log=desk.log)


def body(mail: email.message.EmailMessage, kind: str = "plain") -> str:
    return mail.get_body((kind,)).get_content()


def events_of(doc: dict) -> list[str]:
    return [e["kind"] for e in doc["events"]]


def test_a_closed_ticket_stays_closed_and_the_agent_is_told(desk):
    send(desk, make_mail("julie@client.test", "Imprimante en panne", "Elle ne démarre plus.\n"),
         "julie@client.test")
    wait_outbox(desk, 2)  # ticket_created, agent_new_ticket
    from_agent(desk, "#status closed\n")
    wait_until(lambda: (show(desk, 1) or {}).get("status") == "closed", 90, "closed",
               log=desk.log)
    before = len(outbox(desk))

    from_agent(desk, "Bonjour Julie, une dernière précision.\n")
    rows = wait_outbox(desk, before + 1)
    [refusal] = rows[before:]
    assert refusal["template"] == "command_error" and refusal["rcpts"] == [ALICE]
    doc = show(desk, 1)
    assert doc["status"] == "closed"
    assert any(m["kind"] == "note" and "dernière précision" in m["text"] for m in doc["messages"])
    [event] = [e for e in doc["events"] if e["kind"] == "command_error"]
    assert event["data"]["errors"][0]["problem"] == "not_allowed"

    from_agent(desk, "#status open\n")
    rows = wait_outbox(desk, before + 2)
    assert [r["template"] for r in rows[before:]] == ["command_error", "command_error"]
    assert show(desk, 1)["status"] == "closed"
    assert all("julie@client.test" not in r["rcpts"] for r in rows[before:])

    mails = delivered(desk, before + 2)
    last = [m for m in mails if m["To"] == ALICE and "#status open" in body(m)]
    assert last, "the refusal quotes the refused line"
    text = body(last[0])
    assert "#1" in text and "#status open" in text


def test_command_error_names_the_line_number_and_the_line(desk):
    send(desk, make_mail("julie@client.test", "Imprimante en panne", "Elle ne démarre plus.\n"),
         "julie@client.test")
    wait_outbox(desk, 2)
    from_agent(desk, "#priority high\n\n#status waiting\nMerci.\n")
    rows = wait_outbox(desk, 3)
    assert rows[-1]["template"] == "command_error"
    [error] = [e for e in show(desk, 1)["events"] if e["kind"] == "command_error"]
    assert error["data"]["errors"] == [{"line": 3, "command": "#status waiting",
                                        "problem": "invalid_value",
                                        "allowed": ["open", "pending", "resolved", "closed"]}]
    mail = [m for m in delivered(desk, 3) if m["To"] == ALICE and "#status" in body(m)][-1]
    assert re.search(r"Line 3 ?: #status waiting", body(mail)) or re.search(r"Ligne 3 ?: #status waiting", body(mail))
    assert "Line #status" not in body(mail) and "Ligne #status" not in body(mail)
    assert "#status waiting" in body(mail, "html")


def test_new_ticket_subject_loses_reply_prefixes(desk):
    send(desk, make_mail("julie@client.test", "RE: TR: Imprimante en panne",
                         "Toujours en panne.\n"), "julie@client.test")
    doc = wait_until(lambda: show(desk, 1), 90, "ticket #1", log=desk.log)
    assert doc["subject"] == "Imprimante en panne"
    assert doc["messages"][0]["subject"] == "RE: TR: Imprimante en panne"
    send(desk, make_mail("marc@client.test", "Re : AW: Fwd: fwd: Réf. : Commande 42", "?\n"),
         "marc@client.test")
    doc = wait_until(lambda: show(desk, 2), 90, "ticket #2", log=desk.log)
    assert doc["subject"] == "Commande 42"


def test_agent_mails_resolving_and_moving(served):
    desk = served
    send(desk, make_mail("julie@client.test", "Imprimante en panne", "Elle ne démarre plus.\n"),
         "julie@client.test")
    rows = wait_outbox(desk, 2)
    mails = delivered(desk, 2)
    [notice] = [m for m in mails if m["To"] == ALICE]
    assert "#cc" in body(notice) and "#cc" in body(notice, "html")

    from_agent(desk, "#queue tech\n")
    rows = wait_outbox(desk, 3)
    assert rows[-1]["template"] == "agent_ticket_moved" and rows[-1]["rcpts"] == ["bob@desk-team.test"]
    moved = [m for m in delivered(desk, 3) if m["To"] == "bob@desk-team.test"][0]
    assert "tech" in body(moved) and "Nouveau ticket" not in moved["Subject"]
    assert "New ticket" not in moved["Subject"]

    from_agent(desk, "#status resolved\n\nBonjour Julie,\nLe pilote est réinstallé.\n\n"
                     "Alice\n")
    rows = wait_outbox(desk, 4)
    desk.run("scheduler", "--once")  # the survey's turn comes later than the resolution's
    rows = outbox(desk)
    to_customer = [r["template"] for r in rows[3:] if "julie@client.test" in r["rcpts"]]
    assert to_customer == ["agent_reply"]
    reply = [m for m in delivered(desk, 4) if m["To"] == "julie@client.test"][-1]
    text = body(reply)
    assert "réinstallé" in text and text.count("Alice") == 1
    assert "Alice" in reply["From"]
    assert show(desk, 1)["status"] == "resolved"


def test_auto_resolution_is_auto_generated(desk, sqlite_url):
    desk_url = sqlite_url
    send(desk, make_mail("julie@client.test", "Imprimante en panne", "Elle ne démarre plus.\n"),
         "julie@client.test")
    wait_outbox(desk, 2)
    from_agent(desk, "Pouvez-vous redémarrer ?\n")
    wait_until(lambda: (show(desk, 1) or {}).get("status") == "pending", 90, "pending",
               log=desk.log)
    later = (datetime.now(timezone.utc) + timedelta(days=11)).isoformat(timespec="seconds")
    desk.run("scheduler", "--once", "--now", later)
    assert show(desk, 1)["status"] == "resolved"
    # queued for "11 days later": read the finished mail where the sender will take it
    store = Store(desk_url)
    try:
        [raw] = [r[0] for r in store.rows("SELECT raw FROM outbox WHERE template = 'auto_resolved'")]
    finally:
        store.close()
    resolved = email.message_from_bytes(raw, policy=email.policy.default)
    assert resolved["To"] == "julie@client.test"
    assert resolved["Auto-Submitted"] == "auto-generated"
