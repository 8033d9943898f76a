"""The ticket tag in subjects: build it from ``[desk] tag`` and find it again in a subject.

The format is free text with one ``{id}`` placeholder (``[#{id}]``, ``[ACME #{id}]``). Finding is
tolerant of what mail clients do to subjects (case, extra spaces inside the brackets, a prefix
like ``RE:``/``TR:``) but strict about the literal parts, so that two desks with different
instance names never take each other's mail.
"""

from __future__ import annotations

import re
from functools import cached_property

# Possessive blanks: "ticket" and a megabyte of spaces is read once, not once per space.
# The words' first letter is a plain class, [tTdD]: the engine then scans for those letters and
# tries the words only there, where a case-insensitive first letter would have it try the three
# words at every character (ten times the work on a 2 KB text). The same matches: no other
# character equals t or d case-insensitively, and the lookbehind tells the words apart.
_MENTION = re.compile(
    r"[tTdD](?i:(?<=t)icket|(?<=d)emande|(?<=d)ossier)(?i:\s*+(?:n[°o.]?\s*+)?#?\s*+(\d{1,9})\b)")


class TagFormat:
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def tag(self, ticket_id: int) -> str:
        return self.fmt.replace("{id}", str(ticket_id))

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        before, _, after = self.fmt.partition("{id}")
        return re.compile(_loose(before) + r"\s*(\d{1,9})\s*" + _loose(after), re.I)

    def find(self, subject: str) -> int | None:
        """The ticket id of the last tag in ``subject`` (replies keep the newest at the end)."""
        found = self._pattern.findall(subject or "")
        return int(found[-1]) if found else None

    def strip(self, subject: str) -> str:
        """``subject`` without our tags, for a new ticket's title."""
        return re.sub(r"\s{2,}", " ", self._pattern.sub("", subject or "")).strip()


def _loose(literal: str) -> str:
    """A regex for ``literal`` whose words and punctuation may be spaced apart by clients."""
    tokens = re.findall(r"\w+|[^\w\s]", literal)
    return r"\s*".join(re.escape(t) for t in tokens)


def mentioned_ticket(text: str) -> int | None:
    """A ticket number the customer names in words ("ticket #123", "demande n° 42")."""
    match = _MENTION.search(text or "")
    return int(match.group(1)) if match else None
