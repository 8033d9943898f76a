"""The SMTP envelope of one received mail: who the transport says sent it, to whom, and how it came.

It travels beside the raw bytes from every edge (SMTP, LMTP, IMAP, the MTA pipe) to the store, so
the worker can tell a bounce (empty reverse path) and the recipient address that routed the mail.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Envelope:
    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    source: str = "ingest"  # "smtp", "lmtp", "ingest", "imap:NAME/FOLDER"
    peer: str | None = None

    @property
    def is_bounce(self) -> bool:
        """An empty reverse path (``MAIL FROM:<>``) marks delivery reports and other bounces."""
        return self.mail_from.strip("<> ") == ""
