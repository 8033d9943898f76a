"""Several workers on one store (DESIGN §11: every machine's worker claims from the same queue).

Each worker here is its own ``App``, so its own engine, connections and claim holder, as two
``postdesk serve`` processes would be. What must hold whatever the interleaving:

- a customer's follow-up to a mail another worker is still processing joins that mail's
  ticket, instead of opening a ticket of its own;
- two copies of one mail (one per desk address) make one ticket; the second is a duplicate,
  never quarantined;
- a new customer's mails taken by two workers at once make one contact, with no mail lost;
- two workers whose transactions lock the same tickets in opposite orders both finish;
- a reply to a ticket that another worker is merging follows the merge;
- two answers to one survey both count; two workers never pass the flood limit together;
- a worker that stops on an error gives back its own claims, never another worker's;
- a running worker keeps its claims past the claim timeout, a stuck or dead one loses them,
  and a worker that lost a claim leaves the mail to the one that took it.

Most tests hold a worker at a chosen point, and let it go only once the other worker is seen
waiting for it (a lock wait, or the wait for earlier mail), so the race they show happens every
time; the claim-timeout tests move an injected clock instead of sleeping through the timeout;
the last lets three workers run free on a queue built to collide.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from postdesk.gateway import steps
from postdesk.gateway.worker import PREPARE_MAX_MAIL, Worker
from postdesk.mail.envelope import Envelope
from postdesk.store import inbound, tickets
from postdesk.store.clock import utcnow
from postdesk.store.models import Contact, Message
from tests.clocks import Clock
from tests.helpers import make_mail, wait_until
from tests.integration import test_agents as agents_test

SMTP = Envelope("customer@example.com", ("support@desk.test",), "smtp", "127.0.0.1")


def statuses(app) -> dict[str, int]:
    with app.db.reader() as session:
        return inbound.counts(session)


def customer_messages(app) -> dict[int, list[str]]:
    """Each ticket's inbound Message-IDs, oldest first."""
    found: dict[int, list[str]] = {}
    with app.db.reader() as session:
        rows = session.execute(select(Message.ticket_id, Message.message_id)
                               .where(Message.direction == "in").order_by(Message.id))
        for ticket_id, message_id in rows:
            found.setdefault(ticket_id, []).append(message_id)
    return found


def in_thread(target) -> tuple[threading.Thread, list]:
    failures: list = []

    def run():
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, failures


def start_held(app, method: str) -> tuple[threading.Event, tuple[threading.Thread, list]]:
    """Start ``app``'s worker on one batch, in a thread, and wait until it has run its
    ``method`` once: it is held there until the gate returned is opened."""
    gate, reached = threading.Event(), threading.Event()
    worker = app.worker()
    real = getattr(worker, method)

    def held(*args, **kwargs):
        result = real(*args, **kwargs)
        if not gate.is_set():
            reached.set()
            assert gate.wait(30), "the test never opened the gate"
        return result

    setattr(worker, method, held)
    run = in_thread(worker.process_batch)
    assert reached.wait(10)
    return gate, run


def failures_of(*runs: tuple[threading.Thread, list]) -> list:
    for thread, _ in runs:
        thread.join(60)
    return [failure for _, failures in runs for failure in failures]


def watch_for_a_wait(app):
    """A function that returns once ``app``'s worker waits for another worker's transaction:
    on PostgreSQL a session of ``app``'s database waiting for a lock; on SQLite the worker's
    ``BEGIN IMMEDIATE`` sent while the other holds the single write lock (it cannot return
    before that one commits)."""
    if not app.db.is_sqlite:
        def lock_waits() -> int:
            with app.db.reader() as session:
                return session.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"))

        return lambda: wait_until(lock_waits, 30, "a lock wait", every=0.01)
    began = threading.Event()
    dialect = app.db.engine.dialect  # this app's own: its engine's
    begin = dialect.do_begin

    def do_begin(dbapi_connection) -> None:
        if not dbapi_connection.in_transaction:  # a reader's BEGIN has been sent already
            began.set()
        begin(dbapi_connection)

    dialect.do_begin = do_begin
    return lambda: began.wait(30) or pytest.fail("the second worker never began to write")


