"""Spans of time typed on the command line: ``12h``, ``30d``, ``12w`` (``report --since``,
``quarantine purge --older-than``, ``outbox purge --older-than``)."""

from __future__ import annotations

import re
from datetime import timedelta

_SPAN = re.compile(r"^\s*(\d{1,5})\s*([hdw])\s*$", re.IGNORECASE)
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
SPAN_HELP = "write e.g. 12h, 30d or 12w"


def parse_span(text: str) -> timedelta | None:
    """The span ``text`` names (``timedelta(0)`` for ``0d``), or None when it names none."""
    span = _SPAN.match(text)
    if span is None:
        return None
    return int(span.group(1)) * _UNITS[span.group(2).lower()]


def older_than(text: str) -> timedelta:
    """A non-empty span for ``--older-than``; ``ValueError`` saying what to write instead."""
    span = parse_span(text)
    if span is None:
        raise ValueError(f"--older-than {text!r} is not a span: {SPAN_HELP}")
    if not span:
        raise ValueError(f"--older-than {text!r} is an empty span: {SPAN_HELP}")
    return span
