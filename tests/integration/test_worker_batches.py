"""The worker's shared transactions (SQLite and PostgreSQL): a batch of mails is processed in one
transaction with a savepoint per mail, and one bad mail never costs its neighbours anything.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from postdesk.gateway import steps
from postdesk.store import inbound, tickets
from postdesk.store.clock import utcnow
from postdesk.store.large import LARGE_VALUE
from postdesk.mail.envelope import Envelope
from tests.helpers import make_mail

SMTP = Envelope("alice@example.com", ("support@desk.test",), "smtp", "127.0.0.1")


def store(app, count: int, prefix: str = "m") -> list[int]:
    mails = [(make_mail(sender=f"c{i}@example.com", message_id=f"<{prefix}{i}@example.com>",
                        subject=f"Request {i}"), SMTP) for i in range(count)]
    return app.intake().store_many(mails)


def statuses(app) -> dict[str, int]:
    with app.db.reader() as session:
        return inbound.counts(session)


def commits_of(app) -> list[int]:
    """Count the COMMITs of write transactions the engine sends from now on (a reader's
    transaction, READ ONLY on PostgreSQL, ends with a COMMIT too: ``Database.reader``)."""
    from sqlalchemy import event  # noqa: PLC0415

    seen = [0]

    def committed(conn):
        if not conn.get_execution_options().get("postdesk_readonly"):
            seen[0] += 1

    event.listen(app.db.engine, "commit", committed)
    return seen


def test_a_batch_shares_its_commits(make_app):
    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    store(app, 20)
    commits = commits_of(app)
    assert app.worker().process_batch() == 20
    assert statuses(app) == {"processed": 20}
    assert commits[0] == 2  # the claim, then the twenty mails together
    with app.db.reader() as session:
        assert tickets.count(session) == 20


@pytest.mark.parametrize("queued, retried", [(3, False), (3, True)], ids=["drained", "retried"])
def test_a_claim_that_drained_the_queue_waits_for_the_next_ring(make_app, queued, retried):
    """After a claim of fewer mails than a batch the queue is empty: ``run`` waits for a ring
    (a mail stored since rings it) instead of claiming again at once, one more write
    transaction that finds nothing. A mail claimed again after a crash comes alone, whatever
    is queued behind it: the next claim follows at once."""
    import threading  # noqa: PLC0415

    from sqlalchemy import event  # noqa: PLC0415

    app = make_app()
    ids = store(app, queued)
    if retried:  # the first mail's worker died while it held it
        with app.db.session() as session:
            inbound.claim(session, "gone:1:a", 1, utcnow(), postgres=not app.db.is_sqlite)
            inbound.release_stale(session, utcnow(), timedelta(hours=1), ["gone:1:a"])
    claims: list[int] = []
    event.listen(app.db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: claims.append(1)
                 if statement.lstrip().upper().startswith("WITH RETRIED") else None)
    stop, seen = threading.Event(), []

    class Wake:
        def clear(self) -> None:
            pass

        def wait(self, timeout: float) -> bool:
            seen.append(("wait", len(claims)))
            stop.set()
            return True

    app.worker().run(stop, Wake())
    assert seen == [("wait", 2 if retried else 1)]
    assert statuses(app) == {"processed": len(ids)}


def test_commit_interval_zero_commits_after_every_mail(make_app):
    app = make_app("[worker]\ncommit_interval_seconds = 0\n")
    store(app, 5)
    commits = commits_of(app)
    app.worker().process_batch()
    assert commits[0] == 1 + 5
    assert statuses(app) == {"processed": 5}


def test_a_failing_mail_is_quarantined_and_its_neighbours_are_kept(make_app, monkeypatch):
    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    store(app, 6)
    original = steps.REGISTRY["record"]

    def record(ctx):
        original(ctx)  # the rows it wrote must vanish with its savepoint
        if ctx.mail.message_id == "<m3@example.com>":
            raise RuntimeError("boom")

    monkeypatch.setitem(steps.REGISTRY, "record", record)
    assert app.worker().process_batch() == 6
    assert statuses(app) == {"processed": 5, "quarantined": 1}
    with app.db.reader() as session:
        [bad] = inbound.by_status(session, inbound.QUARANTINED)
        assert bad.error_step == "record" and "boom" in bad.error
        assert tickets.message_by_id(session, "<m3@example.com>") is None
        assert tickets.contact(session, "c3@example.com") is None
        assert tickets.count(session) == 5


def test_a_discarded_duplicate_in_the_same_batch(make_app):
    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    raw = make_mail(message_id="<twice@example.com>")
    app.intake().store_many([(raw, SMTP), (raw + b"\r\n", SMTP)])
    app.worker().process_batch()
    assert statuses(app) == {"processed": 1, "discarded": 1}


def test_a_store_outage_mid_batch_gives_every_claim_back(make_app, monkeypatch):
    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    store(app, 4)
    original = steps.REGISTRY["record"]

    def record(ctx):
        if ctx.mail.message_id == "<m2@example.com>":
            raise OperationalError("INSERT", {}, Exception("database is gone"))
        original(ctx)

    monkeypatch.setitem(steps.REGISTRY, "record", record)
    with pytest.raises(OperationalError):
        app.worker().process_batch()
    assert statuses(app) == {"received": 4}  # nothing half-done, all queued again

    monkeypatch.setitem(steps.REGISTRY, "record", original)
    assert app.worker().process_until_idle() == 4
    assert statuses(app) == {"processed": 4}
    with app.db.reader() as session:
        assert tickets.count(session) == 4


def timeline_of(app, monkeypatch) -> list[str]:
    """Parses (by the worker ahead, or by the parse step) and write BEGINs, in order."""
    from sqlalchemy import event  # noqa: PLC0415

    from postdesk.gateway import worker as worker_module  # noqa: PLC0415

    seen: list[str] = []
    for module, name, label in ((worker_module, "parse", "parse ahead"),
                                (steps, "parse_mail", "parse in turn")):
        def traced(raw, real=getattr(module, name), label=label):
            seen.append(label)
            return real(raw)

        monkeypatch.setattr(module, name, traced)

    def begun(conn):
        if not conn.get_execution_options().get("postdesk_readonly"):
            seen.append("begin")

    event.listen(app.db.engine, "begin", begun)
    return seen


def test_small_mails_are_parsed_before_the_write_transaction(make_app, monkeypatch):
    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    store(app, 5)
    big = make_mail(sender="big@example.com", message_id="<big@example.com>",
                    body="Une longue description.\n" * 20_000)  # over PREPARE_MAX_MAIL
    app.intake().store(big, SMTP)
    seen = timeline_of(app, monkeypatch)
    assert app.worker().process_batch() == 6
    assert statuses(app) == {"processed": 6}
    # the claim's BEGIN, five parses ahead, the group's BEGIN, then the big mail in its turn
    assert seen == ["begin"] + ["parse ahead"] * 5 + ["begin", "parse in turn"]


def test_readings_that_fail_ahead_fail_again_in_turn_and_quarantine(make_app, monkeypatch):
    from postdesk.desk import arrival as context  # noqa: PLC0415

    app = make_app("[worker]\ncommit_interval_seconds = 60\n")
    store(app, 3)
    real = context.reply_text

    def reply_text(mail):
        if "boom" in mail.text:
            raise RuntimeError("quote stripper broke")
        return real(mail)

    monkeypatch.setattr(context, "reply_text", reply_text)
    app.intake().store(make_mail(sender="x@example.com", message_id="<boom@example.com>",
                                 body="boom\n"), SMTP)
    assert app.worker().process_batch() == 4
    assert statuses(app) == {"processed": 3, "quarantined": 1}
    with app.db.reader() as session:
        [bad] = inbound.by_status(session, inbound.QUARANTINED)
    assert bad.error_step == "record" and "quote stripper broke" in bad.error


def test_a_mail_out_of_attempts_is_not_read_ahead(make_app, monkeypatch):
    app = make_app("[worker]\nmax_attempts = 2\n")
    [poison] = store(app, 1)
    with app.db.session() as session:  # as if it had killed the worker three times
        session.get(inbound.Inbound, poison).attempts = 2
    seen = timeline_of(app, monkeypatch)
    app.worker().process_until_idle()
    assert "parse ahead" not in seen and "parse in turn" not in seen
    assert statuses(app) == {"quarantined": 1}


def test_a_big_mail_is_read_whole_and_exact_through_the_drivers_large_value_path(make_app):
    """Past ``LARGE_VALUE`` the edge writes the bytes (SQLite) and the worker reads them (both)
    through incremental blob I/O or in binary (PostgreSQL); every byte, 8-bit ones included,
    must come back, and the small mails stored in the same commit keep their own."""
    app = make_app("[limits]\ninbound_per_sender = 1000\n")
    body = "".join(f"ligne {n} é à ü\n" for n in range(60_000))  # 1.3 MB: one path, any size
    raw = make_mail(message_id="<big@example.com>", body=body)
    assert len(raw) > LARGE_VALUE
    small = make_mail(message_id="<small@example.com>")
    first = make_mail(message_id="<first@example.com>")
    ids = app.intake().store_many([(first, SMTP), (raw, SMTP), (small, SMTP)])
    assert ids == sorted(ids)
    with app.db.session() as session:
        rows = {row.id: row for row in inbound.claim(session, "test", 10, utcnow(),
                                                     postgres=not app.db.is_sqlite)}
    with app.db.session() as session:
        assert [inbound.raw_of(rows[i], app.blobs, session) for i in ids] == [first, raw, small]
    with app.db.session() as session:
        inbound.release_stale(session, utcnow(), timedelta(0), ["test"])
    assert app.worker().process_until_idle() == 3
    assert statuses(app) == {"processed": 3}
