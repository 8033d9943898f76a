"""The worker: takes stored mails (also those left by a crash) and runs each through the pipeline.

It is the one place that catches dispositions and unexpected errors (Mailman's habit): a
``Discard`` is recorded as discarded with its reason, a ``Quarantine`` or any crash of a step
is recorded as quarantined with the step, the error and the attempt count, to be re-run with
``postdesk quarantine retry``. A store outage puts the mail back in the queue untouched. A mail
whose processing killed the worker more than ``[worker] max_attempts`` times is quarantined
instead of looping forever.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from postdesk import metrics
from postdesk.errors import Discard, Disposition, NotYet, Quarantine
from postdesk.gateway import steps
from postdesk.gateway.context import LOCALES, Context, Desk, TextReadings
from postdesk.mail.envelope import Envelope
from postdesk.mail.parse import ParsedMail, parse
from postdesk.store import claims, inbound, tickets
from postdesk.store.clock import utcnow
from postdesk.store.db import Database
from postdesk.store.errors import is_conflict, is_unavailable
from postdesk.store.locks import LockBusy, lock_address, wait_for_locks
from postdesk.store.models import Inbound
from postdesk.threading.decide import NEW
from postdesk.supervision import fault_point, supervise

log = logging.getLogger("postdesk.worker")

# A claimed batch is read and parsed ahead, outside the write transaction, up to these sizes;
# a bigger mail (or one in a blob file) is read and parsed in its turn, alone in memory.
PREPARE_MAX_MAIL = 256 * 1024
PREPARE_MAX_BYTES = 4 * 1024 * 1024
# Several workers on one store (PostgreSQL): a mail whose write met another worker's (the same
# new contact, a second copy of the same mail, a deadlock on two tickets) is processed again,
# at most this many more times; a mail that answers unknown mail waits this long at most for
# earlier mail other workers hold, looking this often.
CONFLICT_RETRIES = 2
WAIT_FOR_EARLIER_SECONDS = 10.0
WAIT_POLL_SECONDS = 0.05
# A running worker renews its own claims this many times per ``claim_timeout_seconds``, and
# gives back the claims of workers that stopped renewing theirs at least every
# ``RELEASE_EVERY_SECONDS`` (``recover`` does it at start). A loop that met a store outage
# tries again after ``RETRY_PAUSE_SECONDS``.
RENEWALS_PER_TIMEOUT = 4
RELEASE_EVERY_SECONDS = 60.0
RETRY_PAUSE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Prepared:
    """A mail read and parsed before its transaction, with the readings of its text."""

    raw: bytes
    mail: ParsedMail
    readings: TextReadings


@dataclass(slots=True)
class _Batch:
    """What the worker keeps about the batch it claimed while it processes it."""

    prepared: dict[int, Prepared]
    deferred: list[Inbound] = field(default_factory=list)  # mails that wait (``NotYet``)
    may_wait: bool = True  # False once they waited: every mail is processed as it is
    conflicts: Counter = field(default_factory=Counter)  # inbound id -> runs done again
    careful: bool = False  # a mail of this batch failed: the rest get a savepoint each


class _Failed(Exception):
    """A mail of a group run without savepoints did not end as processed (a disposition, a
    crash, a wait, a lost claim): the group's transaction is rolled back and the mails up to
    this one run again, each in a savepoint of its own."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _may_begin(session, rows: list[Inbound], index: int, batch: _Batch) -> None:
    """Let ``rows[index]`` run in this group: the first mail of a group waits for the locks it
    needs, a later one only takes them if they are free (``locks.wait_for_locks``), else
    ``LockBusy`` ends this group before it. Its sender's lock (read ahead) is taken here
    (``locks.lock_address``; its flood count and limits take it again at no cost); the others
    (a copy's sha256, its ticket's row) are taken by its steps."""
    wait_for_locks(session, index == 0)
    prepared = batch.prepared.get(rows[index].id)
    if prepared is not None and prepared.mail.from_addr:
        lock_address(session, prepared.mail.from_addr)


