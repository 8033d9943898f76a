"""The parsed form of one mail: frozen values that every later stage reads and none may change.

``ParsedMail`` is what ``postdesk.mail.parse.parse`` returns for any bytes at all; it holds
decoded, normalised header values, the chosen text and sanitised HTML bodies (and the text
of an HTML-only reply without its marked quote), the attachments, and the defects met on the way. It carries no behaviour beyond header lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Attachment:
    filename: str  # sanitised basename, never empty (e.g. "attachment-1.bin")
    content_type: str  # lower-case "type/subtype"
    payload: bytes  # decoded bytes; a forwarded message/rfc822 as .eml bytes
    content_id: str | None  # without the angle brackets, as HTML "cid:" references it
    inline: bool  # shown in the body (Content-Disposition inline, or a related part with an id)


@dataclass(frozen=True)
class ParsedMail:
    message_id: str | None
    subject: str
    from_addr: str | None
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    headers: Mapping[str, tuple[str, ...]]
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]
    content_language: str | None
    # The header fields as written, in order: (lower-case name, value not RFC 2047 decoded nor
    # unfolded, cut past ``fields.MAX_HEADER_VALUE``). For readers that need the order of
    # fields or their exact text, such as the trusted server's Authentication-Results.
    raw_fields: tuple[tuple[str, str], ...] = ()
    # An HTML-only mail's text without the quote its client marked in the HTML (``<blockquote
    # type="cite">``, Gmail's ``gmail_quote``, Outlook's header block …); None when nothing is
    # marked or the mail has a plain-text part. Read for the reply text, never stored.
    html_reply: str | None = None

    def header(self, name: str) -> str | None:
        """The first decoded value of header ``name`` (any case), or None when absent."""
        values = self.headers.get(name.lower())
        return values[0] if values else None
