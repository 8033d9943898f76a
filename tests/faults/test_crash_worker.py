"""Crash safety behind the edge: the worker's and the sender's claims after a SIGKILL.

A worker claims a batch of stored mails and a sender claims a batch of outbox rows; when the
process dies, those claims must go back to the queue, and only a mail that really killed the
worker several times may be quarantined as a poison mail. The SMTP storm
(``test_crash_smtp.py``) meets these cases by chance; these tests build them on purpose.
"""

from __future__ import annotations

import smtplib
import socket
import time

import pytest

from postdesk.mail.envelope import Envelope
from postdesk.store import inbound
from postdesk.store.clock import utcnow
from tests.faults.support import (
    Serve, SilentServer, Sink, Store, dead_pid, figures, free_port, sqlite_app, wait_until,
)
from tests.helpers import make_mail

SMTP = Envelope("customer@example.com", ("support@desk.test",), "smtp", "127.0.0.1")


def test_crashes_count_against_the_mail_in_hand_not_its_batch(tmp_path):
    app = sqlite_app(tmp_path)
    intake = app.intake()
    for i in range(10):
        intake.store(make_mail(sender=f"c{i}@example.com", message_id=f"<claimed-{i}@example.com>"),
                     SMTP)
    crashes = app.settings.worker.max_attempts + 1
    for _ in range(crashes):  # a worker claims its batch, starts on it, is SIGKILLed
        holder = f"{socket.gethostname()}:{dead_pid()}:0"
        with app.db.session() as session:
            inbound.claim(session, holder, app.settings.worker.batch_size, utcnow(), postgres=False)
        app.worker().recover()  # what the restarted worker does first
    app.worker().process_until_idle()
    with app.db.reader() as session:
        statuses = inbound.counts(session)
        reasons = {r.error for r in inbound.by_status(session, inbound.QUARANTINED)}
    text = figures("claimed, never started", {"crashes": crashes, "statuses": statuses,
                                              "quarantine reasons": reasons})
    print(text)
    # The first crash counts once against the whole claimed batch; after it, a mail that was
    # claimed before is claimed alone, so the later crashes count against that one mail only
    # (the one a real crash loop would be stuck on): at most it is quarantined.
    assert statuses.get("processed", 0) >= 9 and statuses.get("quarantined", 0) <= 1, text


def test_notification_held_by_a_killed_sender_is_sent_after_restart(tmp_path):
    relay_port = free_port()
    serve = Serve(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}", f'''
[outbound]
transport = "smtp"
host = "127.0.0.1"
port = {relay_port}
timeout_seconds = 60
retry_base_seconds = 0.2
retry_max_seconds = 1
poll_seconds = 0.2
''')
    store = Store(f"sqlite:///{tmp_path / 'postdesk.db'}")
    hanging = SilentServer(relay_port)  # the relay accepts the connection and never greets
    sink = Sink(relay_port)
    try:
        serve.run("init")
        serve.start()
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=10) as smtp:
            smtp.sendmail("customer@example.com", ["support@desk.test"],
                          make_mail(sender="customer@example.com", message_id="<held@example.com>"))
        wait_until(lambda: store.scalar("SELECT count(*) FROM outbox WHERE status = 'sending'"),
                   20, "the sender to claim the acknowledgement", log=serve.log)
        serve.kill()  # dies while it holds the row
        hanging.close()
        sink.start()
        serve.start()
        started = time.monotonic()
        try:
            # The dead sender's claim is taken back as soon as the new one looks (its holder
            # is gone), not after the 10 minutes a stale claim waits: 60 s leaves room for a
            # processing child slow to start on a busy machine, and is far below those.
            wait_until(lambda: sink.mails, 60, "the acknowledgement to reach the relay")
        finally:
            row = store.rows("SELECT status, attempts, last_error FROM outbox")
            print(figures("sender killed while sending", {
                "outbox": row, "delivered": len(sink.mails),
                "seconds after restart": round(time.monotonic() - started, 1)}))
        assert len(sink.mails) == 1
    finally:
        serve.kill()
        sink.stop()
        hanging.close()
        store.close()
