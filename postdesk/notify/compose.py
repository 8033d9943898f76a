"""Build the MIME bytes of one outbound mail with the headers that keep the thread together.

Every mail carries: the ticket tag in the subject, its own Message-ID, In-Reply-To/References to
the thread, Reply-To the support address, Auto-Submitted on automatic mail (RFC 3834) with
X-Auto-Response-Suppress so Exchange does not answer it, Thread-Topic/Thread-Index for Outlook,
and our marker header so our own mail coming back is recognised. Values from customer text
pass through ``clean_header_value`` (no CR/LF injection).

One path, the standard library's: the ``email.mime`` classes under ``WIRE`` (the compat32
policy with CRLF: RFC 2047 words for non-ASCII text, headers folded at 78 columns, an id
longer than a line left whole, quoted-printable bodies at 76), flattened by its generator.
Through its public API it is spared work whose result is known: a text part gets the headers
``MIMEText`` would write (not written, then parsed back to add the charset) and its
quoted-printable from ``binascii``'s C encoder (round AD), a multipart its
boundary up front (not searched for in every part's text, and short enough for the
Content-Type to stay one line), and a header that is already one
short ASCII line is not folded (docs/performance.md, "Round O": 0.71 → 0.20 ms per mail).
``EmailMessage``'s header registry parses every header it is given and folds it again; it cost
the worker 1.5 times its CPU per mail (docs/performance.md, "Round L"), so it is not used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import BASE64, QP, Charset
from email.encoders import encode_base64
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.policy import Compat32
from email.utils import format_datetime, formataddr

from postdesk.mail.headers import clean_header_value

MARKER = "X-Postdesk-Ticket"
# Header text that is not ASCII: RFC 2047 "B" words. The default for UTF-8, the shorter of "Q"
# and "B", measures the "Q" length of the text again for each character it adds to a word
# (0.29 ms for a 100-character French subject, where "B" takes 0.10: docs/performance.md,
# round X); both are read by every mail client.
_UTF8_QP = Charset("utf-8")  # quoted-printable by email.quoprimime: see _text_part
_UTF8_QP.body_encoding = QP
_QP_LINE = 76  # RFC 2045's longest encoded line
_UTF8_WORDS = Charset("utf-8")
_UTF8_WORDS.header_encoding = BASE64


class _Wire(Compat32):
    """compat32 with CRLF, folding at 78 columns; a header that is one printable ASCII line
    short enough already is written as it is, which is what the folding would write (held by
    ``tests/unit/test_compose_wire.py``), without building a ``Header`` to find it out."""

    def fold_binary(self, name, value):
        if type(value) is str and value.isascii() and value.isprintable() \
                and len(name) + len(value) + 2 <= self.max_line_length:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


WIRE = _Wire(linesep="\r\n", max_line_length=78)
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
# Possessive blanks, and a tag with no "[" inside: both read in linear time, whatever the subject.
_REPLY_PREFIX = re.compile(r"^\s*+(?:(?:re|aw|tr|fw|fwd|rép|ré|sv|vs)\s*+(?:\[\d+\]\s*+)?:\s*+)+", re.I)
_TICKET_TAG = re.compile(r"\[[^\[\]]*#\d+\]\s*")


@dataclass(frozen=True)
class Outgoing:
    from_name: str
    from_addr: str
    to: tuple[str, ...]
    subject: str
    text: str
    message_id: str
    reply_to: str
    html: str | None = None
    cc: tuple[str, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    automatic: str | None = None  # "auto-replied" | "auto-generated" | None (a person's reply)
    ticket_id: int | None = None
    thread_seed: str = ""
    thread_started: datetime | None = None
    attachments: tuple[tuple[str, str, bytes], ...] = ()  # (filename, content type, bytes)
    language: str | None = None
    topic: str = ""  # the conversation's topic: the ticket's subject, the same on every mail


def new_message_id(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def compose(out: Outgoing, now: datetime) -> bytes:
    """The finished mail: text/plain, with the HTML as multipart/alternative, with the
    attachments as multipart/mixed; CRLF line ends."""
    body: Message = _text_part(out.text, "plain")
    if out.html:
        alternative = _multipart("alternative")
        alternative.attach(body)
        alternative.attach(_text_part(out.html, "html"))
        body = alternative
    if out.attachments:
        mixed = _multipart("mixed")
        mixed.attach(body)
        for filename, content_type, data in out.attachments:
            mixed.attach(_attachment(filename, content_type, data))
        body = mixed
    for name, value in _headers(out, now):  # ids and addresses on one line too
        body[name] = value if isinstance(value, Header) or value.isprintable() \
            else clean_header_value(value)
    return body.as_bytes(policy=WIRE)


def _headers(out: Outgoing, now: datetime) -> list[tuple[str, str | Header]]:
    headers = [("From", _mailbox(out.from_name, out.from_addr)),
               ("To", ", ".join(_mailbox("", a) for a in out.to))]
    if out.cc:
        headers.append(("Cc", ", ".join(_mailbox("", a) for a in out.cc)))
    headers += [("Reply-To", _mailbox("", out.reply_to)),
                ("Subject", _text("Subject", clean_header_value(out.subject))),
                ("Date", format_datetime(now)), ("Message-ID", out.message_id)]
    headers += _thread_headers(out, now)
    if out.automatic:
        headers += [("Auto-Submitted", out.automatic), ("X-Auto-Response-Suppress", "All"),
                    ("Precedence", "bulk")]
    if out.ticket_id is not None:
        headers.append((MARKER, str(out.ticket_id)))
    if out.language:
        headers.append(("Content-Language", out.language))
    return headers


def _thread_headers(out: Outgoing, now: datetime) -> list[tuple[str, str | Header]]:
    headers: list[tuple[str, str | Header]] = []
    if out.in_reply_to:
        headers.append(("In-Reply-To", out.in_reply_to))
    refs = list(dict.fromkeys(out.references))
    if out.in_reply_to and out.in_reply_to not in refs:
        refs.append(out.in_reply_to)
    if refs:
        headers.append(("References", " ".join(refs)))
    topic = clean_header_value(out.topic or thread_topic(out.subject), 250)
    headers.append(("Thread-Topic", _text("Thread-Topic", topic)))
    if out.thread_seed:
        headers.append(("Thread-Index", thread_index(out.thread_seed, out.thread_started or now,
                                                     now)))
    return headers


def _text_part(text: str, subtype: str) -> Message:
    """What ``MIMEText(text, subtype, <UTF-8, quoted-printable>)`` is, header for header
    (``tests/unit/test_compose_wire.py``), without parsing back the parameters it has just
    written. Its body is quoted-printable by ``binascii.b2a_qp``, the standard library's C
    encoder, where ``MIMEText`` runs ``email.quoprimime``'s, in Python, a character at a time:
    0.92 of the worker's instructions per mail and 0.97 of its CPU (docs/performance.md,
    round AD). The two place a soft line break a character apart at times and decode to the
    same text, every CRLF and lone CR a line break as for ``email.quoprimime`` (``b2a_qp``,
    given them as they are, takes CR CR LF for one). ``b2a_qp`` lets a line run to 77
    columns when its last character is a blank it encodes (``=20``) at the 75th, one more
    than RFC 2045 allows: such a text is encoded by ``email.quoprimime`` instead."""
    part = Message()
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["MIME-Version"] = "1.0"
    part["Content-Transfer-Encoding"] = "quoted-printable"
    lines = text.replace("\r\n", "\n").replace("\r", "\n")  # b2a_qp merges CR CR LF
    encoded = binascii.b2a_qp(lines.encode("utf-8"), istext=True).decode("ascii")
    if max(map(len, encoded.splitlines()), default=0) > _QP_LINE:
        encoded = _UTF8_QP.body_encode(text)
    part.set_payload(encoded)
    return part


def _multipart(subtype: str) -> MIMEMultipart:
    """A multipart with its boundary chosen now. The generator would otherwise choose one and
    compile a pattern to search every part's text for it, once per mail; no part can hold
    it: every leaf ``compose`` writes is quoted-printable (where ``=`` is always ``=`` and two
    hex digits, or the last character of a line) or base64 (no ``-`` or ``=`` but the final
    padding), and a boundary line is ``--==``; the nested multipart's boundary differs by its
    random token."""
    return MIMEMultipart(subtype, boundary=_boundary())


def _boundary() -> str:
    """``==``, 96 random bits in hex, ``==``: 28 characters, so that even
    ``multipart/alternative``'s Content-Type stays within one 78-column line and is not
    folded (the standard library's own, 36 long, made it two)."""
    return f"=={secrets.token_hex(12)}=="


def _attachment(filename: str, content_type: str, data: bytes) -> MIMEBase:
    maintype, _, subtype = content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(data)
    encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))
    return part


