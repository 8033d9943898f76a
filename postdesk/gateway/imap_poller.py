"""Decide when each shared mailbox is read: one thread, lease, backoff and IDLE timing per mailbox.

One ``MailboxPoller`` per configured mailbox runs in its own thread and never blocks its caller:
it holds the mailbox's lease (one process polls a mailbox), connects, has an ``ImapSession``
sweep every folder, then waits for mail with IDLE (or polls) and sweeps again; on any error it
drops the connection and retries with capped, jittered backoff. The thread is supervised
(:mod:`postdesk.supervision`): should the loop itself die, it is started again. ``run_once``
does one sweep in the caller's thread. The IMAP work itself is in ``gateway/imap.py``.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from postdesk.errors import PostdeskError, TempFail
from postdesk.gateway.imap import NETWORK_ERRORS, CursorStore, ImapSession, Intake, connect
from postdesk.supervision import Supervised, fault_point

if TYPE_CHECKING:
    from postdesk.config import ImapSettings

log = logging.getLogger("postdesk.gateway.imap")  # the logger of the IMAP edge, session and loop
IDLE_RESTART = 300.0  # leave and re-enter IDLE every 5 min at most (RFC 2177 allows 29)
IDLE_RECHECK = 1.0  # the first IDLE after news lasts this long, then twice as long each time
IDLE_STEP = 0.25  # seconds per idle_check(): how soon stop() is noticed
SENT_POLL_MAX = 15.0  # with IDLE on the inbox, the Sent folder is swept at least this often


class Lease(Protocol):
    def acquire(self, name: str, holder: str, ttl_seconds: float) -> bool: ...
    def release(self, name: str, holder: str) -> None: ...


class LeaseLost(Exception):
    """Another live process holds this mailbox's lease: stop polling and wait."""


