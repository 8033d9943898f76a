"""The SMTP/LMTP edge: receive mail on a socket, store its raw bytes, and only then say 250.

This is the only module that imports aiosmtpd. ``SmtpGateway`` listens on the running asyncio loop
(``postdesk serve`` owns it); its handler refuses cheaply what we can never take (recipients in
domains we do not serve, oversized or empty messages), hands the exact received bytes and the
envelope to an ``Accept`` callable that stores them durably, and answers ``250`` only after that
returned; our own trouble answers ``451``/``452`` so the sender retries. The limits are
aiosmtpd's hooks where it has one: ``SIZE`` is announced by ``handle_EHLO`` and checked by
``handle_MAIL``, so aiosmtpd's own ``data_size_limit`` stays off. DATA is the one command
without a hook while it reads: ``_SmtpSession.smtp_DATA`` replaces aiosmtpd's to read the mail
with ``smtp_data`` (one buffer per mail, not aiosmtpd's list of lines) held against the
in-flight byte budget of ``inflight``: a mail that does not fit, announced with ``SIZE=`` or
not, is answered ``452``; in LMTP mode (RFC 2033) its answer is repeated once per accepted
recipient. A connection past ``[smtp] max_connections`` is answered ``421`` and closed before
aiosmtpd sees it. Every reply is a named constant from ``postdesk.gateway.replies``; the two
that aiosmtpd sends before any hook runs (``503`` for MAIL and RCPT out of sequence) are
rewritten to those in ``push``. What this relies on inside aiosmtpd (``_reader``,
``_set_post_data_state``, the texts rewritten) is pinned: ``aiosmtpd<1.5`` in
pyproject.toml, and ``tests/unit/test_aiosmtpd_pin.py`` fails when that code changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import socket
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, syntax

from postdesk import metrics
from postdesk.errors import TempFail
from postdesk.gateway.inflight import ByteBudget, Hold, declared_size
from postdesk.gateway.replies import (
    R250_QUEUED,
    R250_RECIPIENT_OK,
    R250_SENDER_OK,
    R421_SHUTTING_DOWN,
    R421_TOO_MANY_CONNECTIONS,
    R451_TRY_LATER,
    R452_NO_STORAGE,
    R503_NEED_MAIL,
    R503_NEED_RCPT,
    R503_NESTED_MAIL,
    R550_UNKNOWN_MAILBOX,
    R552_TOO_BIG,
    R553_BAD_RECIPIENT,
    R553_BAD_SENDER,
    R554_LINE_TOO_LONG,
    R554_UNUSABLE,
    Reply,
)
from postdesk.gateway.smtp_data import LINE_TOO_LONG, TOO_BIG, read_data
from postdesk.mail.envelope import Envelope
from postdesk.mail.envelope_lines import header_start

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1024 * 1024  # aiosmtpd's default (1001) refuses bare-LF mail longer than that
MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024  # [smtp] max_bytes_in_flight
MAX_CONNECTIONS = 100  # [smtp] max_connections
BUDGET_WAIT_SECONDS = 10.0  # how long MAIL (with SIZE=) and DATA wait for room before 452
SHUTDOWN_GRACE_SECONDS = 10.0
_AIOSMTPD_LOGGER = "mail.log"  # logs every command line, addresses included, at INFO
# "database or disk is full" is SQLite's SQLITE_FULL (its file or a size limit).
_NO_SPACE_TEXT = re.compile(r"space|insufficient storage|disk (?:is )?full|quota", re.IGNORECASE)
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# Permanent refusals of a mail (unknown mailbox, too big, malformed, unusable): logged at INFO
# with the reply, once per reply (an LMTP reply repeated per recipient too), without addresses.
_REFUSALS = frozenset({"550", "552", "553", "554"})

# aiosmtpd 1.4 sends these fixed texts itself, before any hook (``smtp_RCPT``, ``smtp_MAIL``);
# we send our named replies instead.
REWRITES: dict[str, Reply] = {
    "503 Error: need MAIL command": R503_NEED_MAIL,
    "503 Error: nested MAIL command": R503_NESTED_MAIL,
}


class Accept(Protocol):
    async def __call__(self, raw: bytes | bytearray, envelope: Envelope) -> int:
        """Store ``raw`` durably and return its id, or raise ``TempFail``."""
        ...


class _Handler:
    """aiosmtpd hooks: cheap checks at MAIL and RCPT, the raw bytes stored at DATA."""

    def __init__(
        self,
        accept: Accept,
        domains: Sequence[str],
        source: str,
        on_accepted: Callable[[int, Envelope], None] | None,
        budget: ByteBudget,
        budget_wait: float,
        max_bytes: int | None,
    ) -> None:
        self._accept = accept
        self._max_bytes = max_bytes
        self._budget = budget
        self._budget_wait = budget_wait
        self._domains = frozenset(_normal_domain(domain) for domain in domains)
        self._source = source
        self._on_accepted = on_accepted
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle_EHLO(self, server, session, envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        """aiosmtpd's EHLO/LHLO lines with ``SIZE`` (RFC 1870) after the first."""
        session.host_name = hostname  # this hook's duty in aiosmtpd's "new" EHLO hooks
        if self._max_bytes:
            return [responses[0], f"250-SIZE {self._max_bytes}", *responses[1:]]
        return responses

    async def handle_MAIL(self, server, session, envelope, address: str, options: list[str]) -> str:
        if not _is_utf8(address):
            return str(R553_BAD_SENDER)
        size = declared_size(options)
        if size and self._max_bytes and size > self._max_bytes:
            return R552_TOO_BIG.format(max_bytes=self._max_bytes)
        if size and not await self._budget.wait_until_fits(size, self._budget_wait):
            log.info("%s MAIL SIZE=%d refused: %d bytes in flight", self._source, size,
                     self._budget.in_use)
            return str(R452_NO_STORAGE)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        log.debug("%s MAIL FROM %s peer=%s", self._source, address, _peer_ip(session.peer))
        return str(R250_SENDER_OK)

    async def handle_RCPT(self, server, session, envelope, address: str, options: list[str]) -> str:
        if not _is_utf8(address):
            return str(R553_BAD_RECIPIENT)
        if not self._serves(address):
            log.debug("%s refused RCPT TO %s", self._source, address)
            return str(R550_UNKNOWN_MAILBOX)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return str(R250_RECIPIENT_OK)

    async def handle_DATA(self, server, session, envelope) -> str:
        raw: bytes | bytearray = envelope.original_content or b""  # as read (smtp_data)
        if not _looks_like_mail(raw):
            return str(R554_UNUSABLE)
        mail = Envelope(
            envelope.mail_from,
            tuple(envelope.rcpt_tos),
            source=self._source,
            peer=_peer_ip(session.peer),
        )
        try:
            stored_id = await self._store(raw, mail)
        except TempFail as exc:
            log.warning("%s mail from %s not stored, retry: %s", mail.source, mail.peer, exc)
            return str(R452_NO_STORAGE if _out_of_space(exc) else R451_TRY_LATER)
        except Exception:
            log.exception("%s mail from %s not stored: unexpected error", mail.source, mail.peer)
            return str(R451_TRY_LATER)
        self._announce(stored_id, mail, len(raw))
        return R250_QUEUED.format(id=stored_id)

    async def handle_exception(self, error: Exception) -> str:
        log.error("%s session error", self._source, exc_info=error)
        return str(R451_TRY_LATER)

    async def wait_idle(self, timeout: float) -> None:
        """Return when no mail is being stored, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    def _serves(self, address: str) -> bool:
        _local, at, domain = address.rpartition("@")
        if not at:
            return address.lower() == "postmaster"  # RFC 5321 4.5.1: <Postmaster> without a domain
        return _normal_domain(domain) in self._domains

    async def _store(self, raw: bytes | bytearray, mail: Envelope) -> int:
        self._busy += 1
        self._idle.clear()
        try:
            return await self._accept(raw, mail)
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    def _announce(self, stored_id: int, mail: Envelope, size: int) -> None:
        log.info(
            "accepted raw mail id=%s size=%d source=%s peer=%s",
            stored_id, size, mail.source, mail.peer, extra={"inbound": stored_id},
        )
        log.debug("raw mail id=%s from %s to %s", stored_id, mail.mail_from, mail.rcpt_tos)
        if self._on_accepted is None:
            return
        try:
            self._on_accepted(stored_id, mail)
        except Exception:
            log.exception("on_accepted failed for raw mail id=%s (the mail is stored)", stored_id)


class _Connections:
    """How many SMTP sessions are open, against ``[smtp] max_connections`` (0: no limit)."""

    def __init__(self, limit: int, protocol: str) -> None:
        self.limit = limit
        self.protocol = protocol
        self.open = 0

    def take(self) -> bool:
        if self.limit and self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1


class _SmtpSession(SMTP):
    """One aiosmtpd connection that speaks postdesk's named replies and reads DATA itself."""

    line_length_limit = MAX_LINE_BYTES

    def __init__(self, handler: _Handler, *, budget: ByteBudget, budget_wait: float,
                 connections: _Connections, max_bytes: int | None, **options: Any) -> None:
        super().__init__(handler, data_size_limit=None, **options)  # SIZE: the handler's
        self._budget = budget
        self._budget_wait = budget_wait
        self._connections = connections
        self._max_bytes = max_bytes
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A connection past ``[smtp] max_connections`` is answered 421 at once and closed
        (RFC 5321 3.8): the sender retries later, and a flood of connections cannot take
        the edge's sockets and memory."""
        if self._counted:  # aiosmtpd's STARTTLS calls it again: the same connection goes on
            super().connection_made(transport)
            return
        if not self._connections.take():
            log.warning("%s connection from %s refused: %d connections open (max_connections)",
                        self._connections.protocol, _peer_ip(transport.get_extra_info("peername")),
                        self._connections.open)
            transport.write(f"{R421_TOO_MANY_CONNECTIONS}\r\n".encode("ascii"))
            transport.close()
            metrics.refused(str(R421_TOO_MANY_CONNECTIONS))
            return
        self._counted = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._counted:
            return  # refused: aiosmtpd never saw this connection
        self._counted = False
        self._connections.give_back()
        super().connection_lost(error)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA (no hook runs while it reads), reading the mail with ``read_data``
        within the in-flight budget."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push(str(R503_NEED_RCPT))
        elif arg:
            await self.push("501 Syntax: DATA")
        else:
            hold = self._budget.hold()
            try:
                await self._data(hold)
            finally:
                hold.release()

    async def _data(self, hold: Hold) -> None:
        declared = declared_size(self.envelope.mail_options)
        if not (await self._budget.wait_until_fits(declared, self._budget_wait)
                and hold.reserve(declared)):
            await self.push(str(R452_NO_STORAGE))
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        recipients = len(self.envelope.rcpt_tos)
        try:
            received = await read_data(self._reader, max_bytes=self._max_bytes,
                                       max_line=self.line_length_limit, hold=hold)
        except asyncio.CancelledError:  # the connection went away during DATA
            if self.transport is not None:
                self.transport.close()
            raise
        if received.problem is not None:
            status = self._refusal(received.problem)
        else:
            self.envelope.content = self.envelope.original_content = received.content
            status = await self.event_handler.handle_DATA(self, self.session, self.envelope)
        self._set_post_data_state()
        await self.push(self._after_data(status, recipients))

    def _after_data(self, status: str, recipients: int) -> str:
        """The answer after the final dot: one for the mail (SMTP)."""
        return status

    def _refusal(self, problem: str) -> str:
        if problem == TOO_BIG:
            return R552_TOO_BIG.format(max_bytes=self._max_bytes)
        if problem == LINE_TOO_LONG:
            return R554_LINE_TOO_LONG.format(max_line=self.line_length_limit)
        log.info("mail dropped during DATA: %d bytes in flight", self._budget.in_use)
        return str(R452_NO_STORAGE)

    async def push(self, status: Any) -> None:
        """aiosmtpd's push, with its own fixed texts rewritten, and refusals counted and
        logged (once per reply, an LMTP reply repeated per recipient too)."""
        if isinstance(status, str):
            reply = REWRITES.get(status)
            status = status if reply is None else str(reply)
            metrics.refused(status)
            if status[:3] in _REFUSALS:
                log.info("%s refused a mail from %s: %s", self._connections.protocol,
                         _peer_ip(self.session.peer if self.session else None),
                         status.split("\r\n", 1)[0])
        await super().push(status)

    def shut_down(self) -> None:
        """Say 421 and close, whatever the client was doing (RFC 5321 3.8)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"{R421_SHUTTING_DOWN}\r\n".encode("ascii"))
            self.transport.close()


class _LmtpSession(_SmtpSession, LMTP):
    """LMTP (RFC 2033): the answer after DATA is sent once per accepted recipient."""

    def _after_data(self, status: str, recipients: int) -> str:
        return "\r\n".join([status] * recipients)


class SmtpGateway:
    """An SMTP or LMTP listener on the running asyncio loop that stores mail through ``accept``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        accept: Accept,
        domains: Sequence[str],
        lmtp: bool = False,
        max_message_bytes: int = 25 * 1024 * 1024,
        max_bytes_in_flight: int = MAX_BYTES_IN_FLIGHT,
        max_connections: int = MAX_CONNECTIONS,
        budget_wait: float = BUDGET_WAIT_SECONDS,
        hostname: str | None = None,
        on_accepted: Callable[[int, Envelope], None] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._lmtp = lmtp
        self._max_message_bytes = max_message_bytes
        self._hostname = hostname or socket.getfqdn()  # aiosmtpd would ask once per connection
        self._protocol = "lmtp" if lmtp else "smtp"
        self._budget = ByteBudget(max_bytes_in_flight)
        self._budget_wait = budget_wait
        self._connections = _Connections(max_connections, self._protocol)
        self._handler = _Handler(accept, domains, self._protocol, on_accepted, self._budget,
                                 budget_wait, max_message_bytes)
        self._sessions: weakref.WeakSet[_SmtpSession] = weakref.WeakSet()
        self._server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0 and started)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return self._server.sockets[0].getsockname()[1]

    async def bind(self) -> None:
        """Take the address without accepting connections yet (``start`` then listens): a
        port in use fails here, with ``OSError``, before anything else has started."""
        if self._server is not None:
            return
        _quiet_aiosmtpd_log()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: self._new_session(loop), self._host, self._port, start_serving=False
        )

    def serving(self) -> bool:
        """True while the server accepts connections (asked by ``/healthz``)."""
        server = self._server
        return server is not None and server.is_serving()

    async def start(self) -> None:
        await self.bind()
        await self._server.start_serving()
        log.info("%s gateway listening on %s:%d", self._protocol, self._host, self.port)

    async def stop(self, *, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop listening, let mails being stored finish, then close every connection with 421."""
        if self._server is None:
            return
        port, server, self._server = self.port, self._server, None
        server.close()
        await self._handler.wait_idle(grace)
        for session in list(self._sessions):
            session.shut_down()
        await server.wait_closed()
        log.info("%s gateway on %s:%d stopped", self._protocol, self._host, port)
        await asyncio.sleep(0)  # let the closed connections run connection_lost()

    def _new_session(self, loop: asyncio.AbstractEventLoop) -> _SmtpSession:
        session = (_LmtpSession if self._lmtp else _SmtpSession)(
            self._handler,
            budget=self._budget,
            budget_wait=self._budget_wait,
            connections=self._connections,
            max_bytes=self._max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self._hostname,
            ident="postdesk",
            loop=loop,
        )
        self._sessions.add(session)
        return session


def _quiet_aiosmtpd_log() -> None:
    """Keep aiosmtpd's per-command INFO lines (with addresses) out unless its level was set."""
    logger = logging.getLogger(_AIOSMTPD_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


def _looks_like_mail(raw: bytes) -> bool:
    """A mail has a header field on its first lines (after an mbox ``From`` line or a
    forwarding client's stray line); empty input or a bare body is not a mail."""
    return header_start(bytes(raw[:2048])) is not None


def _out_of_space(exc: TempFail) -> bool:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.errno in _NO_SPACE_ERRNOS:
        return True
    return _NO_SPACE_TEXT.search(str(exc)) is not None


def _normal_domain(domain: str) -> str:
    name = domain.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _is_utf8(address: str) -> bool:
    """aiosmtpd decodes command arguments with surrogateescape; invalid UTF-8 leaves surrogates."""
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _peer_ip(peer: object) -> str | None:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None
