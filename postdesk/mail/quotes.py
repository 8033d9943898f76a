"""Cut a reply down to what its author wrote: no quoted mail below it, no signature.

Used for the ticket view only; the full body is always kept. Our own line-based markers run
first (French attributions with or without accents, wrapped on two lines; Outlook
"Original Message" separators and From/Sent or De/Envoyé blocks; the "-- " signature
delimiter; "Sent from my iPhone" lines), then mail-parser-reply for what it knows, then a
trailing ``>`` block is dropped. Bounded: markers only look at lines up to ``MAX_LINE``
characters, and mail-parser-reply (whose patterns are super-linear on long lines) sees
long lines as placeholders and nothing beyond ``MAX_LIBRARY_CHARS``; it only chooses where
to cut, so the reply keeps its own line layout. When cutting would
leave nothing, the full text is returned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from mailparser_reply import EmailReplyParser
from mailparser_reply.parser import EmailMessage

MAX_LINE = 400
MAX_LIBRARY_CHARS = 200_000
_QUOTE_PREFIX = r"(?:>[ \t]?)*"
_ATTRIBUTION = re.compile(
    rf"^{_QUOTE_PREFIX}(?:le|on|am|el|il)\s.{{0,{MAX_LINE}}}?"
    r"(?:a\s+[ée]crit|wrote|schrieb|escribi[óo]|ha\s+scritto)\s*:\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(rf"^{_QUOTE_PREFIX}(?:le|on)\s", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^[ \t]*-{2,}[ \t]*(?:original message|message d['’]origine|message original|"
    r"forwarded message|message transf[ée]r[ée])[ \t]*-{2,}[ \t]*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^[ \t>*]*(?:from|de)[ \t]*:[ \t*]*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^[ \t>*]*(?:sent|date|to|subject|cc|envoy[ée]|[àa]|objet|date d['’]envoi)[ \t]*:", re.IGNORECASE
)
_UNDERSCORES = re.compile(r"^[ \t]*_{8,}[ \t]*$")
_SIGNATURE = re.compile(r"^--[ \t]?$")
_MOBILE = re.compile(
    r"^[ \t]*(?:sent from my\s.{1,40}|sent from (?:outlook|mail|yahoo mail|gmail)\b.{0,40}|"
    r"get outlook for\s.{1,40}|envoy[ée] (?:de|depuis) mon\s.{1,40}|"
    r"envoy[ée] depuis (?:outlook|yahoo mail|mail|l['’]app)\b.{0,40}|"
    r"t[ée]l[ée]chargez outlook pour\s.{1,40})$",
    re.IGNORECASE,
)


def strip_quotes(text: str, languages: Sequence[str] = ("fr", "en")) -> str:
    """The part of ``text`` its author wrote; the whole ``text`` (stripped) if nothing is left."""
    full = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()
    if not full or _starts_quote(full.split("\n", 7), 0):
        return full  # a bare forward or quote: the author wrote nothing of their own above it
    reply = _cut_at_markers(full)
    reply = _cut_with_library(reply, languages)
    reply = _drop_trailing_quote(reply).strip()
    return reply or full


def _cut_at_markers(text: str) -> str:
    """``text`` up to the first line where a quote, a forward header or a signature starts."""
    lines = text.split("\n")
    for index in range(len(lines)):
        if _starts_quote(lines, index):
            kept = "\n".join(lines[:index]).strip()
            if kept:
                return kept
    return text


def _starts_quote(lines: list[str], index: int) -> bool:
    """True when line ``index`` opens the quoted part or the signature."""
    line = lines[index]
    following = lines[index + 1 : index + 7]
    if len(line) > MAX_LINE:
        return False
    return bool(
        _ATTRIBUTION.match(line)
        or (_ATTRIBUTION_START.match(line) and following and _ATTRIBUTION.match(f"{line} {following[0][:MAX_LINE]}"))
        or _SEPARATOR.match(line)
        or _SIGNATURE.match(line)
        or _MOBILE.match(line)
        or (_HEADER_FROM.match(line) and _header_block_follows(following))
        or (_UNDERSCORES.match(line) and following and _HEADER_FROM.match(following[0]))
    )


def _header_block_follows(lines: list[str]) -> bool:
    """True when at least two of the next lines look like Sent:/To:/Subject: header lines."""
    return sum(1 for line in lines if _HEADER_NEXT.match(line[:MAX_LINE])) >= 2


def _cut_with_library(text: str, languages: Sequence[str]) -> str:
    """``text`` cut where mail-parser-reply sees the latest reply end, with our line layout.

    The library strips every line and its patterns are slow on long lines, so it reads a
    copy where long lines are placeholders; its answer is used only when it is a whole-line
    prefix of that copy, and the same number of lines is then taken from ``text``.
    """
    lines = text.split("\n")
    if len(text) > MAX_LIBRARY_CHARS or len(lines) < 2:
        return text
    masked = [line if len(line) <= MAX_LINE else "\x00" for line in lines]
    try:
        reply = _LatestReply(text="\n".join(masked),  # it appends to its list: a copy
                             languages=list(_library_languages(tuple(languages)))
                             ).read().latest_reply
    except Exception:  # noqa: BLE001 - the library is a refinement; our cut stands without it
        return text
    seen = "\n".join(line.strip() for line in masked)
    if not reply or not seen.startswith(reply) or seen[len(reply) : len(reply) + 1] not in ("", "\n"):
        return text
    return "\n".join(lines[: reply.count("\n") + 1])


class _LatestReply(EmailMessage):
    """mail-parser-reply's reading of a mail, asked only where the latest reply ends.

    ``EmailReplyParser.parse_reply`` answers with the first reply's ``content``, which never
    depends on the signatures and disclaimers the library also looks for in every reply: two
    more passes of its largest patterns over the text, 40 % of its time on our corpus. They are
    skipped here; should the library rename that method, the override is merely unused.
    """

    def _process_signatures_disclaimers(self, text: str) -> tuple[list[str], str]:
        return [], ""


@lru_cache(maxsize=8)
def _library_languages(languages: tuple[str, ...]) -> list[str]:
    """``languages`` as ``EmailReplyParser`` normalises them (known ones, lower case)."""
    return EmailReplyParser(languages=list(languages)).languages


def _drop_trailing_quote(text: str) -> str:
    """``text`` without the block of ``>`` lines (and blank lines) at its end."""
    lines = text.split("\n")
    end = len(lines)
    while end and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith(">")):
        end -= 1
    return "\n".join(lines[:end])
