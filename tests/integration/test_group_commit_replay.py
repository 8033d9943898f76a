"""Review of the worker's group without a savepoint per mail: when a mail of the group fails,
the group is rolled back and its earlier mails run again. What those mails counted or logged
while their first run was rolled back must not be counted or logged twice."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from postdesk.gateway import steps
from postdesk.mail.envelope import Envelope
from postdesk.store import inbound
from tests.helpers import make_mail

SMTP = Envelope("x@example.com", ("support@desk.test",), "smtp", "127.0.0.1")
DESK = """
[worker]
commit_interval_seconds = 60

[agent_auth]
trusted_authserv_id = "mx.desk.test"

[[agents]]
address = "alice@desk-team.test"
name = "Alice"
"""


def spoofing_count() -> float:
    return REGISTRY.get_sample_value("postdesk_agent_spoofing_attempts_total") or 0.0


def processed_count(outcome: str) -> float:
    return REGISTRY.get_sample_value("postdesk_mails_processed_total",
                                     {"outcome": outcome}) or 0.0


def test_a_replayed_mail_counts_and_logs_its_spoofing_attempt_once(make_app, monkeypatch,
                                                                    caplog):
    app = make_app(DESK)
    forged = make_mail("alice@desk-team.test", "Hello", "#status resolved\n",
                       message_id="<forged@example.com>")
    failing = make_mail("carol@example.com", "Boom", "x", message_id="<boom@example.com>")
    app.intake().store_many([(forged, SMTP), (failing, SMTP)])
    original = steps.REGISTRY["record"]

    def record(ctx):
        if ctx.mail.message_id == "<boom@example.com>":
            raise RuntimeError("boom")
        original(ctx)

    monkeypatch.setitem(steps.REGISTRY, "record", record)
    before = spoofing_count()
    outcomes = {o: processed_count(o) for o in ("ticket", "quarantined")}
    with caplog.at_level(logging.INFO):
        assert app.worker().process_batch() == 2
    with app.db.reader() as session:
        assert inbound.counts(session) == {"processed": 1, "quarantined": 1}
    assert spoofing_count() == before + 1
    claims = [r for r in caplog.records
              if r.name == "postdesk.pipeline" and "without proof" in r.getMessage()]
    assert len(claims) == 1, [r.getMessage() for r in claims]
    processed = [r for r in caplog.records if r.getMessage().startswith("processed inbound=")]
    assert len(processed) == 1
    assert {o: processed_count(o) - n for o, n in outcomes.items()} == {"ticket": 1,
                                                                       "quarantined": 1}
