"""Parse the raw bytes of one mail into a ``ParsedMail``, whatever the bytes are.

mail-parser (``mailparser.parse_from_bytes``) builds the message tree and reports its
defects. When it fails the standard library's compat32 parser takes over, then a
headers-only parse, then an empty mail: ``parse`` never raises, and every fallback is
named in ``defects``. The tree is then read by our own bounded walk (``parts``), because
mail-parser's body text drops undeclared 8-bit characters and mines forwarded messages for
body text; headers are read by ``fields``. A header block too large for mail-parser to read
in bounded time goes to the standard library directly. A mail over ``LARGE_MAIL_BYTES`` is
never decoded to one ``str``: its tree is read from slices of the bytes (the tree
``email.message_from_bytes`` builds, in a third of the memory) and handed to mail-parser; the
fallbacks read in slices too.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import re
from email.message import Message

import mailparser

from postdesk.mail.addresses import normalise_message_id, parse_message_ids
from postdesk.mail.charsets import decode_bytes
from postdesk.mail.fields import decoded_headers, mail_date, mailboxes, primary_language, raw_headers
from postdesk.mail.headers import clean_header_value
from postdesk.mail.htmlbody import html_to_text, sanitise_html
from postdesk.mail.model import Attachment, ParsedMail
from postdesk.mail.parts import Extracted, extract_parts

__all__ = ["Attachment", "ParsedMail", "parse"]

MAX_MAILPARSER_HEADER_BYTES = 256 * 1024
LARGE_MAIL_BYTES = 1024 * 1024
MAX_DEFECTS = 200
MAX_DEFECT_LEN = 300
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def parse(raw: bytes) -> ParsedMail:
    """The parsed form of ``raw``; never raises, whatever the bytes (see ``defects``)."""
    defects: list[str] = []
    try:
        return _parse(bytes(raw), defects)
    except Exception as error:  # noqa: BLE001 - last resort: an empty mail that says why
        defects.append(f"parse failed: {type(error).__name__}: {error}")
        return _empty(defects)


def _parse(raw: bytes, defects: list[str]) -> ParsedMail:
    """Build the tree with the first parser that copes, then read fields and parts from it."""
    message, by_mailparser, extracted = _tree(raw, defects)
    headers = raw_headers(message, defects)
    sender = mailboxes(headers.get("from"), "from", defects)
    extracted = extracted or extract_parts(message, report_structure=not by_mailparser)
    defects.extend(extracted.defects)
    decoded = decoded_headers(headers)
    first = {name: values[0] for name, values in decoded.items()}
    return ParsedMail(
        message_id=normalise_message_id(first.get("message-id")),
        subject=clean_header_value(first.get("subject", "")),
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
    )


def _tree(raw: bytes, defects: list[str]) -> tuple[Message, bool, Extracted | None]:
    """The message tree from mail-parser, else the standard library, else headers only.

    Also says whether mail-parser built it (its defects are then already reported), and
    gives the parts when the headers-only fallback had to take them.
    """
    if _header_block_size(raw) > MAX_MAILPARSER_HEADER_BYTES:
        defects.append(f"header block over {MAX_MAILPARSER_HEADER_BYTES} bytes: mail-parser skipped")
    else:
        try:
            parsed = _mailparser(raw)
            defects.extend(_mailparser_defects(parsed.defects))
            return parsed.message, True, None
        except Exception as error:  # noqa: BLE001 - any mail-parser failure: try the stdlib
            defects.append(f"mail-parser failed: {type(error).__name__}: {error}")
    try:
        return _compat32(raw), False, None
    except Exception as error:  # noqa: BLE001 - e.g. RecursionError on absurd nesting
        defects.append(f"email parser failed: {type(error).__name__}: {error}")
    return _headers_only(raw, defects)


def _headers_only(raw: bytes, defects: list[str]) -> tuple[Message, bool, Extracted]:
    """Headers parsed, the whole body kept as one plain text: for trees no parser can build."""
    message = _compat32(raw, headersonly=True)
    body = message.get_payload()
    data = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else b""
    text, _ = decode_bytes(data)
    defects.append("MIME structure unreadable: the body is kept as raw text")
    return message, False, Extracted(plain=[text])


def _mailparser(raw: bytes) -> mailparser.MailParser:
    """mail-parser's reading of ``raw``; for a large mail, of the tree ``_compat32`` built."""
    if len(raw) <= LARGE_MAIL_BYTES:
        return mailparser.parse_from_bytes(raw)
    return mailparser.MailParser(_compat32(raw))


def _compat32(raw: bytes, headersonly: bool = False) -> Message:
    """The tree ``email.message_from_bytes`` builds (compat32), read from ``raw`` in slices.

    ``message_from_bytes`` first decodes the whole mail to one ``str`` and copies that into a
    ``StringIO``; read in slices, the peak is the tree itself (the lines of its largest part).
    """
    parser = email.parser.Parser(policy=email.policy.compat32)
    return parser.parse(_AsciiSlices(raw), headersonly=headersonly)


class _AsciiSlices:
    """``raw`` as a text file for ``email.parser.Parser``: each ``read`` decodes one slice,
    bytes over 0x7f surrogate-escaped and line ends untouched, as ``BytesParser`` does."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._at = 0

    def read(self, size: int = -1) -> str:
        end = len(self._raw) if size < 0 else self._at + size
        piece = self._raw[self._at:end]
        self._at += len(piece)
        return piece.decode("ascii", "surrogateescape")


def _header_block_size(raw: bytes) -> int:
    """Bytes before the first blank line (the whole mail when there is none)."""
    ends = [index for index in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if index >= 0]
    return min(ends) if ends else len(raw)


def _mailparser_defects(found: list[object]) -> list[str]:
    """mail-parser's defects (a list of ``{part: [descriptions]}``) as flat strings."""
    flat: list[str] = []
    for entry in found[:MAX_DEFECTS]:
        items = entry.items() if isinstance(entry, dict) else [("message", [entry])]
        for where, descriptions in items:
            listed = descriptions if isinstance(descriptions, list) else [descriptions]
            flat.extend(f"{where}: {description}" for description in listed[:MAX_DEFECTS])
    return flat


def _addresses(headers: dict[str, list[str]], field: str, defects: list[str]) -> tuple[str, ...]:
    """The normalised addresses of one address header."""
    return tuple(address for _, address in mailboxes(headers.get(field), field, defects))


def _text(extracted: Extracted) -> str:
    """The plain text body: the text/plain parts, else the text of the HTML parts."""
    text = "\n\n".join(extracted.plain) if extracted.plain else html_to_text("\n".join(extracted.html))
    return _one_newline_style(text)


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
