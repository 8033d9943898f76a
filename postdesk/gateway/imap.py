"""Watch shared mailboxes over IMAP and hand every mail to the intake exactly once.

The only module of postdesk that imports imapclient. One ``MailboxPoller`` per configured mailbox
runs in its own thread: it holds the mailbox's lease (one process polls a mailbox), selects the
inbox and the Sent folder, fetches what is new since the stored UID cursor with ``BODY.PEEK[]``,
hands the raw bytes to the intake and only after it returned flags the mail (``\\Seen`` and
``$Postdesk``) or moves it to the ``processed`` folder, then saves the cursor. It waits with IDLE
(or polls), reconnects with capped, jittered backoff and never blocks its caller.
``check_mailbox`` answers ``postdesk imap check`` with a report, never a traceback.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Protocol

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientError, LoginError

from postdesk.errors import ConfigError, PostdeskError, TempFail
from postdesk.mail.envelope import Envelope

if TYPE_CHECKING:
    from postdesk.config import ImapSettings

log = logging.getLogger(__name__)

MARK = b"$Postdesk"  # keyword on every mail we stored: skipped by later searches
DONE_FLAGS = (b"\\Seen", MARK)
BATCH_BYTES = 8_000_000  # bodies are fetched in batches of about this many bytes
BATCH_MAX = 100  # ... and at most this many mails
SIZE_CHUNK = 500  # UIDs per RFC822.SIZE fetch (keeps command lines short)
IDLE_RESTART = 300.0  # leave and re-enter IDLE every 5 min at most (RFC 2177 allows 29)
IDLE_RECHECK = 1.0  # the first IDLE after news lasts this long, then twice as long each time
IDLE_STEP = 0.25  # seconds per idle_check(): how soon stop() is noticed
SENT_POLL_MAX = 15.0  # with IDLE on the inbox, the Sent folder is swept at least this often
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
NETWORK_ERRORS = (IMAPClientError, OSError)  # IMAP4.abort, resets and socket timeouts included


class Intake(Protocol):
    def store_imap(self, raw: bytes, envelope: Envelope, key: tuple[str, str, int, int]) -> int: ...


class CursorStore(Protocol):
    def load_cursor(self, mailbox: str, folder: str) -> tuple[int, int] | None: ...
    def save_cursor(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None: ...


class Lease(Protocol):
    def acquire(self, name: str, holder: str, ttl_seconds: float) -> bool: ...
    def release(self, name: str, holder: str) -> None: ...


class LeaseLost(Exception):
    """Another live process holds this mailbox's lease: stop polling and wait."""


def connect(settings: ImapSettings, timeout: float | None = None) -> IMAPClient:
    """Open, secure and log in one connection; the password is read here and never logged."""
    password, timeout = _password(settings), timeout or CONNECT_TIMEOUT
    context = None if settings.security == "none" else ssl.create_default_context()
    client = IMAPClient(settings.host, port_of(settings), ssl=settings.security == "tls",
                        ssl_context=context, timeout=SocketTimeout(timeout, READ_TIMEOUT))
    try:
        if settings.security == "starttls":
            client.starttls(context)
        client.login(settings.username, password)
    except BaseException:
        _close(client, polite=False)
        raise
    return client


def port_of(settings: ImapSettings) -> int:
    """The configured port, or the usual one for the security (993 for TLS, 143 otherwise)."""
    return settings.port or (993 if settings.security == "tls" else 143)


def _password(settings: ImapSettings) -> str:
    try:
        return os.environ[settings.password_env]
    except KeyError:
        raise ConfigError(f"imap.{settings.name}.password_env",
                          f"environment variable {settings.password_env} is not set") from None


def _close(client: IMAPClient, polite: bool = True) -> None:
    try:
        client.logout() if polite else client.shutdown()
    except Exception:  # the connection is gone already; nothing left to close cleanly
        try:
            client.shutdown()
        except Exception:
            pass


