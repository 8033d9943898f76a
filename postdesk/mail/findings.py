"""mail-parser's findings on a message tree, asked of mail-parser's own helpers.

``mailparser.MailParser`` lists the defects of a mail (address, Received and date diagnostics,
the parser's defects of every part, MIME headers that are not UTF-8, bodies their charset
cannot decode), but it also decodes every part again, re-encodes the attachments and builds
two dictionaries of every decoded header, none of which postdesk reads: about half of the cost
of a parse. ``findings`` gives the same list, in the words and order of ``MailParser.parse``
(mail-parser 4.8), from the helpers mail-parser itself uses; ``tests/unit/test_mail_parse_findings.py``
holds the two side by side, so a release that changes them fails there. What it does not
mirror (a part without its start boundary, which mail-parser recovers from the epilogue)
raises :class:`NotMirrored`, and ``parse`` then asks ``MailParser`` itself.
"""

from __future__ import annotations

from email.message import Message
from functools import lru_cache

from mailparser.const import ADDRESSES_HEADERS, EPILOGUE_DEFECTS
from mailparser.dates import date_diagnostics, parse_mail_date
from mailparser.utils import (
    as_string_safe,
    decode_header_part,
    get_addresses,
    mime_header_view,
    ported_string,
    raw_payload,
    receiveds_parsing,
)

from postdesk.mail.fields import Readings

_DATE_HEADERS = frozenset({"date", "resent-date"})
_SORTED_ADDRESS_HEADERS = tuple(sorted(ADDRESSES_HEADERS))
MAX_REMEMBERED_ADDRESS_LEN = 1024


class NotMirrored(Exception):
    """A tree ``findings`` leaves to ``mailparser.MailParser`` (epilogue recovery)."""


def findings(message: Message, readings: Readings) -> list[dict[str, list[str]]]:
    """The defects ``mailparser.MailParser(message).defects`` lists, from mail-parser's helpers.

    Same entries, same words, same order as ``MailParser._reset`` and ``MailParser.parse`` of
    mail-parser 4.8, without the work whose results only its own attributes hold. The
    addresses split and the date parsed on the way are kept in ``readings`` for ``fields``.
    Raises ``_NotMirrored`` when mail-parser would recover a part from the epilogue, and lets
    any exception through: the caller then asks mail-parser itself.
    """
    found: list[dict[str, list[str]]] = []
    found.extend(_header_findings(message, readings))
    parts: list[tuple[Message, bool]] = []
    in_attachment: set[int] = set()
    for part in message.walk():
        if part.defects:
            found.append({part.get_content_type(): [f"{type(d).__name__}: {d.__doc__}" for d in part.defects]})
            if any(type(d).__name__ in EPILOGUE_DEFECTS for d in part.defects):
                raise NotMirrored
        inside = id(part) in in_attachment
        parts.append((part, inside))
        if part.is_multipart():
            disposition = part.get_content_disposition()
            blocks_inline = disposition not in (None, "inline") or (
                disposition != "inline" and bool(part.get_filename())
            )
            if inside or blocks_inline:
                in_attachment.update(id(child) for child in part.get_payload())
    for index, (part, inside) in enumerate(parts):
        found.extend(_part_findings(part, index, inside))
    return found


def _header_findings(message: Message, readings: Readings) -> list[dict[str, list[str]]]:
    """Address, Received and date diagnostics, as ``MailParser._reset`` gathers them."""
    policy = message.policy
    values: dict[str, list[object]] = {}
    dates: list[tuple[str, str]] = []
    received: list[str] = []
    for name, value in message.raw_items():
        header = name.lower()
        if header in ADDRESSES_HEADERS:
            values.setdefault(header, []).append(policy.header_fetch_parse(name, value))
        elif header in _DATE_HEADERS:
            dates.append((header, value))
        elif header == "received":
            received.append(value)
    address_defects: list[dict] = []
    for header in _SORTED_ADDRESS_HEADERS:
        for occurrence, value in enumerate(values.get(header, ())):
            split, diagnostics = _split_addresses(value)
            if isinstance(value, str):
                readings.addresses[value] = split
            for defect in diagnostics:
                defect.update(header=header, occurrence=occurrence)
                address_defects.append(defect)
    date_defects: list[dict] = []
    occurrences: dict[str, int] = {}
    for header, raw in dates:
        occurrence = occurrences.get(header, 0)
        occurrences[header] = occurrence + 1
        result = parse_mail_date(raw)
        if isinstance(raw, str):
            readings.dates[raw] = result.value
        date_defects.extend(date_diagnostics(result, raw, header, occurrence))
    received_defects: list[dict] = []
    receiveds_parsing(received, defects=received_defects, date_defects=date_defects)
    found = []
    if address_defects:
        found.append({"address-headers": [
            f"AddressHeaderDefect: {d['header']}[{d['occurrence']}]: {d['reason']}" for d in address_defects
        ]})
    if received_defects:
        found.append({"received-headers": [
            f"ReceivedHeaderDefect: received[{d['occurrence']}]: {d['reason']}" for d in received_defects
        ]})
    if date_defects:
        found.append({"date-headers": [
            f"DateHeaderDefect: {d['header']}[{d['occurrence']}]: {d['reason']}" for d in date_defects
        ]})
    return found


