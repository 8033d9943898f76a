"""Where outbound mail goes: a Maildir folder (embedded default, tests) or an SMTP relay.

A transport delivers one finished mail or raises :class:`TransientError` (try again later:
connection refused, 4xx) or :class:`PermanentError` (5xx: the sender marks the row failed).
The SMTP transport keeps one relay connection for consecutive mails, as an MTA client does;
the sender calls :meth:`close` at the end of each batch. Passwords come from the environment
variable named in the configuration, never from the file.
"""

from __future__ import annotations

import logging
import mailbox
import os
import smtplib
import ssl
import time
from collections.abc import Sequence

from postdesk.config import OutboundSettings
from postdesk.errors import ConfigError

log = logging.getLogger("postdesk.sender")

IDLE_SECONDS = 30.0  # a kept connection unused this long is closed, not reused (relays drop them)


class TransientError(Exception):
    """Delivery failed for now; retry with backoff."""


class PermanentError(Exception):
    """Delivery can never succeed as it is (e.g. 550 unknown recipient)."""


class RelayUnavailable(TransientError):
    """The relay cannot be reached at all: no mail of this batch will get through either."""


class MaildirTransport:
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._box = mailbox.Maildir(folder, create=True)

    def deliver(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> None:
        try:
            self._box.add(raw)
        except OSError as exc:
            raise TransientError(f"maildir {self.folder}: {exc}") from exc

    def close(self) -> None:
        """Nothing is held open."""

    def describe(self) -> str:
        return f"maildir {self.folder}"


class _Client(smtplib.SMTP):
    """smtplib's client noting whether this transaction reached DATA: before it, a dropped
    connection cannot have delivered the mail, so sending it again at once is safe."""

    data_started = False

    def data(self, msg):
        self.data_started = True
        return super().data(msg)


class _ClientTls(_Client, smtplib.SMTP_SSL):
    """The same over implicit TLS (``[outbound] tls``)."""


class SmtpTransport:
    """Holds at most one relay connection, reused by the next mail until :meth:`close` or until
    it sat idle ``IDLE_SECONDS``. A reused connection found dropped before DATA is opened again
    once; any other failure leaves the mail to the sender's retry with the same Message-ID."""

    def __init__(self, settings: OutboundSettings, environ=os.environ, clock=time.monotonic) -> None:
        self.settings = settings
        self.password = None
        if settings.username:
            if not settings.password_env or settings.password_env not in environ:
                raise ConfigError("outbound.password_env",
                                  "names no environment variable holding the relay password",
                                  "set password_env and export that variable")
            self.password = environ[settings.password_env]
        self.context = ssl.create_default_context() if settings.tls or settings.starttls else None
        self.clock = clock
        self.connections = 0  # opened so far
        self._smtp: _Client | None = None
        self._used_at = 0.0

    def deliver(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> None:
        try:
            refused = self._send(raw, mail_from, list(rcpts))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise _classify(min(codes), f"all recipients refused ({codes})") from exc
        except smtplib.SMTPResponseException as exc:
            raise _classify(exc.smtp_code, exc) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise TransientError(f"relay {self.settings.host}:{self.settings.port}: {exc}") from exc
        except PermanentError:
            raise  # said before MAIL: the connection is clean
        except BaseException:
            self.close()  # a transaction cut midway is no connection for the next mail
            raise
        if refused:  # the addresses stay out of logs and last_error; the codes say enough
            codes = ", ".join(f"{code} {text.decode(errors='replace')[:100]}"
                              for code, text in refused.values())
            raise PermanentError(f"{len(refused)} recipient(s) refused: {codes}")

    def _send(self, raw: bytes, mail_from: str, rcpts: list[str]) -> dict:
        smtp = self._held()
        reused = smtp is not None
        smtp = smtp or self._connect()
        try:
            return _transaction(smtp, raw, mail_from, rcpts)
        except smtplib.SMTPException:
            if not reused or smtp.data_started or smtp.sock is not None:
                raise  # a fresh connection failed, DATA began, or the relay answered and stays
        finally:
            self._used_at = self.clock()
        log.info("relay %s:%s dropped a kept connection; connecting again",
                 self.settings.host, self.settings.port)
        self.close()
        return _transaction(self._connect(), raw, mail_from, rcpts)

    def _held(self) -> _Client | None:
        """The kept connection when it is still open and was used recently, else None."""
        if self._smtp is not None and (self._smtp.sock is None
                                       or self.clock() - self._used_at >= IDLE_SECONDS):
            self.close()
        return self._smtp

    def _connect(self) -> _Client:
        s = self.settings
        try:
            if s.tls:
                smtp = _ClientTls(s.host, s.port, timeout=s.timeout, context=self.context)
            else:
                smtp = _Client(s.host, s.port, timeout=s.timeout)
        except (smtplib.SMTPException, OSError) as exc:
            raise RelayUnavailable(f"relay {s.host}:{s.port} unreachable: {exc}") from exc
        try:
            if s.starttls:
                smtp.starttls(context=self.context)
            if s.username:
                smtp.login(s.username, self.password or "")
        except Exception:
            smtp.close()
            raise
        self.connections += 1
        self._smtp, self._used_at = smtp, self.clock()
        return smtp

    def probe(self) -> str:
        """Connect, EHLO (STARTTLS and login as configured) and QUIT, sending no mail: the
        relay's EHLO greeting line, or the error (``postdesk doctor``)."""
        try:
            code, reply = self._connect().ehlo()
            if code != 250:
                raise PermanentError(f"EHLO answered {code} {reply.decode(errors='replace')}")
            return reply.decode(errors="replace").splitlines()[0]
        finally:
            self.close()

    def close(self) -> None:
        """Say QUIT on the kept connection, if any; never raises."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.sock is not None:
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            smtp.close()

    def describe(self) -> str:
        return f"smtp relay {self.settings.host}:{self.settings.port}"


def _transaction(smtp: _Client, raw: bytes, mail_from: str, rcpts: list[str]) -> dict:
    """MAIL, RCPT, DATA on an open connection; smtplib sends RSET itself after a refusal and
    closes the connection after a 421. Returns the refused recipients of an accepted mail.

    An address with a non-ASCII local part (RFC 6531; domains are stored in IDNA) travels only
    with SMTPUTF8: asked for when the relay offers it, else the mail fails before MAIL, since
    that relay will never take it."""
    smtp.data_started = False
    options: tuple[str, ...] = ()
    if not (mail_from.isascii() and all(rcpt.isascii() for rcpt in rcpts)):
        smtp.ehlo_or_helo_if_needed()
        if not smtp.has_extn("smtputf8"):
            raise PermanentError("an address with a non-ASCII local part needs SMTPUTF8, "
                                 "which the relay does not offer")
        options = ("SMTPUTF8",)
    return smtp.sendmail(mail_from, rcpts, raw, mail_options=options)


def _classify(code: int, exc: Exception | str) -> Exception:
    if 400 <= code < 500:
        return TransientError(f"{code} {exc}")
    return PermanentError(f"{code} {exc}")


def make_transport(settings: OutboundSettings):
    if settings.transport == "smtp":
        return SmtpTransport(settings)
    return MaildirTransport(settings.folder)
