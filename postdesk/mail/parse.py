"""Parse the raw bytes of one mail into a ``ParsedMail``, whatever the bytes are.

The tree is the one the standard library's compat32 parser builds (what
``email.message_from_bytes`` builds), read from slices of the bytes so that a large mail is
never decoded to one ``str``. It is parsed once and read by our own bounded walk (``parts``):
only the text parts and the attachments are decoded. Headers are read by ``fields``, with
mail-parser's address and date helpers.

``defects`` lists what the reading met: the standard library's defects of every part (a
missing boundary, bad base64...), the charsets that had to be guessed, the limits that bit,
and the fallbacks taken. ``mailparser.MailParser`` is not run: its own diagnostics (Received
fields, dates, MIME headers) were computed on every mail and read by nothing (issue 22), at
about half the cost of a parse (docs/performance.md, round L).

When the standard library cannot build the tree (e.g. a RecursionError on absurd nesting), a
headers-only parse keeps the body as one plain text, then an empty mail: ``parse`` never
raises, and every fallback is named in ``defects``.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from email.message import Message
from typing import NamedTuple

from postdesk.mail.addresses import normalise_message_id, parse_message_ids
from postdesk.mail.charsets import decode_bytes
from postdesk.mail.envelope_lines import first_fields, header_start, without_blanks_before_colons
from postdesk.mail.fields import (MAX_HEADERS, decoded_headers, mail_date, mailboxes, primary_language, raw_fields,
                                  raw_headers)
from postdesk.mail.headers import clean_header_value
from postdesk.mail.htmlbody import html_to_text, html_without_quote, sanitise_html
from postdesk.mail.model import Attachment, ParsedMail
from postdesk.mail.parts import MAX_PARTS, Extracted, content_type_of, extract_parts
from postdesk.mail.subject import MAX_SUBJECT

__all__ = ["Attachment", "ParsedMail", "parse"]

MAX_DEFECTS = 200
MAX_DEFECT_LEN = 300
MAX_REPLY_HTML_CHARS = 256 * 1024  # an HTML reply left bigger than this is read from the text
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def parse(raw: bytes) -> ParsedMail:
    """The parsed form of ``raw``; never raises, whatever the bytes (see ``defects``)."""
    defects: list[str] = []
    try:
        start = header_start(raw) or 0
        if start:
            defects.append(f"{start} byte(s) before the first header line were skipped")
        bounded, dropped = first_fields(bytes(raw[start:]), MAX_HEADERS)
        if dropped:
            defects.append(f"more than {MAX_HEADERS} header fields: the rest "
                           f"({dropped} bytes) were ignored")
        readable, odd = without_blanks_before_colons(bounded)
        if odd:
            defects.append(f"{odd} header field name(s) followed by blanks before the colon")
        return _parse(readable, defects)
    except Exception as error:  # noqa: BLE001 - last resort: an empty mail that says why
        defects.append(f"parse failed: {type(error).__name__}: {error}")
        return _empty(defects)


def _parse(raw: bytes, defects: list[str]) -> ParsedMail:
    """Build the tree once, then read fields and parts from it."""
    tree = _tree(raw, defects)
    message = tree.message
    headers = raw_headers(message, defects)
    sender = mailboxes(headers.get("from"), "from", defects)
    extracted = tree.extracted or extract_parts(message)
    defects.extend(extracted.defects)
    decoded = decoded_headers(headers)
    first = {name: decoded[name][0] for name in ("message-id", "subject", "content-language")
             if name in decoded}
    return ParsedMail(
        message_id=normalise_message_id(first.get("message-id")),
        subject=clean_header_value(first.get("subject", ""), max_len=MAX_SUBJECT),
        from_addr=sender[0][1] if sender else None,
        from_name=sender[0][0] if sender else "",
        to=_addresses(headers, "to", defects),
        cc=_addresses(headers, "cc", defects),
        reply_to=_addresses(headers, "reply-to", defects),
        date=mail_date(headers.get("date"), defects),
        in_reply_to=parse_message_ids(" ".join(headers.get("in-reply-to", ()))),
        references=parse_message_ids(" ".join(headers.get("references", ()))),
        headers=decoded,
        text=_text(extracted),
        html=_html(extracted),
        attachments=tuple(extracted.attachments),
        defects=_bounded(defects),
        content_language=primary_language(first.get("content-language")),
        raw_fields=raw_fields(message),
        html_reply=_html_reply(extracted),
    )


class _Tree(NamedTuple):
    message: Message
    extracted: Extracted | None = None  # the parts, when the headers-only fallback took them


def _tree(raw: bytes, defects: list[str]) -> _Tree:
    """The standard library's message tree, else headers only. A mail of more than
    ``MAX_PARTS`` MIME parts is read up to where its part after the limit began: thousands of
    tiny parts cost the parser about 0.6 s of CPU per megabyte, and the walk reads only the
    first ``MAX_PARTS`` of them anyway. The parts inside a forwarded ``message/*`` part, which
    the walk keeps whole and never enters, count only towards ``MAX_MESSAGES``, so that one
    forwarded mail of many parts does not cut the text that follows it."""
    try:
        reader = _AsciiSlices(raw)
        try:
            return _Tree(_compat32(reader, max_parts=MAX_PARTS + 1))
        except _TooManyParts as many:
            defects.append(f"{many}: the mail was read up to byte {reader.at} of {len(raw)}")
            return _Tree(_compat32(_AsciiSlices(raw[:reader.at])))
    except Exception as error:  # noqa: BLE001 - e.g. RecursionError on absurd nesting
        defects.append(f"email parser failed: {type(error).__name__}: {error}")
    return _headers_only(raw, defects)


def _headers_only(raw: bytes, defects: list[str]) -> _Tree:
    """Headers parsed, the whole body kept as one plain text: for trees no parser can build."""
    message = _compat32(_AsciiSlices(raw), headersonly=True)
    body = message.get_payload()
    data = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else b""
    text, _ = decode_bytes(data)
    defects.append("MIME structure unreadable: the body is kept as raw text")
    return _Tree(message, Extracted(plain=[text]))


def _compat32(source: _AsciiSlices, headersonly: bool = False,
              max_parts: int | None = None) -> Message:
    """The tree ``email.message_from_bytes`` builds (compat32), read from ``source``'s slices.

    ``message_from_bytes`` first decodes the whole mail to one ``str`` and copies that into a
    ``StringIO``; read in slices, the peak is the tree itself (the lines of its largest part).
    With ``max_parts``, building more message objects than that raises ``_TooManyParts``.
    """
    factory = Message if max_parts is None else _counted_messages(max_parts)
    parser = email.parser.Parser(factory, policy=email.policy.compat32)
    return parser.parse(source, headersonly=headersonly)


class _TooManyParts(Exception):
    """The parser was about to build more message objects than allowed."""


# Message objects in all, those the walk reads and those inside forwarded ``message/*`` parts.
MAX_MESSAGES = 2 * MAX_PARTS


class _Budget:
    """What one parse may still build (``_counted_messages``)."""

    __slots__ = ("made", "walked", "limit")

    def __init__(self, limit: int) -> None:
        self.made, self.walked, self.limit = 0, 1, limit  # walked: the root


class _Counted(Message):
    """A message that counts the parts the walk will read as the parser attaches them."""

    walked = True  # read by the walk: the root, and the sub-parts of walked multiparts
    budget: _Budget

    def attach(self, payload) -> None:
        if self.walked and not content_type_of(self).startswith("message/"):
            self.budget.walked += 1
            if self.budget.walked > self.budget.limit:
                raise _TooManyParts(f"more than {MAX_PARTS} MIME parts")
        else:
            payload.walked = False
        super().attach(payload)


def _counted_messages(limit: int):
    """A message factory for the parser that raises ``_TooManyParts`` past ``limit`` parts the
    walk reads (``parts.extract_parts``: the root and the sub-parts of its multiparts, never
    what is inside a ``message/*`` part), or past ``MAX_MESSAGES`` objects in all (the parser
    also makes one when it starts, to see which arguments the factory takes)."""
    budget = _Budget(limit)

    def make(policy=email.policy.compat32) -> Message:
        budget.made += 1
        if budget.made > MAX_MESSAGES + 1:
            raise _TooManyParts(f"more than {MAX_MESSAGES} messages and MIME parts")
        message = _Counted(policy)
        message.budget = budget
        return message

    return make


class _AsciiSlices:
    """``raw`` as a text file for ``email.parser.Parser``: each ``read`` decodes one slice,
    bytes over 0x7f surrogate-escaped and line ends untouched, as ``BytesParser`` does."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._at = 0

    @property
    def at(self) -> int:
        """How many bytes have been read so far."""
        return self._at

    def read(self, size: int = -1) -> str:
        end = len(self._raw) if size < 0 else self._at + size
        piece = self._raw[self._at:end]
        self._at += len(piece)
        return piece.decode("ascii", "surrogateescape")


def _addresses(headers: dict[str, list[str]], field: str, defects: list[str]) -> tuple[str, ...]:
    """The normalised addresses of one address header."""
    return tuple(address for _, address in mailboxes(headers.get(field), field, defects))



def _text(extracted: Extracted) -> str:
    """The plain text body: the text/plain parts, else the text of the HTML parts."""
    text = "\n\n".join(extracted.plain) if extracted.plain else html_to_text("\n".join(extracted.html))
    return _one_newline_style(text)


def _html_reply(extracted: Extracted) -> str | None:
    """The text of an HTML-only body without the quote its mail client marked, if it marks one."""
    if extracted.plain or not extracted.html:
        return None
    try:
        html = html_without_quote("\n".join(extracted.html))
        if html is None or len(html) > MAX_REPLY_HTML_CHARS:
            return None  # no marked quote, or too much left to convert twice: the text is read
        return _one_newline_style(html_to_text(html))
    except Exception:  # noqa: BLE001 - a refinement only: the reply is then read from the full text
        return None


def _html(extracted: Extracted) -> str | None:
    """The HTML body sanitised, or None when the mail has no HTML part."""
    if not extracted.html:
        return None
    return sanitise_html(_one_newline_style("\n".join(extracted.html)))


def _one_newline_style(text: str) -> str:
    """``text`` with LF line ends and no control characters but tab and newline.

    NUL in particular: no PostgreSQL text column accepts it.
    """
    return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _bounded(defects: list[str]) -> tuple[str, ...]:
    """Defects de-duplicated, each one line and short, at most ``MAX_DEFECTS`` of them."""
    unique = dict.fromkeys(clean_header_value(defect, MAX_DEFECT_LEN) for defect in defects)
    kept = tuple(unique)[:MAX_DEFECTS]
    return kept + ((f"{len(unique) - MAX_DEFECTS} more defects not listed",) if len(unique) > MAX_DEFECTS else ())


def _empty(defects: list[str]) -> ParsedMail:
    """A mail with nothing in it but the reasons why."""
    return ParsedMail(
        message_id=None, subject="", from_addr=None, from_name="", to=(), cc=(), reply_to=(),
        date=None, in_reply_to=(), references=(), headers=decoded_headers({}), text="", html=None,
        attachments=(), defects=_bounded(defects), content_language=None,
    )