def _split_addresses(value: object) -> tuple[list[tuple[str, str]], list[dict]]:
    """``get_addresses(value, decode_names=True)`` and its diagnostics; the same short text
    (the desk's own address in To, a customer writing again) is split once per process."""
    if isinstance(value, str) and len(value) <= MAX_REMEMBERED_ADDRESS_LEN:
        split, diagnostics = _remembered_split(value)
        return list(split), [dict(diagnostic) for diagnostic in diagnostics]
    diagnostics: list[dict] = []
    return get_addresses(value, defects=diagnostics, decode_names=True), diagnostics


@lru_cache(maxsize=512)
def _remembered_split(value: str) -> tuple[tuple[tuple[str, str], ...], tuple[dict, ...]]:
    diagnostics: list[dict] = []
    split = get_addresses(value, defects=diagnostics, decode_names=True)
    return tuple(split), tuple(diagnostics)


def _part_findings(part: Message, index: int, inside_attachment: bool) -> list[dict[str, list[str]]]:
    """The MIME-header and charset findings of one part, as ``MailParser.parse`` reports them."""
    found = []
    metadata, metadata_defects = mime_header_view(part)
    filename = decode_header_part(metadata.get_filename(), defects=metadata_defects)
    if metadata_defects:
        found.append({"mime-headers": [f"MimeHeaderDefect: part {index}, {detail}" for detail in metadata_defects]})
    multipart = part.is_multipart()
    disposition = ported_string(metadata.get_content_disposition()).lower()
    if multipart and disposition != "attachment":
        return found
    charset = metadata.get_content_charset("utf-8")
    subtype = ported_string(metadata.get_content_subtype())
    is_attachment = bool(
        filename
        or (ported_string(metadata.get("content-id")) and subtype not in ("html", "plain"))
        or subtype in "rtf"  # sic: a substring test in mail-parser ("" and "t" count)
        or disposition == "attachment"
    )
    if is_attachment:
        _read_attachment(part, metadata, multipart)
    inline_body = (
        not inside_attachment and not multipart and disposition == "inline"
        and part.get_content_type() in ("text/plain", "text/html")
    )
    if not is_attachment or inline_body:
        failed = _charset_failure(part, charset, index)
        if failed:
            found.append(failed)
    return found


def _read_attachment(part: Message, metadata: Message, multipart: bool) -> None:
    """The reads of an attachment's text that can fail in ``MailParser.parse`` (a charset that
    refuses to decode, a part that cannot be flattened), so that such a mail still goes to
    mail-parser itself; the base64 copy it then makes of a decoded payload cannot fail and
    is not made."""
    if multipart:
        for child in part.get_payload(decode=False):
            as_string_safe(child)
    elif ported_string(metadata.get("content-transfer-encoding", "")).strip().lower() == "base64":
        raw_payload(part)


def _charset_failure(part: Message, charset: str, index: int) -> dict[str, list[str]] | None:
    """The CharsetDecodeDefect ``MailParser._decode_body_payload`` reports for a body, or None.

    A 7bit or 8bit body that is already clean text is not decoded (mail-parser decodes it
    first; for these encodings that cannot fail nor add a defect to the part).
    """
    transfer = ported_string(part.get("Content-Transfer-Encoding", "")).strip().lower()
    text = part._payload  # noqa: SLF001 - the stored text, as mail-parser reads it
    if (not transfer or transfer in ("7bit", "8bit")) and isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return None
    payload = part.get_payload(decode=True)
    if not payload:
        return None
    try:
        payload.decode(charset).encode("utf-8")
    except (LookupError, UnicodeError):
        try:
            payload.decode("utf-8")
            recovery = "decoded with utf-8"
        except UnicodeDecodeError:
            recovery = "decoded with utf-8 replacement characters"
        return {part.get_content_type(): [
            f"CharsetDecodeDefect: part {index}, charset {charset!r} failed; {recovery}. "
            "Original bytes remain in the MIME part."
        ]}
    return None
