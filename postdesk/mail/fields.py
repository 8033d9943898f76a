"""Read the header fields of a parsed message into decoded, normalised, bounded values.

Each function takes the raw header values as the ``email`` package stored them (8-bit bytes
surrogate-escaped, encoded-words still encoded) and returns what ``ParsedMail`` holds:
decoded header values, normalised addresses and Message-IDs, an aware date, a language tag.
Address and date parsing use mail-parser's helpers, with the standard library behind them;
a value ``parse`` already had them read (for mail-parser's findings) is taken from
``Readings`` instead of being read twice. Limits (header count, value length, recipients kept)
are recorded as defects when they bite.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from types import MappingProxyType

from mailparser.dates import parse_mail_date
from mailparser.utils import get_addresses

from postdesk.mail.addresses import normalise_address
from postdesk.mail.charsets import decode_words, raw_header_text
from postdesk.mail.headers import clean_header_value

MAX_HEADERS = 1000
MAX_HEADER_VALUE = 16_384
MAX_ADDRESS_HEADER = 200_000
MAX_RECIPIENTS = 1000
_LANGUAGE_TAG = re.compile(r"^\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*\s*(?:[,;]|$)")


@dataclass
class Readings:
    """Header values mail-parser's helpers already read, keyed by the exact text they were given.

    ``addresses``: text -> ``get_addresses(text, decode_names=True)``; ``dates``: text ->
    ``parse_mail_date(text).value``. A value is reused only for the very same text.
    """

    addresses: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    dates: dict[str, datetime | None] = field(default_factory=dict)


def raw_headers(message: Message, defects: list[str]) -> dict[str, list[str]]:
    """Lower-case name -> raw values, in order; at most ``MAX_HEADERS`` fields are read."""
    found: dict[str, list[str]] = {}
    for count, (name, value) in enumerate(message.raw_items()):
        if count == MAX_HEADERS:
            defects.append(f"more than {MAX_HEADERS} header fields: the rest were ignored")
            break
        found.setdefault(str(name).lower(), []).append(str(value))
    return found


def decoded_headers(raw: Mapping[str, list[str]]) -> Mapping[str, tuple[str, ...]]:
    """Name -> decoded values: RFC 2047 and 8-bit decoded, on one line, control characters gone."""
    return MappingProxyType({name: tuple(map(decode_value, values)) for name, values in raw.items()})


def decode_value(raw: str) -> str:
    """One raw header value as clean text."""
    text = raw_header_text(raw[: MAX_HEADER_VALUE * 4])
    return clean_header_value(decode_words(text), max_len=MAX_HEADER_VALUE)


def mailboxes(
    raw_values: list[str] | None, field: str, defects: list[str], readings: Readings | None = None
) -> list[tuple[str, str]]:
    """``(display name, normalised address)`` of one address header, first occurrence only.

    Duplicates are dropped (first kept); unusable addresses are skipped; at most
    ``MAX_RECIPIENTS`` are kept.
    """
    if not raw_values:
        return []
    value = raw_header_text(raw_values[0])
    if len(value) > MAX_ADDRESS_HEADER:
        defects.append(f"{field}: {len(value)} characters, only the first {MAX_ADDRESS_HEADER} read")
        value = value[:MAX_ADDRESS_HEADER].rpartition(",")[0]
    found: dict[str, str] = {}
    for name, address in _split_addresses(value, field, defects, readings):
        normalised = normalise_address(address)
        if normalised and normalised not in found:
            found[normalised] = clean_header_value(decode_words(name), max_len=200)
    if len(found) > MAX_RECIPIENTS:
        defects.append(f"{field}: {len(found)} addresses, only the first {MAX_RECIPIENTS} kept")
    return [(name, address) for address, name in list(found.items())[:MAX_RECIPIENTS]]


def _split_addresses(value: str, field: str, defects: list[str], readings: Readings | None) -> list[tuple[str, str]]:
    """mail-parser's cautious address split; the standard library's when it finds nothing."""
    found = readings.addresses.get(value) if readings else None
    if found is None:
        try:
            found = get_addresses(value, decode_names=True)
        except Exception as error:  # noqa: BLE001 - a helper bug must not lose the mail
            defects.append(f"{field}: mail-parser could not split addresses ({type(error).__name__})")
            found = []
    if any(address for _, address in found):
        return found
    return email.utils.getaddresses([value])


def mail_date(raw_values: list[str] | None, defects: list[str], readings: Readings | None = None) -> datetime | None:
    """The Date header as an aware datetime (UTC when the zone is unknown), or None."""
    if not raw_values:
        return None
    value = raw_header_text(raw_values[0])[:200]
    if readings and value in readings.dates:
        parsed = readings.dates[value]
    else:
        try:
            parsed = parse_mail_date(value).value
        except Exception:  # noqa: BLE001 - fall back to the standard library
            parsed = None
    if parsed is None:
        parsed = _stdlib_date(value)
    if parsed is None:
        defects.append(f"date: unreadable {clean_header_value(value, 80)!r}")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _stdlib_date(value: str) -> datetime | None:
    """``email.utils``'s reading of an RFC 5322 date, or None."""
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def primary_language(value: str | None) -> str | None:
    """The primary subtag of a Content-Language value, lower-case (``"fr-CA, en"`` -> ``"fr"``)."""
    match = _LANGUAGE_TAG.match(value or "")
    return match.group(1).lower() if match else None