# The steps that take a lock before the mail writes anything: a later mail that meets a busy
# lock there leaves a group without savepoints as it found it (a lock of its own aside).
_BEFORE_WRITES = frozenset({"dedupe", "flood", "thread"})


def _busy(row: Inbound, busy: LockBusy, step: str) -> None:
    log.info("inbound=%s waits for the next group at step %s: %s", row.id, step, busy,
             extra={"inbound": row.id, "step": step})


_holding = threading.local()  # .kept: the list of what this thread holds back, or None


def _keep_records() -> None:
    """Put a ``_Keep`` filter on each handler of the ``postdesk`` loggers that has none yet
    (once per handler: the filters of a handler other threads log through are not changed per
    group). The filter keeps the records of a thread that is ``_holding`` instead of writing
    them."""
    for handler in _handlers():
        if not any(isinstance(f, _Keep) for f in handler.filters):
            handler.addFilter(_Keep(handler))


@contextlib.contextmanager
def _held_effects():
    """While in the block, the log records of this thread (the worker's, once ``_keep_records``
    filters its handlers) and the counts it makes (``metrics.held``) are kept in the list it
    yields instead of written: a group without savepoints writes those of its mails once
    committed (``_give``), and drops them when rolled back (its mails run again). The list holds
    ``(handler, record)`` pairs, then counts."""
    with metrics.held() as counts:
        _holding.kept = kept = []
        try:
            yield kept
        finally:
            _holding.kept = None
            kept.extend(counts)


def _give(effects: list) -> None:
    """Write what ``_held_effects`` kept."""
    for effect in effects:
        if isinstance(effect, tuple):
            handler, record = effect
            handler.handle(record)
        else:
            effect()