class MailboxPoller:
    """Polls one mailbox in its own thread; ``run_once`` does one sweep in the caller's thread.

    ``monotonic`` (seconds; the real clock unless a test passes its own) says when the lease is
    due for renewal; the waits themselves are real (IDLE, backoff, polling)."""

    def __init__(self, settings: ImapSettings, intake: Intake, cursors: CursorStore, lease: Lease,
                 *, lease_ttl: float = 60.0, backoff: tuple[float, float] = (1.0, 60.0),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.intake, self.cursors, self.lease = settings, intake, cursors, lease
        self.lease_ttl, self.backoff, self.monotonic = lease_ttl, backoff, monotonic
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_name = f"imap:{settings.name}"
        self.state = "stopped"  # waiting-lease, connecting, sweeping, idle, polling, backoff
        self._renew_every = lease_ttl / 3
        self._session: ImapSession | None = None
        self._held, self._renewed, self._news_at = False, 0.0, 0.0
        self._stopping = threading.Event()
        self._thread: Supervised | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = Supervised(f"imap-{self.settings.name}", self._run,
                                  stopping=self._stopping.is_set)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Finish the mail in hand, log out and release the lease; a stuck read is cut off."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is None:
            self._finish()
            return
        thread.join(timeout / 2)
        session = self._session
        if thread.is_alive() and session is not None:
            session.cut()
            thread.join(timeout / 2)

    def run_once(self) -> dict[str, int]:
        """Store what is new in every folder once: ``{folder: stored}``; ``{}`` if not leased."""
        try:
            self._renew()
            self._connect()
            return self._sweep_all()
        except LeaseLost:
            return {}
        except NETWORK_ERRORS:
            self._disconnect(polite=False)
            raise

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    self._cycle()
                    failures = 0
                except LeaseLost:
                    self._disconnect()
                    self.state = "waiting-lease"
                    self._stopping.wait(self._renew_every)
                except Exception as exc:  # the thread must outlive every error
                    failures += 1
                    self._recover(exc, failures)
                fault_point("imap")
        finally:
            self._finish()

    def _cycle(self) -> None:
        self._renew()
        self._connect()
        if any(self._sweep_all().values()):
            self._news_at = time.monotonic()
        else:  # wait only once a SEARCH found nothing: IDLE reports what comes after it
            self._wait_for_mail()

    def _recover(self, exc: Exception, failures: int) -> None:
        base, cap = self.backoff
        delay = min(cap, base * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        expected = isinstance(exc, (PostdeskError, *NETWORK_ERRORS))  # else: show the traceback
        password = os.environ.get(self.settings.password_env) or None
        text = str(exc).replace(password, "***") if password else str(exc)
        log.warning("imap %s: %s: %s; retry in %.1fs", self.settings.name, type(exc).__name__,
                    text, delay, exc_info=not expected)
        if not isinstance(exc, TempFail):
            self._disconnect(polite=False)
        self.state = "backoff"
        self._stopping.wait(delay)

    def _renew(self, when_due: bool = False) -> None:
        now = self.monotonic()
        if when_due and now - self._renewed < self._renew_every:
            return
        if not self.lease.acquire(self.lease_name, self.holder, self.lease_ttl):
            if self._held:
                log.warning("imap %s: lease lost to another process", self.settings.name)
            self._held = False
            raise LeaseLost(self.lease_name)
        if not self._held:
            log.info("imap %s: lease taken by %s", self.settings.name, self.holder)
        self._held, self._renewed = True, now

    def _connect(self) -> None:
        if self._session is not None:
            return
        self.state = "connecting"
        self._session = ImapSession(connect(self.settings), self.settings, self.intake,
                                    self.cursors)
        self._news_at = time.monotonic()
        self._session.prepare()  # once held: stop() can cut a slow answer, _recover() closes it

    def _disconnect(self, polite: bool = True) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close(polite)

    def _finish(self) -> None:
        self._disconnect()
        if self._held:
            self._held = False
            try:
                self.lease.release(self.lease_name, self.holder)
            except Exception as exc:  # it expires by itself after the ttl
                log.warning("imap %s: lease not released (%s)", self.settings.name, exc)
        self.state = "stopped"

    def _sweep_all(self) -> dict[str, int]:
        self.state = "sweeping"
        counts = {}
        for folder, kind in self._session.folders:
            if self._stopping.is_set():
                break
            counts[folder] = self._sweep(folder, kind)
        return counts

    def _sweep(self, folder: str, kind: str) -> int:
        session = self._session
        validity, last = session.select(folder)
        stored = 0
        for batch in session.batches(session.new_uids(last)):
            stored += session.take(folder, kind, validity, batch, self._stopping.is_set)
            if self._stopping.is_set():
                break
            self._renew(when_due=True)
        return stored

    def _wait_for_mail(self) -> None:
        if self.settings.idle and self._session.can_idle:
            self._idle(self._idle_seconds())
        else:
            self.state = "polling"
            self._pause(self.settings.poll_interval)

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            self._stopping.wait(min(left, self._renew_every))
            self._renew(when_due=True)

    def _idle_seconds(self) -> float:
        """1 s right after news, then doubling: Dovecot 2.3 may never announce a mail committed
        while we enter IDLE (seen 2-3 times in 100), so a fresh SEARCH soon after activity
        catches it; the cap bounds the wait for that rare mail (and sweeps the Sent folder)."""
        cap = min(self.settings.poll_interval, SENT_POLL_MAX) if self.settings.sent else IDLE_RESTART
        return min(cap, max(IDLE_RECHECK, time.monotonic() - self._news_at))

    def _idle(self, seconds: float) -> None:
        with self._session.idling():
            self.state = "idle"
            log.debug("imap %s: IDLE for up to %.1fs", self.settings.name, seconds)
            self._idle_wait(seconds)

    def _idle_wait(self, seconds: float) -> None:
        """Wait for news in short steps (so stop() is prompt), renewing the lease when due."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            if self._session.idle_news(min(IDLE_STEP, left)):
                return
            self._renew(when_due=True)