def second_while_first_holds(first, second) -> None:
    """``first``'s worker writes its first mail and is held before its commit while
    ``second``'s worker takes the next batch and waits for it; then both finish, without an
    error."""
    gate, first_run = start_held(first, "_finish")
    waiting = watch_for_a_wait(second)
    second_run = in_thread(second.worker().process_batch)
    waiting()
    gate.set()
    assert failures_of(first_run, second_run) == []


def test_a_follow_up_waits_for_the_mail_it_answers_when_another_worker_has_it(make_app, caplog):
    caplog.set_level(logging.INFO, logger="postdesk.worker")
    config = "[worker]\nbatch_size = 1\n"
    first, second = make_app(config), make_app(config)
    first.intake().store_many([
        (make_mail(sender="dana@firm.example", subject="Invoice 88 is wrong",
                   message_id="<invoice@firm.example>"), SMTP),
        (make_mail(sender="dana@firm.example", subject="Re: Invoice 88 is wrong",
                   body="I forgot the attachment, here it is.\n",
                   message_id="<forgot@firm.example>", in_reply_to="<invoice@firm.example>"),
         SMTP)])
    # The first worker claims the invoice mail and is held before processing it...
    gate, first_run = start_held(first, "_prepare")
    # ... while the second takes the follow-up, which names a mail no ticket has yet: it
    # puts it aside and waits for the earlier mail.
    follower, waits = second.worker(), threading.Event()
    wait_for_earlier = follower._wait_for_earlier
    follower._wait_for_earlier = lambda inbound_id: waits.set() or wait_for_earlier(inbound_id)
    second_run = in_thread(follower.process_batch)
    assert waits.wait(30), "the follow-up did not wait for the mail it answers"
    with second.db.reader() as session:
        assert tickets.count(session) == 0, "the follow-up opened a ticket of its own"
    gate.set()
    assert failures_of(first_run, second_run) == []
    assert statuses(first) == {"processed": 2}
    assert customer_messages(first) == {1: ["<invoice@firm.example>", "<forgot@firm.example>"]}
    assert "waits at thread" in caplog.text
    assert "still claimed by another worker" not in caplog.text  # it saw the first one finish


@pytest.mark.parametrize(("message_id", "big"), [("<printer@firm.example>", False),
                                                 ("<printer@firm.example>", True), (None, False)],
                         ids=["message-id", "message-id-not-read-ahead", "no-message-id"])
def test_two_copies_taken_by_two_workers_make_one_ticket(make_app, caplog, message_id, big):
    """On PostgreSQL the second worker's group first takes the lock of the copy's sender, which
    the first worker holds until its commit: the duplicate is found then, and nothing is
    written twice. A copy too big to be read ahead (``PREPARE_MAX_MAIL``) is not in that lock
    at the group's start: its INSERT of the same Message-ID waits for the first worker's commit,
    fails, and runs again, and the duplicate is found then. A copy without a Message-ID waits
    for the first one's commit before it looks for the same bytes. (On SQLite the second
    worker cannot write before the first commits: plain dedupe.)"""
    caplog.set_level(logging.INFO, logger="postdesk.worker")
    config = "[worker]\nbatch_size = 1\n"
    first, second = make_app(config), make_app(config)
    # Eve is a known contact: the two workers meet on the Message-ID, not on her address.
    first.intake().store_many([(make_mail(sender="eve@firm.example", subject="Hello"), SMTP)])
    first.worker().process_until_idle()
    body = "The printer is on fire.\n" * (PREPARE_MAX_MAIL // 20 if big else 1)
    copy = make_mail(sender="eve@firm.example", subject="Printer on fire", message_id=message_id,
                     body=body)
    first.intake().store_many([
        (copy, SMTP),
        (copy, Envelope("eve@firm.example", ("help@desk.test",), "smtp", "127.0.0.1"))])
    # One worker writes the first copy's ticket and is held before its commit, while another
    # worker takes the second copy.
    second_while_first_holds(first, second)
    assert statuses(first) == {"processed": 2, "discarded": 1}
    with first.db.reader() as session:
        assert tickets.count(session) == 2
        outcome = session.scalar(select(inbound.Inbound.outcome)
                                 .where(inbound.Inbound.status == "discarded"))
    assert outcome.startswith("duplicate of" if message_id else "same bytes as inbound")
    if message_id and not first.db.is_sqlite:
        if big:
            assert 'met a concurrent write at step record' in caplog.text
            assert "message_message_id_key" in caplog.text
        else:
            assert "met a concurrent write" not in caplog.text


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_workers_locking_two_tickets_in_opposite_orders_both_finish(make_app, caplog):
    """Each worker's shared transaction locks the tickets its mails answer, until it commits:
    one holds #1 and comes to a reply to #2, the other holds #2 and comes to a reply to #1.
    Waiting for each other's, they would deadlock until PostgreSQL failed one of them, a
    second later. A group's later mail takes its ticket only if it is free
    (``locks.wait_for_locks``): a worker that finds it held ends its group before that mail,
    which comes first in its next group and waits there holding no ticket. No mail meets a
    concurrent write. (On SQLite the second writer waits for the first's commit: no deadlock
    can form.) The second worker's replies come from the colleagues on Cc, so that the
    senders' locks do not order the two groups already."""
    setup = make_app()
    for number, sender, colleague in ((1, "ann@firm.example", "ann2@firm.example"),
                                      (2, "bob@firm.example", "bob2@firm.example")):
        setup.intake().store_many([(make_mail(sender=sender, subject=f"Question {number}",
                                              cc=colleague), SMTP)])
        setup.worker().process_until_idle()
    config = "[worker]\nbatch_size = 2\ncommit_interval_seconds = 60\n"
    first, second = make_app(config), make_app(config)
    replies = [("ann@firm.example", 1), ("bob@firm.example", 2),     # the first worker's batch
               ("bob2@firm.example", 2), ("ann2@firm.example", 1)]   # the second's
    setup.intake().store_many([
        (make_mail(sender=sender, subject=f"Re: [#{number}] Question {number}",
                   body=f"More about {number}, part {i}.\n"), SMTP)
        for i, (sender, number) in enumerate(replies)])
    caplog.set_level(logging.INFO, logger="postdesk.worker")
    # Each worker is held once it has written its first mail: it holds that ticket's lock.
    first_gate, first_run = start_held(first, "_finish")
    second_gate, second_run = start_held(second, "_finish")
    first_gate.set()
    second_gate.set()
    assert failures_of(first_run, second_run) == []
    assert statuses(first) == {"processed": 6}
    assert {ticket: len(ids) for ticket, ids in customer_messages(first).items()} == {1: 3, 2: 3}
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "met a concurrent write" in m]
    assert [m for m in messages if "waits for the next group at step thread: ticket #" in m]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("big", [False, True], ids=["read-ahead", "not-read-ahead"])