class _Keep(logging.Filter):
    """A handler's filter for ``_held_effects``: keeps the records of a thread that holds."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        kept = getattr(_holding, "kept", None)
        if kept is None:
            return True
        kept.append((self.handler, record))
        return False


def _handlers() -> list[logging.Handler]:
    """The handlers a record of a ``postdesk`` logger can reach (its own loggers' and their
    ancestors' while they propagate)."""
    found: list[logging.Handler] = []
    names = [n for n in list(logging.Logger.manager.loggerDict) if n.startswith("postdesk")]
    for name in names:
        logger = logging.getLogger(name)
        while logger is not None:
            found.extend(h for h in logger.handlers if h not in found)
            logger = logger.parent if logger.propagate else None
    return found


@contextlib.contextmanager
def _group_events(session, done: list):
    """The events of a group without savepoints, held and written by one statement before its
    commit (``tickets.events_held``). When that statement fails (a conflict with another
    worker), the group runs again with a savepoint per mail, which writes each mail's events
    in its own savepoint and so finds the mail they belong to."""
    try:
        with tickets.events_held(session):
            yield
    except _Failed:
        raise
    except Exception as exc:  # noqa: BLE001 - the mails run again, and are judged there
        if is_unavailable(exc) or not done:
            raise
        raise _Failed(len(done) - 1) from exc


class _Restart(Exception):
    """Ends the worker's shared transaction before the mail in hand, which runs again first in
    the next one."""


class Worker:
    """``clock`` dates claims and outcomes (the wall clock, aware UTC); ``monotonic`` measures
    durations (progress, commit intervals, waits). Both are the real clocks unless a test passes
    its own, as the scheduler's sweeps take their ``now``."""

    def __init__(self, db: Database, desk: Desk, on_queued=None, *,
                 clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.clock = clock
        self.monotonic = monotonic
        self.desk = desk
        self.settings = desk.settings.worker
        self.holder = claims.holder_name(self)
        self.on_queued = on_queued or (lambda: None)
        self.commit_interval = self.settings.commit_interval
        self._released_at = self.monotonic()
        self._claim_timeout = timedelta(seconds=self.settings.claim_timeout)
        self._release_every = min(RELEASE_EVERY_SECONDS, self.settings.claim_timeout / 2)
        self._alive_at = self.monotonic()  # the last sign of progress (a mail begun, a poll)
        self._drained = False  # the last claim took what was queued (``process_batch``)

    def recover(self) -> int:
        """Give back claims left by crashed workers, and remove the blob files they never
        finished writing (at start); returns how many mails were given back."""
        released = self.release_stale_claims()
        swept = self.desk.blobs.remove_stale_temporaries()
        if swept:
            log.warning("removed %d unfinished blob files left by stopped processes", swept)
        return released

    def release_stale_claims(self) -> int:
        """Give back the claims of workers that stopped: at once those of a process of this
        host that no longer exists, once not renewed for ``claim_timeout_seconds`` those of
        other hosts (at start, and every half claim timeout, at most a minute, while running:
        another machine's worker may die at any time)."""
        with self.db.session() as session:
            dead = [h for h in inbound.processing_holders(session) if claims.is_dead(h)]
            released = inbound.release_stale(session, self.clock(), self._claim_timeout, dead,
                                             keep=self.holder)
        if released:
            log.warning("released %d mails claimed by stopped workers", released)
        self._released_at = self.monotonic()
        return released

    def renew_claims(self) -> int:
        """Date this worker's unfinished claims now (``run`` does it from a thread of its own,
        ``RENEWALS_PER_TIMEOUT`` times per claim timeout, while the worker makes progress)."""
        with self.db.session() as session:
            return inbound.renew_claims(session, self.holder, self.clock(),
                                        postgres=not self.db.is_sqlite)

    def _keep_claims(self, halt: threading.Event) -> None:
        """Renew the claims until ``halt``, unless no mail has begun for a whole claim
        timeout: a worker stuck on one mail then lets its claims go to the other workers (and
        finds, if it ever goes on, that it can no longer finish them)."""
        timeout = self.settings.claim_timeout
        stuck = False
        while not halt.wait(timeout / RENEWALS_PER_TIMEOUT):
            if self.monotonic() - self._alive_at > timeout:
                if not stuck:
                    log.warning("no progress for %.0f s; this worker's claims are no longer "
                                "renewed, so other workers can take its mails", timeout)
                stuck = True
                continue
            stuck = False
            try:
                self.renew_claims()
            except Exception:  # noqa: BLE001 - an outage; the next renewal tries again
                log.exception("could not renew this worker's claims; retrying")

    def process_batch(self) -> int:
        """Claim one batch and process it; returns how many mails it took.

        The claim commits on its own (it counts the attempt). The small mails are then read in one
        query, parsed, and their text read for quotes and language, before any write
        transaction (``_prepare``): that CPU work does not hold SQLite's write lock, which the
        SMTP edge waits for. The mails are then processed in
        shared transactions (no savepoint per mail until one of them fails:
        ``_process_group``), committed every ``commit_interval`` seconds:
        a commit per mail cost more than the mail's own statements on PostgreSQL, and the
        bound keeps SQLite's single write lock short for the SMTP edge's group commits. A mail
        claimed again after a crash comes alone (``inbound.claim``), so it cannot take
        innocent neighbours down with it. With several workers on one store, a mail that
        answers mail nobody knows yet waits while another worker holds earlier mail
        (``NotYet``): it is processed after the rest of the batch, once they are done.
        """
        with self.db.session() as session:
            rows = inbound.claim(session, self.holder, self.settings.batch_size, self.clock(),
                                 postgres=not self.db.is_sqlite)
        # Fewer than a batch, and not a retried mail claimed alone: nothing else was queued.
        self._drained = len(rows) < self.settings.batch_size and not (
            len(rows) == 1 and rows[0].attempts > 1)
        try:
            batch = _Batch(self._prepare(rows))
            self._process_all(list(rows), batch)
            if batch.deferred:
                self._wait_for_earlier(batch.deferred[-1].id)
                waiting, batch.deferred, batch.may_wait = batch.deferred, [], False
                self._process_all(waiting, batch)
        except Exception as exc:
            self._give_back(exc)  # the rest is claimed again, each mail alone
            raise
        return len(rows)

    def process_until_idle(self, limit: int = 100_000) -> int:
        """Process until the queue is empty (tests and ``--once`` runs use this, never sleeps)."""
        total = 0
        while total < limit and (n := self.process_batch()):
            total += n
        return total

    def _prepare(self, rows: list[Inbound]) -> dict[int, Prepared]:
        """Read and parse the small mails of ``rows`` ahead (never one that has used up its
        attempts: it is quarantined unread). Best effort: a mail left out, or whose readings
        fail here, gets them in its turn, inside its savepoint, where a failure quarantines it."""
        chosen, total = [], 0
        for row in rows:
            if row.blob_path or row.size > PREPARE_MAX_MAIL or \
                    row.attempts > self.settings.max_attempts:
                continue
            if total + row.size > PREPARE_MAX_BYTES:
                break
            chosen.append(row.id)
            total += row.size
        if not chosen:
            return {}
        with self.db.reader() as session:
            raws = inbound.raws(session, chosen)
        prepared = {}
        for row_id, raw in raws.items():
            mail = parse(raw)
            readings = TextReadings()
            try:
                readings.text_without_quotes(mail)
                if not (mail.in_reply_to or mail.references or mail.content_language in LOCALES):
                    readings.language(mail)  # a new request: its ticket's locale may need it
            except Exception:  # noqa: BLE001 - read again in the mail's turn, and judged there
                readings = TextReadings()
            prepared[row_id] = Prepared(raw, mail, readings)
        return prepared

    def _process_all(self, waiting: list[Inbound], batch: _Batch) -> None:
        while waiting:
            done = self._process_group(waiting, batch)
            del waiting[:done]
            self.on_queued()

    def _process_group(self, rows: list[Inbound], batch: _Batch) -> int:
        """Process mails from the head of ``rows`` in one transaction; returns how many.

        The mails share the transaction without a savepoint each (``_process_fast``): a
        savepoint per mail cost two statements and more of SQLAlchemy's time than several of
        the mail's own statements. When a mail does not end as processed, the transaction is
        rolled back and the mails up to it run again, each in its own savepoint
        (``_process_one``), so that the mail that failed is recorded as before and its
        neighbours are kept; the rest of the batch then keeps a savepoint per mail. A mail that
        must wait for earlier mail of other workers (``NotYet``) goes to ``batch.deferred``. A
        mail whose write met another worker's ends the transaction before it: it comes first
        in the next one."""
        if not batch.careful:
            try:
                return self._process_fast(rows, batch)
            except _Failed as failed:
                batch.careful = True
                rows = rows[:failed.index + 1]
        return self._process_careful(rows, batch)

    def _process_careful(self, rows: list[Inbound], batch: _Batch) -> int:
        began = self.monotonic()
        done = 0
        with self.db.session() as session:
            for index, row in enumerate(rows):
                try:
                    _may_begin(session, rows, index, batch)
                    self._process_one(session, row, batch)
                except (LockBusy, _Restart):  # first in the next group
                    break
                done += 1
                if self._group_full(began):
                    break
        return done

    def _group_full(self, began: float) -> bool:
        """The group has run for the commit interval, or (SQLite, in ``serve``) the SMTP edge
        waits for the write lock (``Database.edge_waits``)."""
        return self.monotonic() - began >= self.commit_interval or self.db.edge_waits()

    def _process_fast(self, rows: list[Inbound], batch: _Batch) -> int:
        """The mails of ``rows`` in one transaction, without savepoints, until the commit
        interval; :class:`_Failed` (the transaction rolled back) at the first that does not
        end as processed. What the steps log and count of each mail (``_held_effects``), and
        what the worker logs and counts of it, is done once the transaction is committed: a
        rolled-back group runs its mails again, which log and count again."""
        began = self.monotonic()
        done: list[tuple[Context, float, list]] = []
        _keep_records()
        with self.db.session() as session:
            with _group_events(session, done):
                for index, row in enumerate(rows):
                    try:
                        _may_begin(session, rows, index, batch)
                        ctx, effects = self._run_fast(session, row, batch)
                    except LockBusy:  # a lock it needs is another group's: first in the next
                        break
                    if ctx is None:
                        raise _Failed(index)
                    done.append((ctx, self.monotonic() - self._alive_at, effects))
                    if self._group_full(began):
                        break
        for ctx, took, effects in done:
            _give(effects)
            self._processed(ctx)
            batch.prepared.pop(ctx.inbound.id, None)
            metrics.processing_took(took)
        return len(done)

    def _run_fast(self, session, row: Inbound, batch: _Batch) -> tuple[Context | None, list]:
        """Run one mail in the group's transaction: its context when it was processed and
        recorded (None when it must be run again in a savepoint: anything else), with the log
        records and counts its steps made, held back."""
        if row.attempts > self.settings.max_attempts:
            return None, []
        self._alive_at = self.monotonic()
        ctx = None
        try:
            with _held_effects() as effects:
                ctx = self._context(session, row, batch)
                steps.run(ctx)
                ended = self._finish(session, ctx, fast=True)
        except LockBusy as busy:
            if ctx is None or ctx.step not in _BEFORE_WRITES:
                return None, []  # run again in a savepoint, which ends the group before it
            _busy(row, busy, ctx.step)
            raise
        except Exception as exc:  # noqa: BLE001 - run again in a savepoint, and judged there
            if is_conflict(exc):
                batch.conflicts[row.id] += 1
                step = ctx.step if ctx else "load"
                log.info("inbound=%s met a concurrent write at step %s; processing it again "
                         "(%s)", row.id, step, _describe(exc).splitlines()[0],
                         extra={"inbound": row.id, "step": step})
            elif is_unavailable(exc):
                raise
            return None, []
        return (ctx, effects) if ended else (None, [])

    def _process_one(self, session, row: Inbound, batch: _Batch) -> None:
        if row.attempts > self.settings.max_attempts:
            self._finish_failed(session, row, "worker", f"processing did not finish after "
                                f"{row.attempts - 1} attempts (the worker stopped each time)")
            return
        self._alive_at = started = self.monotonic()
        step = "load"
        savepoint = session.begin_nested()
        try:
            ctx = self._context(session, row, batch)
            try:
                steps.run(ctx)
            finally:
                step = ctx.step
            if self._finish(session, ctx):
                savepoint.commit()
            else:
                savepoint.rollback()
        except LockBusy as busy:  # a lock a later mail needs is another group's
            savepoint.rollback()
            _busy(row, busy, step)
            raise _Restart from busy
        except NotYet as wait:
            savepoint.rollback()
            batch.deferred.append(row)
            log.info("inbound=%s waits at %s: %s", row.id, step, wait,
                     extra={"inbound": row.id, "step": step})
            return
        except Disposition as disposition:
            savepoint.rollback()
            self._finish_disposition(session, row, disposition, step)
        except Exception as exc:  # noqa: BLE001 - quarantine, never lose the mail
            if is_conflict(exc) and batch.conflicts[row.id] < CONFLICT_RETRIES:
                # Run it again in a new transaction: that releases the locks of the mails
                # before it, which a deadlock needs, and sees what the other worker committed.
                batch.conflicts[row.id] += 1
                savepoint.rollback()
                log.info("inbound=%s met a concurrent write at step %s; processing it again "
                         "(%s)", row.id, step, _describe(exc).splitlines()[0],
                         extra={"inbound": row.id, "step": step})
                raise _Restart from exc
            if is_unavailable(exc):
                raise
            savepoint.rollback()
            self._finish_failed(session, row, step, _describe(exc))
        batch.prepared.pop(row.id, None)
        metrics.processing_took(self.monotonic() - started)

    def _context(self, session, row: Inbound, batch: _Batch) -> Context:
        envelope = Envelope(row.mail_from, tuple(_json_list(row.rcpt_tos)), row.source, row.peer)
        prepared = batch.prepared.get(row.id)
        earlier_pending = None
        if batch.may_wait:
            # A mail of this batch already waits (it may be the one this mail answers), or
            # another worker holds earlier mail.
            earlier_pending = lambda: bool(batch.deferred) or self._earlier_elsewhere(  # noqa: E731
                session, row.id)
        if prepared is not None:
            return Context(session=session, desk=self.desk, inbound=row, envelope=envelope,
                           raw=prepared.raw, now=self.clock(), mail=prepared.mail,
                           readings=prepared.readings, earlier_pending=earlier_pending)
        raw = inbound.raw_of(row, self.desk.blobs, session)
        return Context(session=session, desk=self.desk, inbound=row, envelope=envelope,
                       raw=raw, now=self.clock(), earlier_pending=earlier_pending)

    def _earlier_elsewhere(self, session, inbound_id: int) -> bool:
        """Another live worker (a claim younger than the claim timeout) holds earlier mail."""
        return inbound.earlier_elsewhere(session, inbound_id, self.holder,
                                         self.clock() - self._claim_timeout)

    def _wait_for_earlier(self, inbound_id: int) -> None:
        """Wait until no other worker holds mail stored before ``inbound_id``, at most
        ``WAIT_FOR_EARLIER_SECONDS`` (a worker that died keeps its claims until they time out:
        the waiting mails are then processed as they are)."""
        deadline = self.monotonic() + WAIT_FOR_EARLIER_SECONDS
        while True:
            self._alive_at = self.monotonic()
            with self.db.reader() as session:
                if not self._earlier_elsewhere(session, inbound_id):
                    return
            if self.monotonic() >= deadline:
                log.warning("earlier mail is still claimed by another worker after %.0f s; "
                            "processing the mails that waited for it", WAIT_FOR_EARLIER_SECONDS)
                return
            time.sleep(WAIT_POLL_SECONDS)

    def _finish(self, session, ctx: Context, fast: bool = False) -> bool:
        """Record the mail as processed; False when the claim was lost. ``fast``: in a group
        without savepoints, which logs and counts its mails once committed, and runs a mail
        whose claim was lost again in a savepoint (which warns)."""
        ticket_id = ctx.ticket.id if ctx.ticket else None
        if not self._end(session, ctx.inbound.id, inbound.PROCESSED, ctx.now,
                         outcome="; ".join(ctx.outcome), ticket_id=ticket_id,
                         message_id=ctx.mail.message_id, quiet=fast):
            return False
        if not fast:
            self._processed(ctx)
        return True

    @staticmethod
    def _processed(ctx: Context) -> None:
        ticket_id = ctx.ticket.id if ctx.ticket else None
        log.info("processed inbound=%s message_id=%s ticket=%s: %s", ctx.inbound.id,
                 ctx.mail.message_id, ticket_id, "; ".join(ctx.outcome),
                 extra={"inbound": ctx.inbound.id, "ticket": ticket_id})
        metrics.processed(outcome_of(ctx))

    def _finish_disposition(self, session, row: Inbound, disposition: Disposition,
                            step: str) -> None:
        status = inbound.DISCARDED if isinstance(disposition, Discard) else inbound.QUARANTINED
        if self._end(session, row.id, status, self.clock(), outcome=disposition.reason,
                     step=step if isinstance(disposition, Quarantine) else None,
                     error=disposition.reason if status == inbound.QUARANTINED else None):
            log.info("%s inbound=%s at %s: %s", status, row.id, step, disposition.reason,
                     extra={"inbound": row.id, "step": step})
            metrics.processed("duplicate" if status == inbound.DISCARDED else "quarantined")

    def _finish_failed(self, session, row: Inbound, step: str, error: str) -> None:
        if self._end(session, row.id, inbound.QUARANTINED, self.clock(), step=step,
                     error=f"{error} (attempt {row.attempts})",
                     outcome=f"quarantined at step {step}"):
            log.error("quarantined inbound=%s at step %s (attempt %s): %s",
                      row.id, step, row.attempts, error, extra={"inbound": row.id, "step": step})
            metrics.processed("quarantined")

    def _end(self, session, inbound_id: int, status: str, now, *, quiet: bool = False,
             **fields) -> bool:
        """Record how the mail ended; False (and a warning, unless ``quiet``: the mail is run
        again) when this worker no longer holds its claim: the caller then rolls back what it
        wrote for the mail."""
        if inbound.finish(session, inbound_id, self.holder, status, now, **fields):
            return True
        if quiet:
            return False
        log.warning("inbound=%s is no longer this worker's (its claim went unrenewed for the "
                    "claim timeout and another worker took it); what this worker wrote for it "
                    "is rolled back", inbound_id)
        return False

    def _give_back(self, exc: Exception) -> None:
        log.warning("processing stopped (%s); the claimed mails will be retried", exc)
        try:
            with self.db.session() as session:
                inbound.give_back(session, self.holder)
        except Exception:  # noqa: BLE001 - the claim times out by itself
            pass

    def warm_up(self) -> None:
        """Load the parser, the language model and the templates before claiming anything, so
        that the first mail after a restart is not the one a crash loop keeps catching."""
        from postdesk.mail.language import detect_language  # noqa: PLC0415

        parse(b"From: a@b.example\r\nSubject: warm\r\n\r\nBonjour, hello.\r\n")
        detect_language("Bonjour, je n'arrive pas à me connecter à mon compte.")
        self.desk.notifier.renderer.preview("ticket_created", self.desk.settings.desk.locale)

    def run(self, stop: threading.Event, wake: threading.Event) -> None:
        """Loop until ``stop``: process what is queued, then wait to be woken (or poll)."""
        try:
            self.warm_up()
        except Exception:  # noqa: BLE001 - warming up is an optimisation only
            log.exception("worker warm-up failed")
        self._start_up(stop)
        halt = threading.Event()  # the renewals end with this loop, not before
        supervise("worker-claims", lambda: self._keep_claims(halt), stopping=halt.is_set)
        try:
            while not stop.is_set():
                wake.clear()  # before looking: a mail stored from now on wakes the next wait
                self._alive_at = self.monotonic()
                try:
                    if self.monotonic() - self._released_at >= self._release_every:
                        self.release_stale_claims()
                    busy = self.process_batch()
                except Exception:  # noqa: BLE001 - survive outages; the mail stays queued
                    log.exception("worker cycle failed; retrying")
                    stop.wait(RETRY_PAUSE_SECONDS)
                    busy = 0
                if busy:
                    fault_point("worker")
                if not busy or self._drained:  # a mail stored since rang ``wake``
                    wake.wait(self.settings.poll_interval)
        finally:
            halt.set()

    def _start_up(self, stop: threading.Event) -> None:
        """``recover`` and ``_give_back_own``, tried again while the store is out (an outage
        at start is not a death of the worker)."""
        while not stop.is_set():
            try:
                self.recover()
                self._give_back_own()
                return
            except Exception as exc:  # noqa: BLE001 - an outage; try again
                if not is_unavailable(exc):
                    raise
                log.warning("worker start-up: store unavailable, retrying: %s",
                            str(exc).splitlines()[0][:300])
                stop.wait(RETRY_PAUSE_SECONDS)

    def _give_back_own(self) -> None:
        """At the start of ``run``, this worker holds nothing: claims under its name are left
        by a run that died (its supervisor starts ``run`` again), and go back to the queue."""
        with self.db.session() as session:
            given = inbound.give_back(session, self.holder)
        if given:
            log.warning("gave back %d mails this worker held when its loop stopped", given)


def outcome_of(ctx: Context) -> str:
    """How a processed mail counts in ``postdesk_mails_processed_total``."""
    if ctx.automatic:
        return "automatic"
    if ctx.decision is not None and ctx.decision.action == NEW and ctx.ticket is not None:
        return "ticket"
    return "reply"


def _describe(exc: Exception) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


def _json_list(text: str) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []
