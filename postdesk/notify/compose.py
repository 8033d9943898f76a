"""Build the MIME bytes of one outbound mail with the headers that keep the thread together.

Every mail carries: the ticket tag in the subject, its own Message-ID, In-Reply-To/References to
the thread, Reply-To the support address, Auto-Submitted on automatic mail (RFC 3834) with
X-Auto-Response-Suppress so Exchange does not answer it, Thread-Topic/Thread-Index for Outlook,
and our marker header so our own mail coming back is recognised. Values from customer text
pass through ``clean_header_value`` (no CR/LF injection).

This runs once per notification, so the usual mail (no attachment) is written directly as the
bytes the compat32 ``email.mime`` classes would generate — same headers, same folding, same
quoted-printable bodies — without building and flattening a message tree, which cost about a
millisecond. ``tests/unit/test_compose_fast.py`` holds the two paths to the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import email.base64mime
import email.quoprimime
import hashlib
import os
import random
import re
import struct
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.encoders import encode_base64
from email.header import MAXLINELEN, Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP, compat32
from email.utils import format_datetime, formataddr
from functools import lru_cache

from postdesk.mail.headers import clean_header_value

MARKER = "X-Postdesk-Ticket"
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
_WIRE = compat32.clone(linesep="\r\n", max_line_length=78)
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
# Possessive blanks, and a tag with no "[" inside: both read in linear time, whatever the subject.
_REPLY_PREFIX = re.compile(r"^\s*+(?:(?:re|aw|tr|fw|fwd|rép|ré|sv|vs)\s*+(?:\[\d+\]\s*+)?:\s*+)+", re.I)
_TICKET_TAG = re.compile(r"\[[^\[\]]*#\d+\]\s*")
_MAX_LINE = 78  # _WIRE.max_line_length
_QP_LINE = 76  # email.quoprimime.body_encode's maxlinelen


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
    """The finished mail: written directly when it has no attachment, else with the compat32
    ``email.mime`` classes (the same bytes); the general ``EmailMessage`` path when those
    cannot encode it."""
    try:
        return _compose_mime(out, now) if out.attachments else _compose_direct(out, now)
    except (UnicodeError, ValueError):  # e.g. an internationalised address (SMTPUTF8)
        return _compose_general(out, now)


_PART_HEADERS = ('Content-Type: text/{}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
                 'Content-Transfer-Encoding: quoted-printable\r\n')
_TEXT_HEADERS, _HTML_HEADERS = _PART_HEADERS.format("plain"), _PART_HEADERS.format("html")


def _compose_direct(out: Outgoing, now: datetime) -> bytes:
    """The bytes ``_compose_mime`` gives for a mail without attachments (up to the random
    multipart boundary), written as text: text/plain, or multipart/alternative with the HTML."""
    headers = [_fold(name, value) for name, value in _header_pairs(out, now)]
    if not out.html:
        return "".join((_TEXT_HEADERS, *headers, "\r\n", qp_body(out.text))).encode("ascii")
    parts = (f"{_TEXT_HEADERS}\r\n{qp_body(out.text)}", f"{_HTML_HEADERS}\r\n{qp_body(out.html)}")
    boundary = _boundary(parts)
    return "".join((f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
                    "MIME-Version: 1.0\r\n", *headers, "\r\n",
                    f"--{boundary}\r\n{parts[0]}\r\n--{boundary}\r\n{parts[1]}\r\n"
                    f"--{boundary}--\r\n")).encode("ascii")


def _boundary(parts: tuple[str, ...]) -> str:
    """A boundary as ``email.generator`` makes them (``=`` × 15, 19 digits, ``==``), absent
    from the parts."""
    while True:
        boundary = f"==============={random.randrange(sys.maxsize):019d}=="
        if not any(boundary in part for part in parts):
            return boundary


def _compose_mime(out: Outgoing, now: datetime) -> bytes:
    """Build with the compat32 ``email.mime`` classes: several times cheaper than
    ``EmailMessage``'s content manager. The reference for ``_compose_direct``."""
    body = MIMEText(out.text, "plain", _UTF8_QP)
    if out.html:
        alternative = MIMEMultipart("alternative")
        alternative.attach(body)
        alternative.attach(MIMEText(out.html, "html", _UTF8_QP))
        body = alternative
    if out.attachments:
        mixed = MIMEMultipart("mixed")
        mixed.attach(body)
        for filename, content_type, data in out.attachments:
            mixed.attach(_attachment(filename, content_type, data))
        body = mixed
    for name, value in _header_pairs(out, now):
        body[name] = value
    return body.as_bytes(policy=_WIRE)


