"""Make customer text safe to place in a mail header: one line, no control characters, bounded.

Every header postdesk builds from text it did not write (a subject, a display name, a ticket
title) goes through ``clean_header_value``, so a CR or LF in customer input can never start a
new header or the body (header injection), and invisible line separators cannot reappear when
another program re-reads the header. The parser uses the same function on decoded headers.
"""

from __future__ import annotations

import re
import unicodedata

# Unicode categories removed outright: controls (C0, DEL, C1), format characters (zero-width
# spaces, bidi overrides) and the line/paragraph separators. Surrogates are replaced below.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_KEPT_FORMAT = frozenset({"\u200d"})  # zero-width joiner: part of emoji sequences
_SPACE_RUN = re.compile(r"\s+")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def clean_header_value(s: str, max_len: int = 998) -> str:
    """Return ``s`` on one line: control and separator characters gone, whitespace collapsed.

    CR, LF, TAB and every other whitespace become a single space; NUL, other C0/C1 controls,
    U+2028/U+2029 and format characters (bidi overrides, zero-width spaces) are dropped; lone
    surrogates become U+FFFD. The result is stripped and cut to ``max_len`` characters
    (998 is the RFC 5322 line limit).
    """
    if s.isascii() and s.isprintable():  # nothing to drop, only runs of spaces: most values
        return " ".join(s.split())[: max(max_len, 0)].rstrip()
    spaced = _SPACE_RUN.sub(" ", s)
    kept = _NOT_PRINTABLE_ASCII.sub(_keep, spaced)
    return _SPACE_RUN.sub(" ", kept).strip()[: max(max_len, 0)].rstrip()


def _keep(match: re.Match[str]) -> str:
    """The character matched as it may appear in a header value ("" when it must go)."""
    ch = match.group()
    if ch.isascii():
        return ""
    category = unicodedata.category(ch)
    if category == "Cs":
        return "\ufffd"
    if category in _DROPPED_CATEGORIES and ch not in _KEPT_FORMAT:
        return ""
    return ch
