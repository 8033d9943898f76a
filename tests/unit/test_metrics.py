"""The pieces of ``/metrics`` and ``/healthz``: the store collector on a real store (SQLite and
PostgreSQL), the part gauges fed by supervision, the health answers, the bounded labels."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY
from wsgiref.util import setup_testing_defaults

from postdesk import metrics
from postdesk.gateway.worker import outcome_of
from postdesk.mail.envelope import Envelope
from postdesk.runtime.metrics_http import Health, HealthApp, StoreCollector, dead_parts
from postdesk.store.gauges import StoreGauges
from postdesk.supervision import Supervised
from tests.helpers import make_mail

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def values(families) -> dict[tuple, float]:
    return {(s.name, *s.labels.values()): s.value for f in families for s in f.samples}


def test_the_store_figures_become_gauges():
    found = StoreGauges(inbound={"received": 3, "processing": 1}, quarantined=2,
                        oldest_inbound=NOW - timedelta(seconds=90),
                        outbox={"queued": 4, "sending": 0, "failed": 1},
                        oldest_queued=NOW - timedelta(minutes=5))
    got = values(StoreCollector.families(found, NOW))
    assert got == {
        ("postdesk_inbound_queue_depth", "received"): 3,
        ("postdesk_inbound_queue_depth", "processing"): 1,
        ("postdesk_inbound_oldest_age_seconds",): 90,
        ("postdesk_quarantine_size",): 2,
        ("postdesk_outbox_depth", "queued"): 4,
        ("postdesk_outbox_depth", "sending"): 0,
        ("postdesk_outbox_depth", "failed"): 1,
        ("postdesk_outbox_oldest_queued_age_seconds",): 300,
    }


def test_nothing_waiting_is_an_age_of_zero():
    got = values(StoreCollector.families(StoreGauges(), NOW))
    assert got[("postdesk_inbound_oldest_age_seconds",)] == 0
    assert got[("postdesk_outbox_oldest_queued_age_seconds",)] == 0


def test_the_collector_reads_the_store(make_app):
    app = make_app()
    intake = app.intake()
    intake.store(make_mail(message_id="<g1@example.com>"), Envelope("a@example.com",
                                                                    ("support@desk.test",)))
    intake.store(make_mail(message_id="<g2@example.com>"), Envelope("b@example.com",
                                                                    ("support@desk.test",)))
    later = datetime.now(UTC) + timedelta(hours=1)
    got = values(StoreCollector(app.db, clock=lambda: later).collect())
    assert got[("postdesk_store_up",)] == 1
    assert got[("postdesk_inbound_queue_depth", "received")] == 2
    assert 3500 < got[("postdesk_inbound_oldest_age_seconds",)] < 3700
    assert got[("postdesk_outbox_depth", "queued")] == 0


def test_a_store_that_does_not_answer_is_store_up_zero():
    class Down:
        def reader(self):
            raise OSError("connection refused")

    assert values(StoreCollector(Down()).collect()) == {("postdesk_store_up",): 0}


def test_a_supervised_part_is_down_while_it_waits_to_restart():
    name = "test-part-gauge"
    die, stop = threading.Event(), threading.Event()

    def body():
        die.wait(30)
        raise RuntimeError("boom")

    def state_becomes(state: str) -> None:
        for _ in range(3000):
            if part.state == state:
                return
            stop.wait(0.01)
        raise AssertionError(f"{name} never became {state}")

    up = lambda: REGISTRY.get_sample_value("postdesk_part_up", {"part": name})  # noqa: E731
    part = Supervised(name, body, stopping=stop.is_set, pause=(60, 60))
    part.start()
    state_becomes("running")
    assert up() == 1
    die.set()
    state_becomes("restarting")
    assert up() == 0
    stop.set()
    part.join(10)
    assert part.state == "stopped" and up() == 1  # asked to stop: not a dead part


def test_dead_parts_are_named_with_their_process_while_it_runs():
    """A part at 0 is named with its process; once that process has ended (here a child that
    exited and was reaped) its samples name nothing: the process is named by ``serve``."""
    sample = lambda part, value, **more: SimpleNamespace(  # noqa: E731
        labels={"part": part, **more}, value=value)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    here = str(os.getpid())
    assert dead_parts([sample("worker", 0, pid=here), sample("sender", 1, pid=here),
                       sample("scheduler", 0), sample("scheduler", 0, pid=ended)]) == [
        "scheduler", f"worker (pid {here})"]


@pytest.mark.parametrize(("reply", "counted"), [
    ("550 5.1.1 <x@y>: no such mailbox here", "550"), ("451 4.3.0 try later", "451"),
    ("250 2.0.0 queued as 12", None), ("354 go ahead", None), ("junk", None), ("", None)])
def test_only_refusals_are_counted_by_their_code(reply, counted):
    before = REGISTRY.get_sample_value("postdesk_smtp_refused_total", {"code": counted or ""})
    metrics.refused(reply)
    after = REGISTRY.get_sample_value("postdesk_smtp_refused_total", {"code": counted or ""})
    if counted:
        assert (after or 0) - (before or 0) == 1
    else:
        assert after is None


@pytest.mark.parametrize(("source", "edge"), [
    ("smtp", "smtp"), ("lmtp", "lmtp"), ("imap:support/INBOX", "imap"), ("ingest", "ingest"),
    ("", "unknown")])
def test_the_edge_label_never_holds_a_mailbox(source, edge):
    assert metrics.edge_of(source) == edge


@pytest.mark.parametrize(("fields", "outcome"), [
    ({"automatic": "Auto-Submitted: auto-replied"}, "automatic"),
    ({"decision": SimpleNamespace(action="new"), "ticket": object()}, "ticket"),
    ({"decision": SimpleNamespace(action="append"), "ticket": object()}, "reply"),
    ({"decision": None, "ticket": None}, "reply"),  # a command answered in full
])
def test_a_processed_mail_counts_by_what_it_was(fields, outcome):
    ctx = SimpleNamespace(**{"automatic": None, "decision": None, "ticket": None, **fields})
    assert outcome_of(ctx) == outcome


def call(app, path: str, method: str = "GET") -> tuple[str, bytes]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method}
    setup_testing_defaults(environ)
    answer = {}
    body = b"".join(app(environ, lambda status, headers: answer.update(status=status)))
    return answer["status"], body


def test_health_answers_name_what_is_dead(monkeypatch):
    health = Health(db=None)
    health.add("smtp", lambda: True)
    health.add("processing", lambda: False)
    monkeypatch.setattr("postdesk.runtime.metrics_http.part_samples", lambda: [
        SimpleNamespace(labels={"part": "worker", "pid": "7"}, value=0)])
    monkeypatch.setattr(health, "not_ready", lambda: "the store does not answer: refused")
    app = HealthApp(health, REGISTRY)
    assert call(app, "/healthz") == ("503 Service Unavailable",
                                     b"dead: processing, worker (pid 7)\n")
    assert call(app, "/readyz") == ("503 Service Unavailable",
                                    b"the store does not answer: refused\n")
    assert call(app, "/metrics", "POST")[0] == "405 Method Not Allowed"
    assert call(app, "/admin")[0] == "404 Not Found"
    status, body = call(app, "/metrics")
    assert status.startswith("200") and b"postdesk_part_up" in body


def test_the_metrics_are_created_once_whichever_threads_count_first(monkeypatch):
    """Parts start in several threads at once: a second registration would raise
    DuplicateTimeseries in the part that came second (it killed a sender)."""
    monkeypatch.setattr(metrics, "_created", [])
    created, start = [], threading.Barrier(8)

    def create():
        created.append(1)
        start.abort()  # lets the others through while this one is still creating
        return SimpleNamespace(made=len(created))

    monkeypatch.setattr(metrics, "_create", create)

    def count():
        try:
            start.wait(10)
        except threading.BrokenBarrierError:
            pass
        metrics.families()

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert created == [1] and metrics.families().made == 1


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0


def test_mail_through_the_worker_moves_the_counters(make_app):
    """In one process (no shared folder): received, processed by outcome, duration, template
    fallbacks."""
    from postdesk.store import template_versions as versions
    from postdesk.store.clock import utcnow

    app = make_app()
    with app.db.session() as session:  # stored without validation, as an old version could be
        for locale in ("fr", "en"):
            versions.save_parts(session, "ticket_created", locale,
                                {"text": "Bonjour {{ customer.nope }}\n"}, "old", "broken",
                                utcnow())
    names = ("postdesk_mails_received_total", "postdesk_mails_processed_total",
             "postdesk_template_fallbacks_total", "postdesk_processing_duration_seconds_count")
    labels = ({"edge": "smtp"}, {"outcome": "ticket"}, {"template": "ticket_created"}, {})
    before = [counted(n, **l) for n, l in zip(names, labels)]
    mail = make_mail(message_id="<flow@example.com>")
    app.intake().store(mail, Envelope("julie@example.com", ("support@desk.test",), "smtp"))
    app.intake().store(mail, Envelope("julie@example.com", ("support@desk.test",), "smtp"))
    app.worker().process_until_idle()
    after = [counted(n, **l) for n, l in zip(names, labels)]
    assert [a - b for a, b in zip(after, before)] == [2, 1, 1, 2]
    assert counted("postdesk_mails_processed_total", outcome="duplicate") >= 1


def test_metrics_listen_is_off_by_default_and_checked_when_set(tmp_path):
    from postdesk import config
    from postdesk.errors import ConfigError
    from tests.conftest import write_config

    path = write_config(tmp_path, "sqlite:///x.db")
    assert config.load(path, environ={}).metrics.listen == ""
    on = config.load(path, environ={"POSTDESK_METRICS__LISTEN": "127.0.0.1:9325"})
    assert on.metrics.listen == "127.0.0.1:9325"
    with pytest.raises(ConfigError, match=r"metrics\.listen.*is not HOST:PORT"):
        config.load(path, environ={"POSTDESK_METRICS__LISTEN": "9325"})