def _header_pairs(out: Outgoing, now: datetime) -> list[tuple[str, str]]:
    """Our headers, in order, as compat32 values (RFC 2047 words already made, not folded)."""
    headers = [("From", _formatted(out.from_name, out.from_addr)),
               ("To", ", ".join(_ascii(a) for a in out.to))]
    if out.cc:
        headers.append(("Cc", ", ".join(_ascii(a) for a in out.cc)))
    headers += [("Reply-To", _ascii(out.reply_to)),
                ("Subject", _header_text(clean_header_value(out.subject))),
                ("Date", format_datetime(now)), ("Message-ID", out.message_id)]
    headers += _thread_pairs(out, now)
    if out.automatic:
        headers += [("Auto-Submitted", out.automatic), ("X-Auto-Response-Suppress", "All"),
                    ("Precedence", "bulk")]
    if out.ticket_id is not None:
        headers.append((MARKER, str(out.ticket_id)))
    if out.language:
        headers.append(("Content-Language", out.language))
    return headers


def _thread_pairs(out: Outgoing, now: datetime) -> list[tuple[str, str]]:
    pairs = []
    if out.in_reply_to:
        pairs.append(("In-Reply-To", out.in_reply_to))
    refs = list(dict.fromkeys(out.references))
    if out.in_reply_to and out.in_reply_to not in refs:
        refs.append(out.in_reply_to)
    if refs:
        pairs.append(("References", " ".join(refs)))
    topic = clean_header_value(out.topic or thread_topic(out.subject), 250)
    pairs.append(("Thread-Topic", _header_text(topic)))
    if out.thread_seed:
        pairs.append(("Thread-Index", thread_index(out.thread_seed, out.thread_started or now,
                                                   now)))
    return pairs


def _attachment(filename: str, content_type: str, data: bytes) -> MIMEBase:
    maintype, _, subtype = content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(data)
    encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))
    return part


def _ascii(address: str) -> str:
    address.encode("ascii")  # UnicodeError: the general path handles SMTPUTF8 addresses
    return address


@lru_cache(maxsize=256)  # the desk's name and address, on nearly every mail
def _formatted(name: str, address: str) -> str:
    return formataddr((clean_header_value(name, 200), _ascii(address)), charset="utf-8")


def _header_text(text: str) -> str:
    """``text`` as a compat32 header value: itself when ASCII, else ``Header(text, "utf-8")
    .encode()`` — computed here in linear time for one line of text (the stdlib re-encodes
    the line after every character: ~100 µs for a French subject)."""
    if text.isascii():
        return text
    if _LINE_BREAK.search(text):
        return Header(text, "utf-8").encode()
    return "\n ".join(_encoded_words(text))


# What str.splitlines() breaks at; Header encodes each line on its own.
_LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_WORD_ROOM = MAXLINELEN - len("=?utf-8?q??=")  # a word's text: Header's 78 columns less chrome


def _encoded_words(text: str) -> list[str]:
    """The RFC 2047 words ``Header(text, "utf-8").encode()`` puts on its lines, for one line of
    non-ASCII text (``email.charset.Charset.header_encode_lines``): Q or B, whichever is
    shorter for the whole text; as many characters per word as fit, words of 78 columns on the
    first line and 77 after (the folding space)."""
    data = text.encode("utf-8")
    encoded = email.quoprimime.header_encode(data, "utf-8")[10:-2]  # without the chrome
    if email.base64mime.header_length(data) < len(encoded):
        return _b_words(text)
    words, start, room = [], 0, _WORD_ROOM
    while len(encoded) - start > room:
        end = start + room  # back to the last character boundary: not inside an escape,
        while (encoded[end - 1] == "=" or encoded[end - 2] == "="  # nor before a UTF-8
               or encoded[end] == "=" and encoded[end + 1] in "89AB"):  # continuation byte
            end -= 1
        words.append(f"=?utf-8?q?{encoded[start:end]}?=")
        start, room = end, _WORD_ROOM - 1
    words.append(f"=?utf-8?q?{encoded[start:]}?=")
    return words


