"""The sender: delivers due outbox rows, retries temporary failures with backoff, gives up loudly.

A row that fails temporarily waits ``retry_base_seconds * 2**(attempt-1)`` (capped at
``retry_max_seconds``) and is marked ``failed`` after ``max_attempts``; a permanent failure is
``failed`` at once. Ops see failed rows in ``postdesk outbox list`` and re-queue them with
``postdesk outbox retry``. The rows of one batch share one relay connection, closed when the
batch ends (see ``SmtpTransport``). Delivered rows are marked sent a few at a time, in one
transaction (``MARK_SENT_EVERY``, ``MARK_SENT_WITHIN_SECONDS``): a commit per mail took most of
the sender's time, and on SQLite each one took the write lock the SMTP edge waits for. A crash
between delivery and that update sends those mails (same Message-IDs) again: at-least-once,
which receiving clients deduplicate.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from postdesk import metrics
from postdesk.config import OutboundSettings
from postdesk.notify.transports import PermanentError, RelayUnavailable, TransientError
from postdesk.store import claims, outbox
from postdesk.store.clock import utcnow
from postdesk.store.db import Database
from postdesk.supervision import fault_point

log = logging.getLogger("postdesk.sender")

# Delivered rows are marked sent together once this many wait, or once the first has waited
# this long, and when the batch ends: at most this many are sent again after a crash.
MARK_SENT_EVERY = 10
MARK_SENT_WITHIN_SECONDS = 1.0
# Rows a crashed sender left ``sending`` go back to the queue at the first batch and then at
# most this often (by the sender's clock): not in every batch's transaction, two statements
# more in each, and on SQLite a longer hold of the write lock the SMTP edge waits for.
STALE_AFTER = timedelta(minutes=10)
RELEASE_EVERY = timedelta(seconds=60)


class _Delivered:
    """The rows of a batch delivered and not yet marked sent."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self.ids: list[int] = []
        self.since = 0.0
        self.monotonic = monotonic

    def add(self, outbox_id: int) -> None:
        if not self.ids:
            self.since = self.monotonic()
        self.ids.append(outbox_id)

    def due(self) -> bool:
        return len(self.ids) >= MARK_SENT_EVERY or (
            bool(self.ids) and self.monotonic() - self.since >= MARK_SENT_WITHIN_SECONDS)

    def take(self) -> list[int]:
        ids, self.ids = self.ids, []
        return ids


class Sender:
    """``clock`` dates what the sender writes (due, retry and sent times: the wall clock, aware
    UTC); ``monotonic`` measures how long delivered rows have waited to be marked sent. Both
    are the real clocks unless a test passes its own."""

    def __init__(self, db: Database, transport, settings: OutboundSettings, batch: int = 50, *,
                 clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.clock = clock
        self.monotonic = monotonic
        self.transport = transport
        self.settings = settings
        self.batch = batch
        self.holder = claims.holder_name(self)
        self._released_at: datetime | None = None  # the last release of stale rows

    def send_due(self, now=None) -> int:
        """Deliver one batch of due rows; returns how many were attempted."""
        now = now or self.clock()
        release = self._released_at is None or not \
            self._released_at <= now < self._released_at + RELEASE_EVERY
        with self.db.session() as session:
            if release:
                dead = [h for h in outbox.sending_holders(session) if claims.is_dead(h)]
                outbox.release_stale(session, now, STALE_AFTER, dead)
            rows = outbox.claim_due(session, now, self.batch, postgres=not self.db.is_sqlite,
                                    holder=self.holder)
        if release:  # committed: a transaction that failed releases again next time
            self._released_at = now
        delivered = _Delivered(self.monotonic)
        try:
            for index, row in enumerate(rows):  # one relay connection for the batch
                if delivered.due():
                    self._mark_sent(delivered.take())
                try:
                    if self._deliver(row):
                        delivered.add(row.id)
                except RelayUnavailable as exc:
                    # An MTA marks the host down: the rest of the batch waits its turn
                    # instead of each mail waiting for its own connect timeout.
                    for waiting in rows[index:]:
                        self._retry(waiting, str(exc))
                    break
        except BaseException:
            # Mark what was delivered, without hiding why the batch stopped.
            ids = delivered.take()
            try:
                self._mark_sent(ids)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                log.exception("could not mark %d delivered mails sent; they will be sent "
                              "again", len(ids))
            raise
        else:
            self._mark_sent(delivered.take())
        finally:
            self.transport.close()
        return len(rows)

    def send_until_idle(self, now=None, limit: int = 10_000) -> int:
        total = 0
        while total < limit:
            n = self.send_due(now)
            if not n:
                return total
            total += n
        return total

    def _deliver(self, row) -> bool:
        """Hand ``row`` to the relay; True once delivered (it is marked sent later)."""
        metrics.send_attempt()
        try:
            self.transport.deliver(row.raw, row.mail_from, json.loads(row.rcpts))
        except RelayUnavailable:
            metrics.send_failure("relay-unavailable")
            raise
        except TransientError as exc:
            metrics.send_failure("temporary")
            self._retry(row, str(exc))
            return False
        except PermanentError as exc:
            metrics.send_failure("permanent")
            self._fail(row, str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - one mail's fault stays that mail's
            # Not the relay's answer: a fault in handing this mail over. It is retried with
            # the usual backoff (then failed), and the rest of the batch goes on instead of
            # waiting, claimed, for the stale-claim release.
            log.exception("outbox=%s could not be handed over", row.id)
            metrics.send_failure("temporary")
            self._retry(row, f"{type(exc).__name__}: {exc}"[:500])
            return False
        log.info("sent outbox=%s template=%s message_id=%s ticket=%s",
                 row.id, row.template, row.message_id, row.ticket_id,
                 extra={"ticket": row.ticket_id})
        return True

    def _mark_sent(self, ids: list[int]) -> None:
        """Mark the delivered rows sent, in one transaction."""
        if ids:
            with self.db.session() as session:
                outbox.mark_sent(session, ids, self.clock())

    def _retry(self, row, error: str) -> None:
        if row.attempts >= self.settings.max_attempts:
            self._fail(row, f"gave up after {row.attempts} attempts: {error}")
            return
        delay = min(self.settings.retry_base * 2 ** (row.attempts - 1),
                    self.settings.retry_max)
        with self.db.session() as session:
            outbox.mark_retry(session, row.id, self.clock() + timedelta(seconds=delay), error)
        log.warning("deferred outbox=%s attempt=%s retry_in=%.0fs: %s",
                    row.id, row.attempts, delay, error)

    def _fail(self, row, error: str) -> None:
        with self.db.session() as session:
            outbox.mark_failed(session, row.id, error)
        log.error("failed outbox=%s message_id=%s: %s", row.id, row.message_id, error)

    def run(self, stop: threading.Event, wake: threading.Event) -> None:
        """Loop until ``stop``: deliver what is due, then sleep until woken or the next poll."""
        while not stop.is_set():
            wake.clear()  # before looking: a row queued from now on wakes the next wait
            try:
                busy = self.send_due()
            except Exception:  # noqa: BLE001 - the loop must survive a store outage
                log.exception("sender cycle failed; retrying")
                busy = 0
            if busy:
                fault_point("sender")
            if busy < self.batch:  # the queue is drained: a row queued since rang ``wake``
                wake.wait(self.settings.poll_interval)
