"""A worker's loop that died while it held claims is started again by its supervisor, and
gives those claims back first: the mails are processed at once, not after the claim timeout.
A store outage while it starts is waited out, not counted as a death."""

from __future__ import annotations

import threading
import time

from sqlalchemy.exc import OperationalError

from postdesk.mail.envelope import Envelope
from postdesk.store import inbound
from postdesk.store.clock import utcnow
from postdesk.supervision import Supervised
from tests.helpers import make_mail

SMTP = Envelope("c@firm.example", ("support@desk.test",), "smtp")


def statuses(app) -> dict[str, int]:
    with app.db.reader() as session:
        return inbound.counts(session)


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def test_a_restarted_worker_gives_back_what_it_held_when_it_died(make_app):
    app = make_app("[worker]\nclaim_timeout_seconds = 3600\npoll_seconds = 0.1\n")
    app.intake().store_many([(make_mail(sender=f"c{i}@firm.example", subject=f"Request {i}"),
                              SMTP) for i in range(3)])
    worker = app.worker()
    with app.db.session() as session:  # its loop claimed these, then died
        inbound.claim(session, worker.holder, 2, utcnow(), postgres=not app.db.is_sqlite)
    stop, wake = threading.Event(), threading.Event()
    part = Supervised("worker", lambda: worker.run(stop, wake), stopping=stop.is_set)
    part.start()
    try:
        wait_for(lambda: statuses(app).get("processed") == 3)
    finally:
        stop.set()
        part.join(30)
    assert part.restarts == 0


def test_a_store_outage_at_start_is_waited_out(make_app, monkeypatch):
    from postdesk.gateway import worker as worker_module

    monkeypatch.setattr(worker_module, "RETRY_PAUSE_SECONDS", 0.01)  # not 2 s
    app = make_app("[worker]\npoll_seconds = 0.1\n")
    app.intake().store(make_mail(), SMTP)
    worker = app.worker()
    recover, calls = worker.recover, []

    def flaky_recover():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return recover()

    monkeypatch.setattr(worker, "recover", flaky_recover)
    stop, wake = threading.Event(), threading.Event()
    part = Supervised("worker", lambda: worker.run(stop, wake), stopping=stop.is_set)
    part.start()
    try:
        wait_for(lambda: statuses(app).get("processed") == 1)
    finally:
        stop.set()
        part.join(30)
    assert len(calls) == 2 and part.restarts == 0