def _b_words(text: str) -> list[str]:
    """``_encoded_words`` in base64, for text that is mostly not Latin."""
    words, start, size, room = [], 0, 0, _WORD_ROOM
    for i, character in enumerate(text):
        point = ord(character)
        grow = 1 if point < 0x80 else _utf8_length(point)
        if -(-(size + grow) // 3) * 4 > room:
            words.append(email.base64mime.header_encode(text[start:i].encode("utf-8"), "utf-8"))
            start, size, room = i, 0, _WORD_ROOM - 1
        size += grow
    words.append(email.base64mime.header_encode(text[start:].encode("utf-8"), "utf-8"))
    return words


def _utf8_length(point: int) -> int:
    return 2 if point < 0x800 else 3 if point < 0x10000 else 4


# A compat32 header value that needs no folding: printable ASCII words, single spaces.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
# Words without the ';' and ',' compat32 prefers to fold after, single spaces, and line breaks
# that are followed by one space (encoded words, References): folded at the last space.
_WORD = r"[!-+\--:<-~]+"
_WORDS = re.compile(rf"{_WORD}(?: {_WORD})*(?:\n {_WORD}(?: {_WORD})*)*")


def _fold(name: str, value: str) -> str:
    """``name: value`` as ``_WIRE.fold_binary`` writes it, CRLF included; the common shapes of
    value are folded here, the others by the policy."""
    if len(name) + len(value) + 2 <= _MAX_LINE and _PLAIN.fullmatch(value):
        return f"{name}: {value}\r\n"
    if _WORDS.fullmatch(value):
        return _fold_words(name, value)
    return _WIRE.fold_binary(name, value).decode("ascii", "surrogateescape")


def _fold_words(name: str, value: str) -> str:
    """compat32's folding (``email.header._ValueFormatter``) of a value matching ``_WORDS``:
    break before the word that would pass 78 characters; a first word too long to follow the
    name goes alone on the next line; a word longer than a line stays whole."""
    lines = []
    for number, physical in enumerate(value.split("\n")):
        words = physical.split(" ")
        if number:
            words = words[1:]  # a continuation line's leading space
            line = " " + words[0]
        elif len(name) + 2 + len(words[0]) > _MAX_LINE:
            lines.append("")
            line = " " + words[0]
        else:
            line = words[0]
        size = len(line) + (0 if number or lines else len(name) + 2)
        for word in words[1:]:
            if size + 1 + len(word) > _MAX_LINE:
                lines.append(line)
                line, size = " " + word, 1 + len(word)
            else:
                line, size = f"{line} {word}", size + 1 + len(word)
        lines.append(line)
    return f"{name}: " + "\r\n".join(lines) + "\r\n"


def qp_body(text: str) -> str:
    """``text`` in UTF-8 quoted-printable with CRLF line ends: the body ``email`` writes for
    ``MIMEText(text, subtype, <utf-8, QP>)`` (``quoprimime.body_encode``, then the generator).

    ``quoprimime`` escapes with ``str.translate`` over the UTF-8 bytes read as Latin-1, which is
    fast for ASCII text only. Other text goes through ``binascii.b2a_qp`` (C), which escapes the
    same bytes and a few more — a space or tab before a line end (``=20``, ``=09``), a lone
    ``.`` (``=2E``) — and adds soft breaks at its own places: those are undone (each ``=`` it
    writes starts an escape or a soft break). The lines are then cut as ``quoprimime`` cuts.
    """
    if not text:
        return ""
    if "\r" in text:  # quoprimime breaks lines at CRLF, CR and LF alike
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii():
        escaped = text.translate(_QP_ASCII)
    else:
        written = binascii.b2a_qp(text.encode("utf-8")).replace(b"=\n", b"")
        for quoted, byte in ((b"=20", b" "), (b"=09", b"\t"), (b"=2E", b".")):
            if quoted in written:
                written = written.replace(quoted, byte)
        escaped = written.decode("ascii")
    cut: list[str] = []
    for line in escaped.split("\n"):
        if len(line) <= _QP_LINE and line[-1:] not in (" ", "\t"):
            cut.append(line)
        else:
            _qp_cut(line, cut)
    return "\r\n".join(cut)


# quoprimime's body map for ASCII: printable characters but "=", tab, CR and LF stay as they are.
_QP_ASCII = [chr(c) if 32 <= c <= 126 and c != 61 or c in (9, 10, 13) else f"={c:02X}"
             for c in range(0x80)]


def _qp_cut(line: str, cut: list[str]) -> None:
    """One escaped line cut into lines of at most 76 characters, exactly as
    ``email.quoprimime.body_encode`` does (soft breaks, trailing whitespace quoted)."""
    start, last_start = 0, len(line) - 1 - _QP_LINE
    while start <= last_start:
        stop = start + _QP_LINE - 1
        if line[stop - 2] == "=":  # do not split an escape
            cut.append(line[start:stop - 1])
            start = stop - 2
        elif line[stop - 1] == "=":
            cut.append(line[start:stop])
            start = stop - 1
        else:
            cut.append(line[start:stop] + "=")
            start = stop
    if line and line[-1] in " \t":
        room = start - last_start
        if room >= 3:
            tail = f"={ord(line[-1]):02X}"
        elif room == 2:
            tail = line[-1] + "=\r\n"
        else:
            tail = f"=\r\n={ord(line[-1]):02X}"
        cut.append(line[start:-1] + tail)
    else:
        cut.append(line[start:])


def _compose_general(out: Outgoing, now: datetime) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(out.from_name, out.from_addr)
    msg["To"] = ", ".join(str(_address("", a)) for a in out.to)
    if out.cc:
        msg["Cc"] = ", ".join(str(_address("", a)) for a in out.cc)
    msg["Reply-To"] = out.reply_to
    msg["Subject"] = clean_header_value(out.subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = out.message_id
    _thread_headers(msg, out, now)
    if out.automatic:
        msg["Auto-Submitted"] = out.automatic
        msg["X-Auto-Response-Suppress"] = "All"
        msg["Precedence"] = "bulk"
    if out.ticket_id is not None:
        msg[MARKER] = str(out.ticket_id)
    _body(msg, out)
    if out.language:  # after the body: set_content() drops Content-* headers
        msg["Content-Language"] = out.language
    return msg.as_bytes()


def _thread_headers(msg: EmailMessage, out: Outgoing, now: datetime) -> None:
    if out.in_reply_to:
        msg["In-Reply-To"] = out.in_reply_to
    refs = list(dict.fromkeys(out.references))
    if out.in_reply_to and out.in_reply_to not in refs:
        refs.append(out.in_reply_to)
    if refs:
        msg["References"] = " ".join(refs)
    msg["Thread-Topic"] = clean_header_value(out.topic or thread_topic(out.subject), 250)
    if out.thread_seed:
        msg["Thread-Index"] = thread_index(out.thread_seed, out.thread_started or now, now)


def _body(msg: EmailMessage, out: Outgoing) -> None:
    msg.set_content(out.text, cte="quoted-printable")
    if out.html:
        msg.add_alternative(out.html, subtype="html", cte="quoted-printable")
    for filename, content_type, data in out.attachments:
        maintype, _, subtype = content_type.partition("/")
        msg.add_attachment(data, maintype=maintype or "application",
                           subtype=subtype or "octet-stream", filename=filename)


def _address(name: str, addr: str) -> Address:
    name = clean_header_value(name, 200)
    try:
        return Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError):
        local, _, domain = addr.rpartition("@")
        return Address(display_name=name, username=local, domain=domain)


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
