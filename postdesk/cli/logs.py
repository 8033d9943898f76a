"""Where postdesk's log lines go and what they may say: with ``[logging] redact_addresses``
(the default) every mail address in a line, its arguments and its traceback is replaced by a
stable pseudonym ``addr:<first 8 hex digits of sha256(lower-cased address)>`` (an operator
finds one address's lines with ``printf %s ADDRESS | sha256sum | cut -c1-8``). A Message-ID
written ``message_id=<...>`` is kept, so a mail can still be found in the store.

The pattern is linear in the line's length: possessive quantifiers never backtrack, and a
local part is only tried where a run of its characters begins (a megabyte of ``a`` is scanned
once, not once per character).
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys

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


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(level: str, redact_addresses: bool = True) -> None:
    """Log to stderr at ``level``; the formatter redacts addresses unless told not to."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(FORMAT) if redact_addresses
                         else logging.Formatter(FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    for noisy in ("sqlalchemy", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # mail-parser logs an ERROR for every malformed encoded-word; parse() keeps them as defects.
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
