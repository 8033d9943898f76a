"""Speak IMAP to one shared mailbox: connect, select, fetch, hand over, flag or move.

The only module of postdesk that imports imapclient. ``connect`` opens, secures and logs in one
connection with TCP keepalive on. An ``ImapSession`` on that connection lists the folders to read,
keeps each folder's UID cursor (restarting it when UIDVALIDITY changes), fetches what is new with
``BODY.PEEK[]`` in size-bounded batches, hands the raw bytes to the intake and only after it
returned flags the mail (``\\Seen`` and ``$Postdesk``) or moves it to the ``processed`` folder,
then saves the cursor; it also enters and leaves IDLE. When to do all that (thread, lease,
backoff, how long to IDLE) is ``imap_poller.MailboxPoller``'s business.
``check_mailbox`` answers ``postdesk imap check`` with a report, never a traceback.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientError, LoginError

from postdesk.errors import ConfigError
from postdesk.mail.envelope import Envelope

if TYPE_CHECKING:
    from postdesk.config import ImapSettings

log = logging.getLogger(__name__)

MARK = b"$Postdesk"  # keyword on every mail we stored: skipped by later searches
DONE_FLAGS = (b"\\Seen", MARK)
BATCH_BYTES = 8_000_000  # bodies are fetched in batches of about this many bytes
BATCH_MAX = 100  # ... and at most this many mails
SIZE_CHUNK = 500  # UIDs per RFC822.SIZE fetch (keeps command lines short)
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
NETWORK_ERRORS = (IMAPClientError, OSError)  # IMAP4.abort, resets and socket timeouts included
# TCP keepalive: a connection dropped without a FIN or RST (NAT timeout, pulled cable) is seen as
# dead after KEEPALIVE_IDLE + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL = 60 s of silence (an IDLE
# then wakes empty, see ImapSession.idle_news), not at the end of the IDLE (up to 5 min) plus
# READ_TIMEOUT. Constants, not settings: an empty segment every 30 s on a silent connection
# costs nothing, and NAT tables forget a flow only after minutes. Options the platform lacks
# keep the system's defaults.
KEEPALIVE_IDLE = 30  # seconds of silence before the first probe
KEEPALIVE_INTERVAL = 10  # seconds between unanswered probes
KEEPALIVE_COUNT = 3  # unanswered probes before the kernel resets the connection
# Keepalive probes only a silent connection. Bytes we sent that the server never acknowledges
# (it vanished while we wrote a command, a STORE of flags, a LOGOUT) are retransmitted for
# about 15 minutes by default; the TCP user timeout gives up on them after the same minute.
USER_TIMEOUT_MS = (KEEPALIVE_IDLE + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL) * 1000
_KEEPALIVE_OPTIONS = (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                      ("TCP_KEEPCNT", KEEPALIVE_COUNT), ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS))


class Intake(Protocol):
    def store_imap(self, raw: bytes, envelope: Envelope, key: tuple[str, str, int, int]) -> int: ...


class CursorStore(Protocol):
    def load_cursor(self, mailbox: str, folder: str) -> tuple[int, int] | None: ...
    def save_cursor(self, mailbox: str, folder: str, uidvalidity: int, last_uid: int) -> None: ...


def connect(settings: ImapSettings, timeout: float | None = None) -> IMAPClient:
    """Open, secure and log in one connection; the password is read here and never logged."""
    password, timeout = _password(settings), timeout or CONNECT_TIMEOUT
    context = None if settings.security == "none" else ssl.create_default_context()
    client = IMAPClient(settings.host, port_of(settings), ssl=settings.security == "tls",
                        ssl_context=context, timeout=SocketTimeout(timeout, READ_TIMEOUT))
    try:
        _keep_alive(client.socket())
        if settings.security == "starttls":
            client.starttls(context)  # the TLS socket wraps the same descriptor: options stay
        client.login(settings.username, password)
    except BaseException:
        _close(client, polite=False)
        raise
    return client


def _keep_alive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE_OPTIONS:
        if hasattr(socket, name):  # Linux has all four; others may lack some
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


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


class ImapSession:
    """The work on one logged-in connection's folders; used by one thread (``cut`` excepted)."""

    def __init__(self, client: IMAPClient, settings: ImapSettings, intake: Intake,
                 cursors: CursorStore) -> None:
        self.client, self.settings, self.intake, self.cursors = client, settings, intake, cursors
        self.folders: list[tuple[str, str]] = []  # (folder, kind), the inbox last
        self._selected: str | None = None

    @property
    def can_idle(self) -> bool:
        return self.client.has_capability("IDLE")

    def prepare(self) -> None:
        """Create the ``processed`` folder if missing; read the Sent folder first, the inbox last
        (so that it stays selected for IDLE)."""
        client, target, sent = self.client, self.settings.processed, self.settings.sent
        if target and not client.folder_exists(target):
            client.create_folder(target)
        self.folders = [(self.settings.inbox, "imap")]
        if sent and client.folder_exists(sent):
            self.folders.insert(0, (sent, "imap-sent"))
        elif sent:
            log.error("imap %s: Sent folder %r does not exist", self.settings.name, sent)
        log.info("imap %s: connected to %s:%s (idle=%s, move=%s)", self.settings.name,
                 self.settings.host, port_of(self.settings), self.can_idle,
                 client.has_capability("MOVE"))

    def select(self, folder: str) -> tuple[int, int]:
        """Select the folder: ``(UIDVALIDITY, last UID stored)``, 0 when the cursor restarts."""
        info = self.client.select_folder(folder)
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

    def new_uids(self, last: int) -> list[int]:
        """UIDs after the cursor, except those we flagged; with a ``processed`` folder a flagged
        mail still in the inbox was not moved yet, so it is taken again (the key dedupes)."""
        criteria = ["UID", f"{last + 1}:*"]
        if not self.settings.processed:
            criteria += ["UNKEYWORD", MARK.decode()]
        self.client.noop()  # a selected session's view is stale until the server is asked
        found = self.client.search(criteria)
        return sorted(uid for uid in found if uid > last)  # "N:*" always matches the last mail

    def batches(self, uids: list[int]) -> Iterator[list[int]]:
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), SIZE_CHUNK):
            found = self.client.fetch(uids[start:start + SIZE_CHUNK], ["RFC822.SIZE"])
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

    def take(self, folder: str, kind: str, validity: int, uids: list[int],
             stopping: Callable[[], bool]) -> int:
        """Fetch a batch and store it mail by mail; acknowledge what the intake took."""
        fetched = self.client.fetch(uids, ["BODY.PEEK[]"])
        done: list[int] = []
        try:
            for uid in uids:
                raw = fetched.get(uid, {}).get(b"BODY[]")
                if stopping():
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
        self.client.add_flags(uids, DONE_FLAGS, silent=True)
        if self.settings.processed and folder == self.settings.inbox:
            self._move(uids, self.settings.processed)
        self.cursors.save_cursor(self.settings.name, folder, validity, max(uids))

    def _move(self, uids: list[int], target: str) -> None:
        client = self.client
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        if client.has_capability("UIDPLUS"):  # a plain EXPUNGE would remove others' mail too
            client.uid_expunge(uids)

    @contextmanager
    def idling(self) -> Iterator[None]:
        """The inbox selected and in IDLE; leaving it raises IMAP4.abort if the connection died."""
        if self._selected != self.settings.inbox:
            self.client.select_folder(self.settings.inbox)
            self._selected = self.settings.inbox
        self.client.idle()
        try:
            yield
        finally:
            self.client.idle_done()

    def idle_news(self, seconds: float) -> bool:
        """Wait in IDLE up to ``seconds``: True when there is something to sweep (EXISTS, EXPUNGE,
        FETCH) or to learn by trying (BYE, or a dead connection)."""
        started = time.monotonic()
        responses = self.client.idle_check(timeout=seconds)
        if any(response[0] != b"OK" for response in responses):
            log.debug("imap %s: IDLE woke: %s", self.settings.name, responses)
            return True
        # empty long before the timeout: the connection died (imapclient #565)
        return not responses and seconds >= 0.1 and time.monotonic() - started < seconds / 2

    def cut(self) -> None:
        """Shut the socket from another thread: wakes a read blocked on a slow server."""
        try:
            self.client.socket().shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self, polite: bool = True) -> None:
        _close(self.client, polite)


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
