"""Cut a reply down to what its author wrote: no quoted mail, no attribution, no signature.

Used for the ticket view only; the full body is always kept. The lines are read top down
(``quote_markers`` says what each is) until the shape of the reply is known: text above the
first marker is the reply (top posting); a ``>`` block under an attribution is the quote, and
text written under it is kept too (bottom posting, or a reply around the quote); text written
between quoted lines is an inline answer, and the whole body is kept but its trailing quote.
A copied mail (Outlook header block, "Original Message", forward), the ``-- `` signature and
mobile footers end the reply. One pass over the lines, bounded: markers only look at lines
up to ``MAX_LINE`` characters. When cutting would leave nothing, the full text is returned.

mail-parser-reply is not asked after our markers any more: on the reply corpus
(``tests/corpus/replies``, 109 cases) the markers alone give the same 109 answers, and the
library's pass cost several times the markers' own (docs/performance.md, round L).
"""

from __future__ import annotations

import re

from postdesk.mail.model import ParsedMail
from postdesk.mail.quote_markers import (
    ATTRIBUTION,
    BLANK,
    END,
    HEADER,
    MAX_LINE,
    QUOTE,
    TEXT,
    attribution_length,
    attribution_prefix,
    is_link_line,
    kind,
    names_the_quoted,
    starts_as_forward,
)

_RULE = re.compile(r"^[ \t]*[-_=*~]{5,}[ \t]*$")


def reply_text(mail: ParsedMail) -> str:
    """What the author of ``mail`` wrote: read from its HTML without the quote its client
    marked, when the mail is HTML-only and marks one, else from its text."""
    reply = strip_quotes(mail.html_reply) if mail.html_reply else ""
    return reply or strip_quotes(mail.text)


def strip_quotes(text: str) -> str:
    """The part of ``text`` its author wrote; the whole ``text`` (stripped) if nothing is left."""
    full = str(text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()
    if not full:
        return ""
    lines = full.split("\n")
    if starts_as_forward(lines[0]):
        return full
    top, below = _own_parts(lines)
    if top is None:  # inline answers: the whole mail is the reply
        return _drop_trailing_quote(_inline(lines)).strip() or full
    reply = "\n\n".join(part for part in (_drop_trailing_quote(top).strip(), below.strip()) if part)
    return reply or full


def _own_parts(lines: list[str]) -> tuple[str | None, str]:
    """The reply above the first marker and the reply written under a ``>`` quote;
    ``(None, "")`` when the author answered between quoted lines."""
    first, marker = _first_marker(lines)
    if first == len(lines):
        return "\n".join(lines), ""
    top = "\n".join(lines[:first])
    if marker == ATTRIBUTION:
        top = "\n".join((top, attribution_prefix(lines[first])))
    start = first + (max(1, attribution_length(lines, first)) if marker == ATTRIBUTION else 0)
    start = _skip(lines, start, (BLANK,))
    if marker not in (ATTRIBUTION, QUOTE) or start == len(lines) or kind(lines, start) != QUOTE:
        return top, ""  # a copied mail, a signature, or an unquoted mail under its attribution
    after = _skip_quote(lines, start)
    end = _next_marker(lines, after)
    if end > after and end < len(lines) and kind(lines, end) == QUOTE:
        return None, ""  # text between two quotes: inline answers
    if end > after and marker == QUOTE and not names_the_quoted(lines[first]):
        return None, ""  # the author quoted a line by hand to answer it
    return top, "\n".join(lines[after:end])


def _first_marker(lines: list[str]) -> tuple[int, str]:
    """Where the author's text first ends, and why (a kind of ``quote_markers``). A quote
    under a line our patterns do not know as an attribution, but that names who wrote it
    (an address and a colon, maybe wrapped inside the address: "Bob <"), starts there."""
    first = _next_marker(lines, 0)
    if first == len(lines):
        return first, TEXT
    marker = kind(lines, first)
    above = _previous_text(lines, first)
    if marker == QUOTE and above is not None and names_the_quoted(lines[above]):
        wrapped = above > 0 and lines[above - 1].rstrip().endswith("<")
        return above - wrapped, ATTRIBUTION
    return first, marker


def _skip_quote(lines: list[str], index: int) -> int:
    """The index of the first line after the quote at ``index``; a link alone on its line
    between quoted lines (a client wrapped it) belongs to the quote."""
    while True:
        index = _skip(lines, index, (QUOTE, BLANK))
        if index == len(lines) or not is_link_line(lines[index]):
            return index
        following = _skip(lines, index + 1, (BLANK,))
        if following == len(lines) or kind(lines, following) != QUOTE:
            return index
        index = following


def _previous_text(lines: list[str], index: int) -> int | None:
    """The index of the last non-blank line before ``index`` (None when there is none)."""
    index -= 1
    while index >= 0 and not lines[index].strip():
        index -= 1
    return index if index >= 0 else None


def _inline(lines: list[str]) -> str:
    """An inline reply: every line up to its signature or a copied mail, quotes included."""
    end = next((i for i in range(len(lines)) if kind(lines, i) in (END, HEADER)), len(lines))
    return "\n".join(lines[:end])


def _next_marker(lines: list[str], index: int) -> int:
    """The index of the first line from ``index`` that is neither text nor blank."""
    while index < len(lines) and kind(lines, index) in (TEXT, BLANK):
        index += 1
    return index


def _skip(lines: list[str], index: int, kinds: tuple[str, ...]) -> int:
    """The index of the first line from ``index`` whose kind is not in ``kinds``."""
    while index < len(lines) and kind(lines, index) in kinds:
        index += 1
    return index


def _drop_trailing_quote(text: str) -> str:
    """``text`` without the block of ``>`` lines, rules ("-----", "_____") and blank lines at
    its end."""
    lines = text.split("\n")
    end = len(lines)
    while end and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith(">")
                   or _RULE.match(lines[end - 1])):
        end -= 1
    return "\n".join(lines[:end])
