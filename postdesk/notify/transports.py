"""Where outbound mail goes: a Maildir folder (embedded default, tests) or an SMTP relay.

A transport delivers one finished mail or raises :class:`TransientError` (try again later:
connection refused, 4xx) or :class:`PermanentError` (5xx: the sender marks the row failed).
Passwords come from the environment variable named in the configuration, never from the file.
"""

from __future__ import annotations

import mailbox
import os
import smtplib
import ssl
from collections.abc import Sequence

from postdesk.config import OutboundSettings
from postdesk.errors import ConfigError


class TransientError(Exception):
    """Delivery failed for now; retry with backoff."""


class PermanentError(Exception):
    """Delivery can never succeed as it is (e.g. 550 unknown recipient)."""


class MaildirTransport:
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._box = mailbox.Maildir(folder, create=True)

    def deliver(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> None:
        try:
            self._box.add(raw)
        except OSError as exc:
            raise TransientError(f"maildir {self.folder}: {exc}") from exc

    def describe(self) -> str:
        return f"maildir {self.folder}"


class SmtpTransport:
    def __init__(self, settings: OutboundSettings, environ=os.environ) -> None:
        self.settings = settings
        self.password = None
        if settings.username:
            if not settings.password_env or settings.password_env not in environ:
                raise ConfigError("outbound.password_env",
                                  "names no environment variable holding the relay password",
                                  "set password_env and export that variable")
            self.password = environ[settings.password_env]

    def deliver(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> None:
        try:
            with self._connect() as smtp:
                refused = smtp.sendmail(mail_from, list(rcpts), raw)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise _classify(min(codes), f"all recipients refused ({codes})") from exc
        except smtplib.SMTPResponseException as exc:
            raise _classify(exc.smtp_code, exc) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"relay {self.settings.host}:{self.settings.port}: {exc}") from exc
        if refused:  # the addresses stay out of logs and last_error; the codes say enough
            codes = ", ".join(f"{code} {text.decode(errors='replace')[:100]}"
                              for code, text in refused.values())
            raise PermanentError(f"{len(refused)} recipient(s) refused: {codes}")

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if s.tls:
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
            if s.starttls:
                smtp.starttls(context=context)
        if s.username:
            smtp.login(s.username, self.password or "")
        return smtp

    def describe(self) -> str:
        return f"smtp relay {self.settings.host}:{self.settings.port}"


def _classify(code: int, exc: Exception | str) -> Exception:
    if 400 <= code < 500:
        return TransientError(f"{code} {exc}")
    return PermanentError(f"{code} {exc}")


def make_transport(settings: OutboundSettings):
    if settings.transport == "smtp":
        return SmtpTransport(settings)
    return MaildirTransport(settings.folder)