def _text(name: str, value: str) -> str | Header:
    """A header's text: itself when ASCII, else RFC 2047 "B" words in UTF-8."""
    return value if value.isascii() else Header(value, _UTF8_WORDS, header_name=name)


def _mailbox(name: str, address: str) -> str:
    """``Name <address>``, the name in RFC 2047 words when it is not ASCII. An address with a
    non-ASCII local part (RFC 6531) has no ASCII form: its local part is written as an RFC 2047
    word, as the email package's default policy writes it, its domain in IDNA; the mail still
    reaches it by its envelope."""
    name = clean_header_value(name, 200)
    if not address.isascii():
        local, at, domain = address.rpartition("@")
        address = f"{_ascii_local(local)}{at}{_ascii_domain(domain)}" if at \
            else _ascii_local(address)
    return formataddr((name, address), charset="utf-8")


def _ascii_local(local: str) -> str:
    return local if local.isascii() else Header(local, "utf-8").encode(maxlinelen=998)


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:  # not a name IDNA can write: a word, as for the local part
        return _ascii_local(domain)


def thread_topic(subject: str) -> str:
    """The conversation's topic: the subject without reply prefixes and ticket tags."""
    topic = _REPLY_PREFIX.sub("", subject)
    return _TICKET_TAG.sub("", topic).strip() or subject


def thread_index(seed: str, started: datetime, now: datetime) -> str:
    """Outlook's Thread-Index: a 22-byte root (time + GUID from the seed) and one child block.

    Outlook groups a conversation by the root, which is the same for every mail of a ticket;
    the child block carries the time since the root, as Outlook's own replies do.
    """
    start = int((started - _FILETIME_EPOCH).total_seconds() * 10_000_000)
    root = struct.pack(">Q", start)[:6] + hashlib.md5(seed.encode()).digest()
    delta = max(0, int((now - started).total_seconds() * 10_000_000))
    child = struct.pack(">I", (delta >> 18) & 0x7FFFFFFF) + os.urandom(1)  # random byte
    return base64.b64encode(root + child).decode("ascii")