class MailboxPoller:
    """Polls one mailbox in its own thread; ``run_once`` does one sweep in the caller's thread."""

    def __init__(self, settings: ImapSettings, intake: Intake, cursors: CursorStore, lease: Lease,
                 *, lease_ttl: float = 60.0, backoff: tuple[float, float] = (1.0, 60.0)) -> None:
        self.settings, self.intake, self.cursors, self.lease = settings, intake, cursors, lease
        self.lease_ttl, self.backoff = lease_ttl, backoff
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_name = f"imap:{settings.name}"
        self.state = "stopped"  # waiting-lease, connecting, sweeping, idle, polling, backoff
        self._renew_every = lease_ttl / 3
        self._client: IMAPClient | None = None
        self._selected: str | None = None
        self._folders: list[tuple[str, str]] = []
        self._held, self._renewed, self._news_at = False, 0.0, 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"imap-{self.settings.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Finish the mail in hand, log out and release the lease; a stuck read is cut off."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is None:
            self._finish()
            return
        thread.join(timeout / 2)
        client = self._client
        if thread.is_alive() and client is not None:
            try:  # wakes a read blocked on a slow server
                client.socket().shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
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
        now = time.monotonic()
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
        if self._client is not None:
            return
        self.state = "connecting"
        self._client = client = connect(self.settings)
        self._selected, self._news_at = None, time.monotonic()
        target, sent = self.settings.processed, self.settings.sent
        if target and not client.folder_exists(target):
            client.create_folder(target)
        self._folders = [(self.settings.inbox, "imap")]  # the inbox last: selected for IDLE
        if sent and client.folder_exists(sent):
            self._folders.insert(0, (sent, "imap-sent"))
        elif sent:
            log.error("imap %s: Sent folder %r does not exist", self.settings.name, sent)
        log.info("imap %s: connected to %s:%s (idle=%s, move=%s)", self.settings.name,
                 self.settings.host, port_of(self.settings),
                 client.has_capability("IDLE"), client.has_capability("MOVE"))

    def _disconnect(self, polite: bool = True) -> None:
        client, self._client, self._selected = self._client, None, None
        if client is not None:
            _close(client, polite)

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
        for folder, kind in self._folders:
            if self._stopping.is_set():
                break
            counts[folder] = self._sweep(folder, kind)
        return counts

    def _sweep(self, folder: str, kind: str) -> int:
        validity, last = self._open(folder)
        stored = 0
        for batch in self._batches(self._new_uids(last)):
            stored += self._take(folder, kind, validity, batch)
            if self._stopping.is_set():
                break
            self._renew(when_due=True)
        return stored

    def _open(self, folder: str) -> tuple[int, int]:
        info = self._client.select_folder(folder)
        self._selected = folder
        validity = int(info[b"UIDVALIDITY"])
        cursor = self.cursors.load_cursor(self.settings.name, folder)
        if cursor is not None and cursor[0] == validity:
            return validity, cursor[1]
        if cursor is not None:
            log.warning("imap %s/%s: UIDVALIDITY changed %s -> %s, cursor restarts",
                        self.settings.name, folder, cursor[0], validity)
            self.cursors.save_cursor(self.settings.name, folder, validity, 0)
        return validity, 0

    def _new_uids(self, last: int) -> list[int]:
        """UIDs after the cursor, except those we flagged; with a ``processed`` folder a flagged
        mail still in the inbox was not moved yet, so it is taken again (the key dedupes)."""
        criteria = ["UID", f"{last + 1}:*"]
        if not self.settings.processed:
            criteria += ["UNKEYWORD", MARK.decode()]
        self._client.noop()  # a selected session's view is stale until the server is asked
        found = self._client.search(criteria)
        return sorted(uid for uid in found if uid > last)  # "N:*" always matches the last mail

    def _batches(self, uids: list[int]):
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), SIZE_CHUNK):
            found = self._client.fetch(uids[start:start + SIZE_CHUNK], ["RFC822.SIZE"])
            sizes.update((uid, data.get(b"RFC822.SIZE", 0)) for uid, data in found.items())
        batch, total = [], 0
        for uid in uids:
            if batch and (total + sizes.get(uid, 0) > BATCH_BYTES or len(batch) >= BATCH_MAX):
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += sizes.get(uid, 0)
        if batch:
            yield batch

    def _take(self, folder: str, kind: str, validity: int, uids: list[int]) -> int:
        fetched = self._client.fetch(uids, ["BODY.PEEK[]"])
        done: list[int] = []
        try:
            for uid in uids:
                raw = fetched.get(uid, {}).get(b"BODY[]")
                if self._stopping.is_set():
                    break
                if raw is not None:  # None: expunged by someone else meanwhile
                    self._store(folder, kind, validity, uid, raw)
                    done.append(uid)
        except Exception:  # TempFail: what the intake took before it is acknowledged
            self._acknowledge(folder, validity, done)
            raise
        self._acknowledge(folder, validity, done)
        return len(done)

    def _store(self, folder: str, kind: str, validity: int, uid: int, raw: bytes) -> None:
        name = self.settings.name
        envelope = Envelope(mail_from="", rcpt_tos=(), source=f"{kind}:{name}/{folder}")
        stored_id = self.intake.store_imap(raw, envelope, (name, folder, validity, uid))
        log.info("imap %s/%s uid %s: stored as inbound %s", name, folder, uid, stored_id)

    def _acknowledge(self, folder: str, validity: int, uids: list[int]) -> None:
        if not uids:
            return
        self._client.add_flags(uids, DONE_FLAGS, silent=True)
        if self.settings.processed and folder == self.settings.inbox:
            self._move(uids, self.settings.processed)
        self.cursors.save_cursor(self.settings.name, folder, validity, max(uids))

    def _move(self, uids: list[int], target: str) -> None:
        client = self._client
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        if client.has_capability("UIDPLUS"):  # a plain EXPUNGE would remove others' mail too
            client.uid_expunge(uids)

    def _wait_for_mail(self) -> None:
        if self.settings.idle and self._client.has_capability("IDLE"):
            self._idle(self._idle_seconds())
        else:
            self.state = "polling"
            self._pause(self.settings.poll_seconds)

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            self._stopping.wait(min(left, self._renew_every))
            self._renew(when_due=True)

    def _idle_seconds(self) -> float:
        """1 s right after news, then doubling: Dovecot 2.3 may never announce a mail committed
        while we enter IDLE (seen 2-3 times in 100), so a fresh SEARCH soon after activity
        catches it; the cap bounds the wait for that rare mail (and sweeps the Sent folder)."""
        cap = min(self.settings.poll_seconds, SENT_POLL_MAX) if self.settings.sent else IDLE_RESTART
        return min(cap, max(IDLE_RECHECK, time.monotonic() - self._news_at))

    def _idle(self, seconds: float) -> None:
        client = self._client
        if self._selected != self.settings.inbox:
            client.select_folder(self.settings.inbox)
            self._selected = self.settings.inbox
        client.idle()
        self.state = "idle"
        log.debug("imap %s: IDLE for up to %.1fs", self.settings.name, seconds)
        try:
            self._idle_wait(seconds)
        finally:
            client.idle_done()  # raises IMAP4.abort when the connection died meanwhile

    def _idle_wait(self, seconds: float) -> None:
        """Wait for news in short steps (so stop() is prompt), renewing the lease when due."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            step, started = min(IDLE_STEP, left), time.monotonic()
            responses = self._client.idle_check(timeout=step)
            if any(response[0] != b"OK" for response in responses):
                log.debug("imap %s: IDLE woke: %s", self.settings.name, responses)
                return  # EXISTS, EXPUNGE, FETCH or BYE: sweep (or learn the server left)
            if not responses and step >= 0.1 and time.monotonic() - started < step / 2:
                return  # empty long before the timeout: dead connection (imapclient #565)
            self._renew(when_due=True)


STATUS_ITEMS = ("UIDVALIDITY", "UIDNEXT", "MESSAGES", "UNSEEN")
_EXPLAIN = (
    (ConfigError, "{exc}"),
    (LoginError, "login refused for {user} on {where} (wrong user or password?): {exc}"),
    (ssl.SSLError, "TLS failure with {where}: {exc}"),
    (socket.gaierror, "host {host} not found: {exc}"),
    (TimeoutError, "no answer from {where} (timed out)"),
    (ConnectionRefusedError, "connection refused by {where}: nothing listens there"),
    (OSError, "cannot reach {where}: {exc}"),
    (IMAPClientError, "IMAP error from {where}: {exc}"),
    (Exception, "unexpected error with {where}: {exc!r}"),
)


def check_mailbox(settings: ImapSettings, timeout: float | None = None) -> dict:
    """Log in and describe the mailbox for ``postdesk imap check``; errors become ``error``."""
    report = {"mailbox": settings.name, "host": settings.host, "port": port_of(settings),
              "security": settings.security, "ok": False}
    try:
        client = connect(settings, timeout)
    except Exception as exc:
        return {**report, "error": explain(exc, settings)}
    try:
        return {**report, **_inspect(client, settings), "ok": True}
    except Exception as exc:
        return {**report, "error": explain(exc, settings)}
    finally:
        _close(client)


def _inspect(client: IMAPClient, settings: ImapSettings) -> dict:
    wanted = [folder for folder in (settings.inbox, settings.sent, settings.processed) if folder]
    exists = {folder: client.folder_exists(folder) for folder in wanted}
    inbox = {}
    if exists[settings.inbox]:
        status = client.folder_status(settings.inbox, STATUS_ITEMS)
        inbox = {key.decode().lower(): value for key, value in status.items()}
    return {"folders": sorted(name for _flags, _sep, name in client.list_folders()),
            "inbox": inbox, "configured_folders": exists,
            "idle": client.has_capability("IDLE"), "move": client.has_capability("MOVE")}


def explain(exc: BaseException, settings: ImapSettings) -> str:
    """One line that says what went wrong with this mailbox, without the password."""
    template = next(text for kind, text in _EXPLAIN if isinstance(exc, kind))
    text = template.format(exc=exc, user=settings.username, host=settings.host,
                           where=f"{settings.host}:{port_of(settings)}")
    password = os.environ.get(settings.password_env)
    return text.replace(password, "***") if password else text
