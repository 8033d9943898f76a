"""Accept: store the exact raw bytes durably, and only then say yes (250, exit 0, IMAP flag).

:class:`Intake` writes one or many mails in one transaction. :class:`GroupCommitter` is the
asynchronous front the SMTP server awaits: mails that arrive together share one commit (up to
``max_batch`` mails and ``max_batch_bytes`` bytes: the database driver copies a batch's bytes
while it writes them), and no caller is answered before the commit that holds its mail. A
store that cannot take the mail raises :class:`TempFail` (the sender retries); nothing is
half-written.

A caller that waited longer than ``timeout`` for its commit is answered :class:`TempFail`
(SMTP 451). The writer first marks each mail it takes as running
(``Future.set_running_or_notify_cancel``): a mail whose caller gave up before that is skipped
(its sender got 451 and sends it again); once running, the commit decides. A commit that lands
after its caller got 451 keeps the mail, and the sender's retry is a second copy that the
worker discards as a duplicate (same Message-ID, or same bytes). The writer threads are
supervised (:mod:`postdesk.supervision`): none dies of a late answer, and one that dies of
anything else is started again.

On PostgreSQL several writers (``[smtp] store_writers``, 1 by default) may take batches from
the one queue, so that a batch gathered while another commit waits for its ``fsync`` is written
at once instead of a whole commit later; each batch keeps its limits (so the driver holds at
most ``writers`` batches' bytes at once, and never more than the edge's in-flight budget).
On SQLite, which has one writer at a time, there is one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import queue
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import IntegrityError

from postdesk import metrics
from postdesk.errors import TempFail
from postdesk.mail.envelope import Envelope
from postdesk.store import inbound
from postdesk.store.blobs import BlobStore
from postdesk.store.clock import utcnow
from postdesk.store.db import Database
from postdesk.store.errors import temp_fail_on_outage
from postdesk.store.priority import WritePriority
from postdesk.supervision import Supervised, fault_point

log = logging.getLogger("postdesk.intake")

MAX_BATCH_BYTES = 32 * 1024 * 1024


def writer_name(number: int) -> str:
    """The supervised name of writer ``number`` (from 0): ``intake-writer``, ``intake-writer-2``…"""
    return "intake-writer" if number == 0 else f"intake-writer-{number + 1}"


def imap_key_text(key: tuple[str, str, int, int]) -> str:
    return "\x1f".join(str(part) for part in key)


class Intake:
    def __init__(self, db: Database, blobs: BlobStore,
                 on_stored: Callable[[], None] | None = None,
                 priority: WritePriority | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.on_stored = on_stored or (lambda: None)
        self.priority = priority if db.is_sqlite else None

    def store(self, raw: bytes, envelope: Envelope) -> int:
        return self.store_many([(raw, envelope)])[0]

    def store_many(self, mails: Sequence[tuple[bytes | bytearray, Envelope]],
                   imap_key: str | None = None) -> list[int]:
        """Store the mails in one commit; returns their ids. Raises TempFail on store trouble."""
        records = [self._record(raw, env, imap_key) for raw, env in mails]
        right_of_way = self.priority.announce() if self.priority else contextlib.nullcontext()
        with temp_fail_on_outage("store unavailable"), right_of_way:
            with self.db.transaction() as connection:
                ids = inbound.add_raw(connection, records, utcnow())
        for stored_id, (raw, env) in zip(ids, mails):
            log.debug("stored inbound=%s size=%s source=%s", stored_id, len(raw), env.source)
            metrics.received(env.source)
        self.on_stored()
        return ids

    def store_imap(self, raw: bytes, envelope: Envelope, key: tuple[str, str, int, int]) -> int:
        """Store a mail fetched over IMAP; the same (mailbox, folder, uidvalidity, uid) once."""
        text = imap_key_text(key)
        with temp_fail_on_outage("store unavailable"):
            with self.db.reader() as session:
                found = inbound.id_for_imap_key(session, text)
            if found is not None:
                return found
            try:
                return self.store_many([(raw, envelope)], imap_key=text)[0]
            except IntegrityError:
                with self.db.reader() as session:
                    return inbound.id_for_imap_key(session, text)

    def _record(self, raw: bytes | bytearray, env: Envelope,
                imap_key: str | None) -> inbound.RawMail:
        digest = hashlib.sha256(raw).hexdigest()
        if not self.blobs.enabled:
            return inbound.RawMail(raw, env, digest, len(raw), imap_key=imap_key)
        try:
            path = self.blobs.put(raw, digest)
        except OSError as exc:
            raise TempFail(f"insufficient storage for the raw mail: {exc.strerror or exc}") from exc
        return inbound.RawMail(None, env, digest, len(raw), blob_path=path, imap_key=imap_key)


class GroupCommitter:
    """Batch concurrent SMTP accepts into shared commits, from ``writers`` writer threads."""

    def __init__(self, intake: Intake, max_batch: int = 64, timeout: float = 30.0,
                 max_batch_bytes: int = MAX_BATCH_BYTES, writers: int = 1) -> None:
        self.intake = intake
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.timeout = timeout
        self._queue: queue.Queue = queue.Queue()
        self._stopping = False
        self._threads = [Supervised(writer_name(n), self._run, stopping=lambda: self._stopping)
                         for n in range(max(1, writers))]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """No new mail; the writers finish what is queued and end (one stop mark, which each
        writer puts back for the next)."""
        self._stopping = True
        self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    @property
    def writers(self) -> int:
        return len(self._threads)

    @property
    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    async def __call__(self, raw: bytes | bytearray, envelope: Envelope) -> int:
        if self._stopping:
            raise TempFail("shutting down")
        # ``taken``: the writer's gate (running once its commit begins; a mail cancelled
        # before that is skipped). ``answer``: what this session awaits, set on its loop.
        taken: concurrent.futures.Future = concurrent.futures.Future()
        answer = asyncio.get_running_loop().create_future()
        self._queue.put((raw, envelope, taken, answer))
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for wraps the future in one
            # more and answers one loop turn later (docs/performance.md, round V).
            async with asyncio.timeout(self.timeout):
                return await answer
        except TimeoutError:
            # The sender retries; if the commit lands later, the retry is deduplicated.
            raise TempFail(f"store did not answer within {self.timeout:.0f} s") from None
        finally:
            taken.cancel()  # given up before its commit began: not stored; else no effect

    def _run(self) -> None:
        item = self._queue.get()
        while item is not None:
            batch, item = self._gather(item)
            self._commit(batch)
            if item is None:
                item = self._queue.get()
        self._queue.put(None)  # the stop mark, for the other writers

    def _gather(self, first: tuple) -> tuple[list, tuple | None]:
        """``first`` and what else is queued, within the batch limits; and the item that did not
        fit (None when the queue ran dry; the stop mark stays queued)."""
        batch, size = [first], len(first[0])
        while len(batch) < self.max_batch:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return batch, None
            if more is None:
                self._queue.put(None)
                return batch, None
            if size + len(more[0]) > self.max_batch_bytes:
                return batch, more
            batch.append(more)
            size += len(more[0])
        return batch, None

    def _commit(self, batch: list) -> None:
        taken = [item for item in batch if item[2].set_running_or_notify_cancel()]
        if len(taken) < len(batch):
            log.warning("%d mails answered 451 (store timeout) before their commit began are "
                        "not stored; their senders send them again", len(batch) - len(taken))
        if not taken:
            return
        batch = taken
        try:
            ids = self.intake.store_many([(raw, env) for raw, env, _, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter must get an answer
            error = exc if isinstance(exc, TempFail) else TempFail(f"store failed: {exc}")
            if not isinstance(exc, TempFail):
                log.exception("storing %d accepted mails failed", len(batch))
            _answer(batch, [error] * len(batch))
            return
        fault_point("intake-writer")
        _answer(batch, ids)


def _answer(batch: list, outcomes: list) -> None:
    """Answer a batch's sessions: one wake-up of their loop for the whole batch (not one per
    mail, as a ``wrap_future`` per mail would)."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for (_, _, taken, answer), outcome in zip(batch, outcomes):
        _settle(taken, outcome)
        by_loop.setdefault(answer.get_loop(), []).append((answer, outcome))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_deliver, answers)


def _deliver(answers: list) -> None:
    for answer, outcome in answers:
        if not answer.done():  # else its session gave up (store timeout) or went away
            _settle(answer, outcome)


def _settle(future, outcome) -> None:
    """Give ``future`` (a thread's or an asyncio one) its id, or its error."""
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
