"""The sweeps over a real store (SQLite and PostgreSQL), driven by ``run_sweeps(now=...)``.

One ticket walks seed 002's timeline (reminders at J+2 and J+5, resolved at J+10, surveyed in
the same run because ``[survey] delay`` is 0, closed after the reopen window); a customer's
reply stops the reminders; survey answers are recorded; a dry run lists exactly what the real
run then does; two scheduler processes sweeping the same due tickets at once send each reminder
once, and a scheduler killed mid-sweep loses and repeats nothing (the race prints its figures:
run pytest with ``-s`` to see them).
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from postdesk import config
from postdesk.desk import surveys, transitions
from postdesk.mail.envelope import Envelope
from postdesk.runtime.app import App
from postdesk.scheduler import daemon
from postdesk.scheduler.sweeps import run_sweeps
from postdesk.store import outbox, tickets
from postdesk.store.clock import utcnow
from postdesk.store.models import Outbox, Ticket
from postdesk.templates.filters import format_date
from tests.conftest import _truncate, write_config
from tests.helpers import make_mail

REVIEW = '[survey]\ndelay = 0\nreview_address = "quality@desk.test"\n'
SMTP = Envelope("alice@example.com", ("support@desk.test",), "smtp", "127.0.0.1")
DAY = timedelta(days=1)


def deliver(app, raw: bytes) -> None:
    app.intake().store(raw, SMTP)
    app.worker().process_until_idle()


def outbox_mails(app, template: str | None = None) -> list:
    with app.db.reader() as session:
        rows = sorted(outbox.listing(session, limit=10_000), key=lambda r: r.id)
    return [(r.template, email.message_from_bytes(r.raw, policy=email.policy.default))
            for r in rows if template in (None, r.template)]


def text_of(mail) -> str:
    return mail.get_body(("plain",)).get_content()


def ticket(app, ticket_id: int = 1) -> Ticket:
    with app.db.reader() as session:
        return tickets.get(session, ticket_id)


def event_kinds(app, ticket_id: int = 1) -> list[str]:
    with app.db.reader() as session:
        return [e.kind for e in tickets.events(session, ticket_id)]


def kinds(actions) -> list[tuple[int, str]]:
    return [(a.ticket_id, a.kind) for a in actions]


def pending_ticket(app, at=None):
    """Ticket #1 from a real mail, set pending (an agent asked a question) at ``at``."""
    deliver(app, make_mail(subject="Export des réservations impossible", name="Julie Moreau",
                           body="Bonjour, l'export des réservations affiche une erreur.\n"))
    at = at or utcnow()
    with app.db.session() as session:
        transitions.set_pending(session, app.desk, tickets.get(session, 1), at, actor="agent")
    return at


def test_pending_ticket_follows_seed_002_timeline(make_app):
    app = make_app(REVIEW)
    t0 = pending_ticket(app)
    assert run_sweeps(app.db, app.desk, t0 + DAY) == []
    assert kinds(run_sweeps(app.db, app.desk, t0 + 2 * DAY)) == [(1, "reminder 1")]
    [(_, first)] = outbox_mails(app, "pending_reminder")
    assert "1/2" in first["Subject"] and "[#1]" in first["Subject"]
    assert format_date(t0 + 10 * DAY, ticket(app).locale) in text_of(first)
    assert run_sweeps(app.db, app.desk, t0 + 2 * DAY + timedelta(hours=1)) == []
    assert kinds(run_sweeps(app.db, app.desk, t0 + 5 * DAY)) == [(1, "reminder 2")]
    assert "2/2" in outbox_mails(app, "pending_reminder")[1][1]["Subject"]
    assert ticket(app).reminders_sent == 2
    done = run_sweeps(app.db, app.desk, t0 + 10 * DAY)
    assert kinds(done) == [(1, "resolve no_response"), (1, "survey")]  # same run (delay 0)
    resolved = ticket(app)
    assert (resolved.status, resolved.resolution) == ("resolved", "no_response")
    assert resolved.survey_due_at is None and resolved.next_due_at is None
    [(_, survey_mail)] = outbox_mails(app, "survey_request")
    assert len(outbox_mails(app, "auto_resolved")) == 1
    with app.db.reader() as session:
        survey = surveys.survey_for(session, 1)
    assert survey.message_id == survey_mail["Message-ID"] == done[1].message_id
    assert (survey.scale, survey.answers) == ("1-7", 0)
    assert run_sweeps(app.db, app.desk, t0 + 16 * DAY) == []
    assert kinds(run_sweeps(app.db, app.desk, t0 + 17 * DAY)) == [(1, "close")]
    assert ticket(app).status == "closed"
    assert event_kinds(app).count("reminder_sent") == 2 and "survey_sent" in event_kinds(app)


def answer(app, text: str, now) -> str:
    with app.db.session() as session:
        current = tickets.get(session, 1)
        survey = surveys.survey_for(session, 1)
        parsed = surveys.parse_for(survey, text, app.desk)
        return surveys.record_answer(session, app.desk, current, parsed, now, message_id=None)


def resolved_and_surveyed(app):
    t0 = pending_ticket(app)
    with app.db.session() as session:
        transitions.resolve(session, app.desk, tickets.get(session, 1), t0, resolution="agent")
    assert kinds(run_sweeps(app.db, app.desk, t0)) == [(1, "survey")]
    return t0


def test_satisfied_answer_is_recorded_and_thanked(make_app):
    app = make_app(REVIEW)
    t0 = resolved_and_surveyed(app)
    outcome = answer(app, "6, merci pour votre aide", t0 + DAY)
    assert outcome == "survey answer on #1: 6/7, satisfied"
    with app.db.reader() as session:
        survey = surveys.survey_for(session, 1)
    assert (survey.score, survey.satisfied, survey.comment) == (6, True, "merci pour votre aide")
    assert survey.answers == 1 and survey.answered_at is not None
    assert len(outbox_mails(app, "survey_thanks")) == 1
    assert outbox_mails(app, "survey_review_alert") == []
    assert "survey_answered" in event_kinds(app)


def test_low_score_goes_to_review_and_the_last_answer_counts(make_app):
    app = make_app(REVIEW)
    t0 = resolved_and_surveyed(app)
    answer(app, "7", t0 + DAY)
    outcome = answer(app, "Note : 3/7 — trop lent, trois relances", t0 + 2 * DAY)
    assert outcome.endswith("3/7, not satisfied; flagged for review")
    [(_, alert)] = outbox_mails(app, "survey_review_alert")
    assert alert["To"] == "quality@desk.test"
    assert "trop lent, trois relances" in text_of(alert)
    with app.db.reader() as session:
        survey = surveys.survey_for(session, 1)
    assert (survey.score, survey.satisfied, survey.answers) == (3, False, 2)
    assert "survey_low_score" in event_kinds(app)
    late = answer(app, "1", t0 + 29 * DAY)
    assert "not counted" in late
    with app.db.reader() as session:
        assert surveys.survey_for(session, 1).score == 3


def test_good_bad_scale_without_review_address(make_app):
    app = make_app('[survey]\ndelay = 0\nscale = "good-bad"\n')
    t0 = resolved_and_surveyed(app)
    assert "Bonne" in text_of(outbox_mails(app, "survey_request")[0][1])
    outcome = answer(app, "Mauvaise, je suis mécontent(e)\nPersonne n'a rappelé.", t0 + DAY)
    assert outcome.endswith("bad, not satisfied; flagged for review (no [survey] "
                            "review_address: event only)")
    assert outbox_mails(app, "survey_review_alert") == []
    assert "survey_low_score" in event_kinds(app)


def test_customer_reply_stops_the_reminders(make_app):
    app = make_app()
    t0 = pending_ticket(app)
    assert kinds(run_sweeps(app.db, app.desk, t0 + 2 * DAY)) == [(1, "reminder 1")]
    [(_, reminder)] = outbox_mails(app, "pending_reminder")
    deliver(app, make_mail(subject=f"Re: {reminder['Subject']}", body="Voici la capture.\n",
                           in_reply_to=reminder["Message-ID"]))
    assert ticket(app).status == "open" and ticket(app).next_due_at is None
    assert run_sweeps(app.db, app.desk, t0 + 5 * DAY) == []
    assert run_sweeps(app.db, app.desk, t0 + 10 * DAY) == []
    assert ticket(app).status == "open"


def test_reopened_ticket_is_neither_closed_nor_surveyed(make_app):
    app = make_app()
    t0 = pending_ticket(app)
    with app.db.session() as session:
        current = tickets.get(session, 1)
        transitions.resolve(session, app.desk, current, t0, resolution="agent")
        transitions.set_open(session, current, t0 + DAY, kind="reopened")
    assert run_sweeps(app.db, app.desk, t0 + 30 * DAY) == []
    assert ticket(app).status == "open"


def several_due_tickets(app, now):
    """#1 reminder due, #2 resolution due, #3 resolved long ago, #4 not due yet."""
    for n, start in enumerate((now - 2 * DAY, now - 11 * DAY, now - 9 * DAY, now), start=1):
        deliver(app, make_mail(f"client{n}@example.com", subject=f"Problème {n}"))
        with app.db.session() as session:
            current = tickets.get(session, n)
            transitions.set_pending(session, app.desk, current, start)
            if n == 3:
                transitions.resolve(session, app.desk, current, start, resolution="agent")


def snapshot(app) -> tuple:
    with app.db.reader() as session:
        rows = session.execute(select(Ticket.id, Ticket.status, Ticket.reminders_sent,
                                      Ticket.next_due_at, Ticket.survey_due_at)).all()
        count = session.scalar(select(func.count()).select_from(Outbox))
    return sorted(tuple(r) for r in rows), count


def test_dry_run_lists_exactly_what_the_run_does(make_app):
    app = make_app("[survey]\ndelay = 0\n")
    now = utcnow()
    several_due_tickets(app, now)
    before = snapshot(app)
    dry = run_sweeps(app.db, app.desk, now, dry_run=True)
    assert snapshot(app) == before
    real = run_sweeps(app.db, app.desk, now)
    assert dry == real and [a.line for a in dry] == [a.line for a in real]
    assert kinds(real) == [(1, "reminder 1"), (2, "resolve no_response"), (3, "close"),
                           (2, "survey"), (3, "survey")]
    assert snapshot(app) != before
    assert run_sweeps(app.db, app.desk, now, dry_run=True) == []


def test_a_failing_ticket_is_reported_and_stays_due(make_app, monkeypatch):
    app = make_app()
    now = utcnow()
    several_due_tickets(app, now)
    notify = app.desk.notifier.notify

    def broken(session, when, current, key, *args, **kwargs):
        if key == "pending_reminder":
            raise RuntimeError("template store on fire")
        return notify(session, when, current, key, *args, **kwargs)

    monkeypatch.setattr(app.desk.notifier, "notify", broken)
    first = run_sweeps(app.db, app.desk, now)
    assert kinds(first)[0] == (1, "failed reminders") and "on fire" in first[0].line
    assert (2, "resolve no_response") in kinds(first)
    assert ticket(app, 1).reminders_sent == 0 and ticket(app, 1).next_due_at <= now
    monkeypatch.undo()
    assert kinds(run_sweeps(app.db, app.desk, now)) == [(1, "reminder 1")]


def test_a_failed_run_is_logged_and_the_daemon_goes_on(make_app, monkeypatch, caplog):
    app = make_app()
    pending_ticket(app, utcnow() - 3 * DAY)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(daemon, "run_sweeps", broken)
    assert daemon.sweep_once(app.db, app.desk) == 0
    assert "failed; retrying next interval" in caplog.text and "disk on fire" in caplog.text
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="postdesk.scheduler"):
        assert daemon.sweep_once(app.db, app.desk) == 1
    assert "#1 reminder 1 of 2 sent" in caplog.text and "message_id=<" in caplog.text


RACER = """
import json, sys, time
from datetime import datetime
from postdesk import config
from postdesk.runtime.app import App
from postdesk.scheduler.sweeps import run_sweeps
from postdesk.store.clock import as_utc
app = App(config.load(sys.argv[1], environ={}))
now = as_utc(datetime.fromisoformat(sys.argv[2]))
app.desk
app.db.engine.connect().close()
print("ready", flush=True)
sys.stdin.readline()
start = time.perf_counter()
actions = run_sweeps(app.db, app.desk, now)
print(json.dumps({"kinds": [[a.ticket_id, a.kind] for a in actions],
                  "seconds": time.perf_counter() - start}), flush=True)
"""


def due_pending_tickets(config_path, count: int, since) -> None:
    """``count`` tickets pending since ``since`` (3 days ago): reminder 1 is due on each."""
    app = App(config.load(config_path, environ={}))
    rows = [Ticket(subject=f"Demande {n}", requester=f"client{n}@example.com", locale="fr",
                   status="pending", created_at=since, updated_at=since, pending_since=since,
                   reminders_sent=0, next_due_at=since + 2 * DAY) for n in range(count)]
    with app.db.session() as session:
        session.add_all(rows)
    app.db.dispose()


def start_racers(config_path, now, n: int = 2) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(config_path), now.isoformat()],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    return procs


def race(config_path, now) -> tuple[list[dict], float]:
    procs = start_racers(config_path, now)
    start = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    return results, time.perf_counter() - start


# Batches of 10: 200 tickets make the 20 claims per racer that 1000 tickets in batches of 50
# made (the racers alternate batches on PostgreSQL: split 100/100), at a fifth of the work;
# on SQLite, where writers take turns, 50 tickets are 5 batches to wait for.
@pytest.mark.parametrize("backend, count", [("postgres", 200), ("sqlite", 50)])
def test_two_schedulers_never_send_a_reminder_twice(backend, count, request, tmp_path):
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        _truncate(url)
    else:
        url = request.getfixturevalue("sqlite_url")
    config_path = write_config(tmp_path, url, "[scheduler]\nbatch_size = 10\n")
    due_pending_tickets(config_path, count, utcnow() - 3 * DAY)
    results, seconds = race(config_path, utcnow())
    taken = [set(tid for tid, kind in r["kinds"] if kind == "reminder 1") for r in results]
    app = App(config.load(config_path, environ={}))
    with app.db.reader() as session:
        sent = list(session.scalars(select(Outbox.ticket_id)
                                    .where(Outbox.template == "pending_reminder")))
        reminded = session.scalar(select(func.count()).select_from(Ticket)
                                  .where(Ticket.reminders_sent == 1))
    app.db.dispose()
    duplicates = len(sent) - len(set(sent))
    print(f"\nrace on {backend}: tickets={count} reminders={len(sent)} duplicates={duplicates} "
          f"seconds={seconds:.2f} split={'/'.join(str(len(t)) for t in taken)}")
    assert len(sent) == count and duplicates == 0 and reminded == count
    assert not (taken[0] & taken[1]) and len(taken[0] | taken[1]) == count
    assert all(kind == "reminder 1" for r in results for _, kind in r["kinds"])


def reminders_queued(app) -> list[int]:
    with app.db.reader() as session:
        return list(session.scalars(select(Outbox.ticket_id)
                                    .where(Outbox.template == "pending_reminder")))


def test_a_killed_scheduler_loses_and_repeats_nothing(pg_url, tmp_path):
    _truncate(pg_url)
    config_path = write_config(tmp_path, pg_url, "[scheduler]\nbatch_size = 10\n")
    due_pending_tickets(config_path, 60, utcnow() - 3 * DAY)
    app = App(config.load(config_path, environ={}))
    now = utcnow()
    [proc] = start_racers(config_path, now, n=1)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not reminders_queued(app) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()  # SIGKILL in the middle of a later batch
    proc.communicate(timeout=30)
    before = len(reminders_queued(app))
    again = run_sweeps(app.db, app.desk, now)
    sent = reminders_queued(app)
    app.db.dispose()
    print(f"\nkilled after {before} reminders; the next run sent {len(again)}")
    assert 0 < before < 60 and before % 10 == 0  # only whole batches were committed
    assert len(sent) == len(set(sent)) == 60


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_sweep_never_waits_for_a_customer_a_worker_is_writing_to(make_app, caplog):
    """A worker holds the customer's address lock (it is counting their mails) and will want
    the ticket next; a sweep holding the ticket must not wait for the address, or the two
    would deadlock. It leaves the ticket due for its next run instead."""
    from postdesk.store.locks import lock_address

    caplog.set_level(logging.INFO, logger="postdesk.scheduler")
    app = make_app()
    t0 = pending_ticket(app)
    requester = ticket(app).requester
    done: list = []
    with app.db.session() as worker_session:  # a worker's transaction, not yet committed
        lock_address(worker_session, requester)
        sweep = threading.Thread(target=lambda: done.append(run_sweeps(app.db, app.desk,
                                                                       t0 + 2 * DAY)))
        sweep.start()
        sweep.join(10)
        assert not sweep.is_alive(), "the sweep waits for the worker's lock"
    assert done == [[]]  # nothing done this run
    assert "left ticket #1 for the next run" in caplog.text
    assert ticket(app).reminders_sent == 0
    assert kinds(run_sweeps(app.db, app.desk, t0 + 2 * DAY)) == [(1, "reminder 1")]
