"""Build the MIME bytes of one outbound mail with the headers that keep the thread together.

Every mail carries: the ticket tag in the subject, its own Message-ID, In-Reply-To/References to
the thread, Reply-To the support address, Auto-Submitted on automatic mail (RFC 3834) with
X-Auto-Response-Suppress so Exchange does not answer it, Thread-Topic/Thread-Index for Outlook,
and our marker header so our own mail coming back is recognised. Values from customer text
pass through ``clean_header_value`` (no CR/LF injection).
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.encoders import encode_base64
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP, compat32
from email.utils import format_datetime, formataddr

from postdesk.mail.headers import clean_header_value

MARKER = "X-Postdesk-Ticket"
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
_WIRE = compat32.clone(linesep="\r\n", max_line_length=78)
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|tr|fw|fwd|rép|ré|sv|vs)\s*(\[\d+\])?\s*:\s*)+", re.I)


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
    """The finished mail; the fast ``email.mime`` path, else the general ``EmailMessage`` one."""
    try:
        return _compose_mime(out, now)
    except (UnicodeError, ValueError):  # e.g. an internationalised address (SMTPUTF8)
        return _compose_general(out, now)


def _compose_mime(out: Outgoing, now: datetime) -> bytes:
    """Build with the compat32 ``email.mime`` classes: several times cheaper than
    ``EmailMessage``'s content manager, and this runs once per notification."""
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
    for name, value in headers:
        body[name] = value
    return body.as_bytes(policy=_WIRE)


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


def _formatted(name: str, address: str) -> str:
    return formataddr((clean_header_value(name, 200), _ascii(address)), charset="utf-8")


def _header_text(text: str) -> str:
    try:
        text.encode("ascii")
        return text
    except UnicodeError:
        return Header(text, "utf-8").encode()


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
    return re.sub(r"\[[^\]]*#\d+\]\s*", "", topic).strip() or subject


def thread_index(seed: str, started: datetime, now: datetime) -> str:
    """Outlook's Thread-Index: a 22-byte root (time + GUID from the seed) and one child block.

    Outlook groups a conversation by the root, which is the same for every mail of a ticket;
    the child block carries the time since the root, as Outlook's own replies do.
    """
    start = int((started - _FILETIME_EPOCH).total_seconds() * 10_000_000)
    root = struct.pack(">Q", start)[:6] + hashlib.md5(seed.encode()).digest()
    delta = max(0, int((now - started).total_seconds() * 10_000_000))
    child = struct.pack(">I", (delta >> 18) & 0x7FFFFFFF) + bytes([uuid.uuid4().bytes[0]])
    return base64.b64encode(root + child).decode("ascii")
