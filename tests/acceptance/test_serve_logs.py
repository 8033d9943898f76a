"""What ``postdesk serve`` writes to its log: no mail address with the default
``[logging] redact_addresses = true``, and a warning at start for a configuration under which
no agent mail can ever be recognised.

The start-up warning comes from the serve process before any part starts: those tests run the
SMTP edge alone. The whole-run redaction test runs the worker and sender as threads of the one
process (``[worker] separate_process = false``); the JSON test keeps the default processing
child, so the child's own log lines are shown to be JSON and redacted too."""

from __future__ import annotations

import hashlib
import json
import re
import smtplib

import pytest

from tests.faults.support import Serve, Store, wait_until
from tests.helpers import make_mail

AGENTS = """
[[agents]]
address = "alice@acme.example"
name = "Alice"

[[agents]]
address = "bob@acme.example"
name = "Bob"
"""
TRUSTED = '[agent_auth]\ntrusted_authserv_id = "mx.desk.test"\n'
AUTH_OK = "mx.desk.test; dkim=pass header.d=acme.example; spf=pass smtp.mailfrom=alice@acme.example"
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
ONE_PROCESS = "[worker]\nseparate_process = false\n"
EDGE_ONLY = ("--no-worker", "--no-sender", "--no-scheduler")


def sha8(address: str) -> str:
    return "addr:" + hashlib.sha256(address.encode()).hexdigest()[:8]


def send(port: int, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(sender, ["support@desk.test"], raw)


@pytest.mark.timeout(180)
def test_a_whole_serve_run_logs_no_address(tmp_path):
    url = f"sqlite:///{tmp_path / 'postdesk.db'}"
    serve = Serve(tmp_path, url, TRUSTED + AGENTS + ONE_PROCESS)
    serve.run("init")
    store = Store(url)
    try:
        serve.start()
        send(serve.port, make_mail("carol@customer.example", "Cannot log in",
                                   message_id="<q1@customer.example>"), "carol@customer.example")
        wait_until(lambda: store.scalar("SELECT count(*) FROM ticket"), 60, "ticket 1",
                   log=serve.log)
        reply = make_mail("alice@acme.example", "Re: [#1] Cannot log in",
                          "#cc add alice2@example.com\n#assign bob@acme.example\n\nOn it.\n",
                          headers={"Authentication-Results": AUTH_OK})
        send(serve.port, reply, "alice@acme.example")
        spoof = make_mail("bob@acme.example", "Re: [#1] Cannot log in", "#status closed\n")
        send(serve.port, spoof, "mallory@evil.example")
        wait_until(lambda: store.scalar("SELECT count(*) FROM inbound WHERE status "
                                        "IN ('received', 'processing')") == 0
                   and store.scalar("SELECT count(*) FROM inbound") == 3, 60,
                   "three mails processed", log=serve.log)
        wait_until(lambda: "claims agent" in serve.log_text(), 30, "the spoof warning",
                   log=serve.log)
    finally:
        assert serve.stop() == 0
        store.close()
    log = serve.log_text()
    assert f"assigned to {sha8('bob@acme.example')}" in log  # the outcome still says what
    assert f"claims agent {sha8('bob@acme.example')}" in log
    leaked = [m for m in ADDRESS.findall(log) if not _is_message_id(log, m)]
    assert leaked == [], log[-4000:]


def _is_message_id(log: str, found: str) -> bool:
    return re.search(r"message_id=<[^>\s]*" + re.escape(found), log) is not None


@pytest.mark.timeout(120)
def test_serve_warns_when_no_agent_mail_can_be_recognised(tmp_path):
    serve = Serve(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}", AGENTS)
    serve.run("init")
    serve.start(*EDGE_ONLY)
    assert serve.stop() == 0
    assert re.search(r"WARNING .*trusted_authserv_id", serve.log_text()), serve.log_text()


@pytest.mark.timeout(120)
def test_serve_does_not_warn_when_agents_can_be_recognised(tmp_path):
    serve = Serve(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}", TRUSTED + AGENTS)
    serve.run("init")
    serve.start(*EDGE_ONLY)
    assert serve.stop() == 0
    assert "trusted_authserv_id" not in serve.log_text()


@pytest.mark.timeout(180)
def test_json_logs_are_one_object_a_line_with_the_mails_ticket_and_inbound(tmp_path):
    url = f"sqlite:///{tmp_path / 'postdesk.db'}"
    serve = Serve(tmp_path, url, '[logging]\nformat = "json"\n')
    serve.run("init")
    store = Store(url)
    try:
        serve.start()
        send(serve.port, make_mail("carol@customer.example", "Cannot log in",
                                   message_id="<j1@customer.example>"), "carol@customer.example")
        wait_until(lambda: "processed inbound=" in serve.log_text()
                   and "sent outbox=" in serve.log_text(), 60, "the mail processed, the "
                   "acknowledgement sent", log=serve.log)
        ticket, inbound = store.rows("SELECT ticket_id, id FROM inbound")[0]
    finally:
        assert serve.stop() == 0
        store.close()
    lines = [line for line in serve.log_text().splitlines()
             if line.strip() and not line.startswith("=== start")]
    entries = [json.loads(line) for line in lines]  # every line parses
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    processed = [e for e in entries if e["message"].startswith("processed inbound=")]
    assert [(e["ticket"], e["inbound"]) for e in processed] == [(ticket, inbound)]
    accepted = [e for e in entries if e["message"].startswith("accepted raw mail")]
    assert [e["inbound"] for e in accepted] == [inbound]
    sent = [e for e in entries if e["message"].startswith("sent outbox=")]
    assert sent and all(e["ticket"] == ticket for e in sent)
    assert "carol@customer.example" not in serve.log_text()