def test_two_workers_with_the_same_senders_in_opposite_orders_never_deadlock(make_app, caplog,
                                                                              big):
    """The first worker's group holds a mail of ann, then one of bob; the second's a mail of
    bob, then one of ann. Locking each sender as its mail's turn comes, the second would hold
    bob and wait for ann while the first, let go, waited for bob: a deadlock, which PostgreSQL
    breaks only after a second, running a group again. A group's first mail waits for its
    sender's lock, a later one only takes it if it is free: the second worker's group ends
    before ann's mail, and its next group, whose first mail that is, waits for the first
    worker's commit holding nothing. No mail meets a concurrent write. A mail too big to be
    read ahead (``PREPARE_MAX_MAIL``) has its sender locked by its flood count, not before its
    first step: there too a later mail does not wait (``locks.wait_for_locks``)."""
    config = "[worker]\nbatch_size = 2\ncommit_interval_seconds = 60\n"
    first, second = make_app(config), make_app(config)
    senders = ["ann@firm.example", "bob@firm.example",   # the first worker's batch
               "bob@firm.example", "ann@firm.example"]   # the second's
    body = "Still broken.\n" * (PREPARE_MAX_MAIL // 14 + 1 if big else 1)
    first.intake().store_many([(make_mail(sender=sender, subject=f"Question {i}", body=body),
                                SMTP) for i, sender in enumerate(senders)])
    caplog.set_level(logging.INFO, logger="postdesk.worker")
    gate, first_run = start_held(first, "_finish")  # ann's mail written, before bob's
    waiting = watch_for_a_wait(second)
    second_run = in_thread(second.worker().process_batch)
    waiting()
    gate.set()
    assert failures_of(first_run, second_run) == []
    assert statuses(first) == {"processed": 4}
    assert not [r for r in caplog.records if "met a concurrent write" in r.getMessage()]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_reply_to_a_ticket_being_merged_follows_the_merge(make_app):
    """An agent's ``#merge 2`` on #1 is being written by one worker while the customer's reply
    to #1 reaches another: the threading waits on #1's lock, sees the merge, and adds the
    reply to #2 (not to #1, whose messages all moved). (On SQLite the second worker cannot
    read before the first commits.)"""
    config = agents_test.DESK + "[worker]\nbatch_size = 1\n"
    first, second = make_app(config), make_app(config)
    for sender, subject in (("julie@client.test", "Facture en double"),
                            ("paul@client.test", "Facture de mars")):
        agents_test.deliver(first, make_mail(sender, subject, "Bonjour.\n"))
    first.intake().store_many([
        (agents_test.agent_mail("alice@desk-team.test", "#merge 2\n"), SMTP),
        (make_mail("julie@client.test", "Re: [#1] Facture en double", "Toujours rien.\n",
                   message_id="<still@client.test>"), SMTP)])
    second_while_first_holds(first, second)  # the merge, held
    with first.db.reader() as session:
        assert tickets.get(session, 1).merged_into == 2
        assert tickets.messages(session, 1) == []
        assert "<still@client.test>" in [m.message_id for m in tickets.messages(session, 2)]


def test_two_workers_never_pass_the_flood_limit_together(make_app):
    """The flood limit counts the sender's committed mails; a worker takes the sender's lock
    before it counts, so the second worker counts only after the first one's commit."""
    config = "[worker]\nbatch_size = 2\ncommit_interval_seconds = 60\n" \
             "[limits]\ninbound_per_sender = 3\n"
    first, second = make_app(config), make_app(config)
    alerts = [(make_mail(sender="loop@robot.example", subject=f"Alert {i}"), SMTP)
              for i in range(5)]
    # A known sender: the workers do not meet on creating its contact.
    first.intake().store_many(alerts[:1])
    first.worker().process_until_idle()
    first.intake().store_many(alerts[1:])
    second_while_first_holds(first, second)  # its first mail, held
    assert statuses(first) == {"processed": 3, "quarantined": 2}
    with first.db.reader() as session:
        assert tickets.count(session) == 3


def test_a_worker_that_stops_gives_back_its_own_claims_only(make_app, monkeypatch):
    app = make_app("[worker]\nbatch_size = 2\n")
    app.intake().store_many([(make_mail(sender=f"c{i}@firm.example", subject=f"Request {i}"),
                              SMTP) for i in range(4)])
    with app.db.session() as session:  # another worker holds the first two
        inbound.claim(session, "elsewhere:1:1", 2, utcnow(), postgres=not app.db.is_sqlite)
    def record(ctx):
        raise OperationalError("INSERT", {}, Exception("database is gone"))

    monkeypatch.setitem(steps.REGISTRY, "record", record)
    with pytest.raises(OperationalError):
        app.worker().process_batch()
    assert statuses(app) == {"processing": 2, "received": 2}
    with app.db.reader() as session:
        holders = inbound.processing_holders(session)
    assert holders == ["elsewhere:1:1"]


class Stop:
    """Stops a running worker: its stop event, and its doorbell so it does not wait a poll."""

    def __init__(self) -> None:
        self.stop, self.wake = threading.Event(), threading.Event()

    def set(self) -> None:
        self.stop.set()
        self.wake.set()


def run_in_thread(worker) -> tuple[Stop, tuple[threading.Thread, list]]:
    """``worker.run`` in a thread, as ``serve`` runs it; ``set`` what is returned to stop it."""
    stop = Stop()
    run = in_thread(lambda: worker.run(stop.stop, stop.wake))
    return stop, run


def claimed_by(app, holder: str) -> int:
    with app.db.reader() as session:
        return session.scalar(select(func.count()).select_from(inbound.Inbound)
                              .where(inbound.Inbound.claimed_by == holder))


def claims_dated(app, holder: str, when) -> int:
    """How many of ``holder``'s unfinished claims were taken or renewed at ``when``."""
    with app.db.reader() as session:
        return session.scalar(select(func.count()).select_from(inbound.Inbound).where(
            inbound.Inbound.status == "processing", inbound.Inbound.claimed_by == holder,
            inbound.Inbound.claimed_at == when))


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_live_worker_keeps_its_claims_past_the_claim_timeout(make_app, monkeypatch):
    """A running worker renews its claims four times per claim timeout, from a thread of its
    own, while it makes progress: its batch outlasts the timeout, yet only the claim nobody
    renews (a worker that died on another machine) is given back. The workers' clock moves 1.3
    claim timeouts while the first mail of the batch runs; no time passes on the worker's
    measure of progress (a mail began just now). (On SQLite one worker writes at a time:
    nobody else could take its mails anyway.)"""
    config = "[worker]\nbatch_size = 3\nclaim_timeout_seconds = 1\n"
    slow, other = make_app(config), make_app(config)
    clock = Clock()
    slow.intake().store_many([(make_mail(sender=f"c{i}@firm.example", subject=f"Request {i}"),
                               SMTP) for i in range(4)])
    with slow.db.session() as session:  # a worker on another machine takes the last, and dies
        inbound.claim(session, "elsewhere:1:1", 1, clock.now(), postgres=True)
    record, gate, reached = steps.REGISTRY["record"], threading.Event(), threading.Event()

    def slow_record(ctx):  # the batch's first mail runs until the test lets it go
        if not gate.is_set():
            reached.set()
            assert gate.wait(30)
        record(ctx)

    monkeypatch.setitem(steps.REGISTRY, "record", slow_record)
    worker = Worker(slow.db, slow.desk, clock=clock.now, monotonic=clock.monotonic)
    stop, run = run_in_thread(worker)
    try:
        assert reached.wait(30)
        assert claimed_by(slow, worker.holder) == 3
        clock.advance(1.3, monotonic=False)  # the batch was claimed 1.3 claim timeouts ago
        wait_until(lambda: claims_dated(slow, worker.holder, clock.now()) == 3, 30,
                   "the running worker's renewal", every=0.02)
        Worker(other.db, other.desk, clock=clock.now).release_stale_claims()
        assert claimed_by(slow, "elsewhere:1:1") == 0
        assert claimed_by(slow, worker.holder) == 3
        gate.set()
        wait_until(lambda: statuses(slow) == {"processed": 4}, 30, "four processed mails",
                   every=0.02)
    finally:
        gate.set()
        stop.set()
    assert failures_of(run) == []


def test_a_worker_stuck_on_a_mail_lets_its_claims_go(make_app, caplog):
    """No mail begun for a whole claim timeout: the worker stops renewing, and another worker
    takes its mails (the stuck one can no longer finish them, see the next test). The clock
    moves 2.5 claim timeouts: first the worker's measure of progress, then (once it has
    given up renewing) the wall clock the claims are dated by."""
    caplog.set_level(logging.WARNING, logger="postdesk.worker")
    config = "[worker]\nbatch_size = 1\nclaim_timeout_seconds = 1\n"
    stuck, other = make_app(config), make_app(config)
    clock = Clock()
    stuck.intake().store_many([(make_mail(sender="dana@firm.example", subject="Printer"),
                                SMTP)])
    worker = Worker(stuck.db, stuck.desk, clock=clock.now, monotonic=clock.monotonic)
    gate, reached = threading.Event(), threading.Event()
    prepare = worker._prepare

    def held(rows):  # claimed, then stuck before its first mail
        reached.set()
        assert gate.wait(30)
        return prepare(rows)

    worker._prepare = held
    stop, run = run_in_thread(worker)
    try:
        assert reached.wait(30)
        assert claimed_by(stuck, worker.holder) == 1
        clock.advance(2.5, wall=False)
        wait_until(lambda: "this worker's claims are no longer renewed" in caplog.text, 30,
                   "the stuck worker to stop renewing", every=0.02)
        clock.advance(2.5, monotonic=False)
        taker = Worker(other.db, other.desk, clock=clock.now)
        assert taker.release_stale_claims() == 1
        assert taker.process_until_idle() == 1
    finally:
        gate.set()
        stop.set()
    assert failures_of(run) == []
    assert statuses(stuck) == {"processed": 1}


def test_a_worker_that_lost_its_claim_leaves_the_mail_to_the_one_that_took_it(make_app,
                                                                              caplog):
    """A worker paused past the claim timeout (a frozen virtual machine) finds, when it goes
    on, that another worker took its mail and processed it: finishing the mail updates nothing,
    so what it wrote for the mail is rolled back, and the other worker's outcome stands. The
    mail has no Message-ID: nothing else would have stopped a second ticket."""
    caplog.set_level(logging.INFO, logger="postdesk.worker")
    config = "[worker]\nbatch_size = 1\n"
    paused, other = make_app(config), make_app(config)
    paused.intake().store_many([(make_mail(sender="dana@firm.example", subject="Printer",
                                           message_id=None), SMTP)])
    gate, paused_run = start_held(paused, "_prepare")  # claimed, then frozen
    with other.db.session() as session:  # its claim went unrenewed: given back
        assert inbound.release_stale(session, utcnow(), timedelta(0)) == 1
    assert other.worker().process_until_idle() == 1
    ended = select(inbound.Inbound.status, inbound.Inbound.outcome, inbound.Inbound.processed_at)
    with other.db.reader() as session:
        by_other = session.execute(ended).one()
    gate.set()
    assert failures_of(paused_run) == []
    with paused.db.reader() as session:
        assert session.execute(ended).one() == by_other
        assert tickets.count(session) == 1
    assert by_other.status == "processed"
    assert "is no longer this worker's" in caplog.text


def test_three_workers_on_a_queue_built_to_collide(make_app):
    """Ten new customers, each writing several requests, each request followed at once by the
    customer's own follow-up, and every third request delivered twice."""
    config = "[worker]\nbatch_size = 4\ncommit_interval_seconds = 0.02\n"
    apps = [make_app(config) for _ in range(3)]
    mails, requests, copies = [], 36, 0
    for i in range(requests):
        sender = f"customer{i % 10}@firm{i % 10}.example"
        original = make_mail(sender=sender, subject=f"Request {i}",
                             message_id=f"<request{i}@firm.example>")
        mails.append(original)
        mails.append(make_mail(sender=sender, subject=f"Re: Request {i}", body="One more thing.\n",
                               message_id=f"<more{i}@firm.example>",
                               in_reply_to=f"<request{i}@firm.example>"))
        if i % 3 == 0:
            mails.append(original)
            copies += 1
    apps[0].intake().store_many([(raw, SMTP) for raw in mails])
    runs = [in_thread(app.worker().process_until_idle) for app in apps]
    assert failures_of(*runs) == []
    assert statuses(apps[0]) == {"processed": 2 * requests, "discarded": copies}
    threads = customer_messages(apps[0])
    assert sorted(threads.values()) == sorted(
        [f"<request{i}@firm.example>", f"<more{i}@firm.example>"] for i in range(requests))
    with apps[0].db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 10


def test_two_answers_to_one_survey_taken_by_two_workers_both_count(make_app):
    """The threading locks the resolved ticket a survey answer names, so the second worker
    reads the survey only after the first one's answer is committed (PostgreSQL), or cannot
    write before it (SQLite): ``answers`` counts both, the last answer is the one kept."""
    from postdesk.desk import surveys, transitions
    from postdesk.scheduler.sweeps import run_sweeps

    config = "[worker]\nbatch_size = 1\n[survey]\ndelay = 0\n"
    first, second = make_app(config), make_app(config)
    first.intake().store_many([(make_mail(sender="dana@firm.example", subject="Login fails"),
                                SMTP)])
    first.worker().process_until_idle()
    now = utcnow()
    with first.db.session() as session:
        transitions.resolve(session, first.desk, tickets.get(session, 1), now, "agent",
                            "agent@desk-team.test")
    run_sweeps(first.db, first.desk, now)
    with first.db.reader() as session:
        survey_mail = surveys.survey_for(session, 1).message_id
    first.intake().store_many([
        (make_mail(sender="dana@firm.example", subject="Re: [#1] Your opinion",
                   body=f"{score}\n", in_reply_to=survey_mail), SMTP)
        for score in (3, 6)])
    second_while_first_holds(first, second)  # the first answer, held
    assert statuses(first) == {"processed": 3}
    with first.db.reader() as session:
        survey = surveys.survey_for(session, 1)
    assert survey.answers == 2
    assert survey.score == 6
