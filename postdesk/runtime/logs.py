"""Where postdesk's log lines go and what they may say: with ``[logging] redact_addresses``
(the default) every mail address in a line, its arguments and its traceback is replaced by a
stable pseudonym ``addr:<first 8 hex digits of sha256(lower-cased address)>`` (an operator
finds one address's lines with ``printf %s ADDRESS | sha256sum | cut -c1-8``). A Message-ID
written ``message_id=<...>`` is kept, so a mail can still be found in the store.

The pattern is linear in the line's length: possessive quantifiers never backtrack, and a
local part is only tried where a run of its characters begins (a megabyte of ``a`` is scanned
once, not once per character).

``[logging] format = "json"`` writes each record as one JSON object on one line: ``time``
(ISO 8601, UTC), ``level``, ``logger``, ``message`` (with its traceback, if any), and
``ticket``, ``inbound`` and ``step`` when the line is about one mail (the worker passes them as
``extra``). Redaction applies to the message before it is serialised, so a JSON line never
holds an address either.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from datetime import datetime, timezone

_LOCAL = r"[\w.!#$%&'*+/=?^`{|}~-]"
_ADDRESS = re.compile(
    r"(?P<keep>message_id=<[^<>\s]*+>)"
    rf"|(?P<address>(?:\"[^\"\r\n]{{0,64}}+\"|(?<!{_LOCAL}){_LOCAL}++)"
    r"@(?:\[[^\]\s]{0,64}+\]|[\w-]++(?:\.[\w-]++)*+))")


def pseudonym(address: str) -> str:
    return "addr:" + hashlib.sha256(address.lower().encode()).hexdigest()[:8]


def _replace(match: re.Match) -> str:
    return match.group("keep") or pseudonym(match.group("address"))


def redact(text: str) -> str:
    """``text`` with every mail address replaced by its pseudonym."""
    return _ADDRESS.sub(_replace, text) if "@" in text else text


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (message, arguments, traceback) goes through redact()."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# The attributes a log call may pass as ``extra`` that a JSON line carries when present.
MAIL_FIELDS = ("ticket", "inbound", "step")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; the message (and its traceback) redacted
    first when ``redact_addresses``."""

    def __init__(self, redact_addresses: bool = True) -> None:
        super().__init__()
        self.redact_addresses = redact_addresses

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        if self.redact_addresses:
            message = redact(message)
        line = {"time": self.formatTime(record), "level": record.levelname,
                "logger": record.name, "message": message}
        for name in MAIL_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value if isinstance(value, int) else str(value)
        return json.dumps(line)  # ASCII: no U+2028 or other line break a reader may split on

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, timezone.utc).isoformat(
            timespec="milliseconds")


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter(kind: str = "text", redact_addresses: bool = True) -> logging.Formatter:
    """The formatter for ``[logging] format``: ``text`` (the default) or ``json``."""
    if kind == "json":
        return JsonFormatter(redact_addresses)
    return RedactingFormatter(FORMAT) if redact_addresses else logging.Formatter(FORMAT)


def setup(level: str, redact_addresses: bool = True, kind: str = "text") -> None:
    """Log to stderr at ``level`` in the ``kind`` format; addresses are redacted unless told
    not to."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(kind, redact_addresses))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for noisy in ("sqlalchemy", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # mail-parser logs an ERROR for every malformed encoded-word; parse() keeps them as defects.
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
