"""Lines some programs put before a mail's header: read past them, keep the bytes as received.

And field names some programs write with blanks before their colon (``Subject : x``, RFC 5322's
obsolete syntax): the standard library's parser takes such a line for the start of the body and
loses it and every field after it; ``without_blanks_before_colons`` gives the parser the field
as ``Subject: x``.

An mbox ``From sender date`` line from a pipe, a forwarding client's ``---- Original email
message ----``, a blank line: a mail whose header begins on one of the first few lines after
such a line is still a mail. ``header_start`` says where its header begins (0 for a mail that
starts with a header field), or None when no header field comes soon enough: only that may be
refused as not a mail. Bounded: at most ``MAX_STRAY_LINES`` lines of ``MAX_STRAY_BYTES``.

And a header of more fields than anyone reads: ``first_fields`` keeps the first ones, so that
the standard library's parser does not build (and later search) a hundred thousand fields
nobody reads, at about half a second of CPU per megabyte.
"""

from __future__ import annotations

import re

MAX_STRAY_LINES = 3
MAX_STRAY_BYTES = 300
# An RFC 5322 field name and its colon (obsolete whitespace before the colon allowed).
_HEADER_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")


def header_start(raw: bytes) -> int | None:
    """Offset of the first header field of ``raw``, or None when it has none near the start."""
    at = 0
    for _ in range(MAX_STRAY_LINES + 1):
        if _HEADER_FIELD.match(raw, at) and not raw.startswith(b"From ", at):
            return at
        end = raw.find(b"\n", at, at + MAX_STRAY_BYTES)
        if end < 0:
            return None
        at = end + 1
    return None


# The header block: field lines (obsolete blanks before the colon allowed) and their folds,
# each ended as the standard library's parser ends a line: CRLF, a bare LF or a bare CR (some
# old clients write only CRs). Possessive: no state is kept per line, and at most
# MAX_HEADER_SCAN bytes are looked at.
_HEADER_BLOCK = re.compile(rb"(?:(?:[!-9;-~]{1,200}+[ \t]*+:|[ \t])[^\r\n]*+(?:\r\n|\r|\n))*+")
MAX_HEADER_SCAN = 1024 * 1024
# A field name at a line's start (the text's, or after a CR or LF) and the blanks before its colon.
_BLANKS_BEFORE_COLON = re.compile(rb"(?<![^\r\n])([!-9;-~]{1,200}+)[ \t]++:")


def without_blanks_before_colons(raw: bytes) -> tuple[bytes, int]:
    """``raw`` with the blanks between a header field's name and its colon dropped, and how
    many fields had them (``raw`` itself, and 0, for nearly every mail). Only the first
    ``MAX_HEADER_SCAN`` bytes of a header are looked at."""
    blank = min((at for at in (raw.find(b"\n\n", 0, MAX_HEADER_SCAN), raw.find(b"\n\r\n", 0, MAX_HEADER_SCAN),
                               raw.find(b"\r\r", 0, MAX_HEADER_SCAN))
                 if at >= 0), default=MAX_HEADER_SCAN)
    if raw.find(b" :", 0, blank) < 0 and raw.find(b"\t:", 0, blank) < 0:
        return raw, 0  # nearly every mail: two scans in C
    end = _HEADER_BLOCK.match(raw, 0, MAX_HEADER_SCAN).end()
    if not _BLANKS_BEFORE_COLON.search(raw, 0, end):
        return raw, 0
    head, count = _BLANKS_BEFORE_COLON.subn(rb"\1:", raw[:end])
    return head + raw[end:], count


# Line ends as the standard library's parser reads them: CRLF, a bare CR or a bare LF. Its
# header ends at the first line that is neither a field (a name and its colon; blanks before
# the colon count, since ``without_blanks_before_colons`` takes them out next), a fold, nor a
# "From " line (skipped, not a field): a blank line, or a line without a colon, which begins
# the body.
_LINE_END = rb"(?:\r\n|\r(?!\n)|\n)"
_HEADER_END = re.compile(_LINE_END + rb"(?![ \t]|From |[!-9;-~]*+[ \t]*+:)")
_FIELD_START = re.compile(_LINE_END + rb"(?=[!-9;-~]++[ \t]*+:)")
_FIRST_FIELD = re.compile(rb"[!-9;-~]++[ \t]*+:")


def first_fields(raw: bytes, limit: int) -> tuple[bytes, int]:
    """``raw`` with its header cut after its first ``limit`` fields (each with its folds), the
    line that ends the header and the body kept; and how many bytes of header were dropped
    (``raw`` itself, and 0, for nearly every mail: the line ends are counted in C first).
    Fields, folds and the header's end are those of the standard library's parser, which
    reads the rest: a cut never takes a line of what it reads as the body, nor a field it
    would have read among the first ``limit``."""
    if raw.count(b"\n") + raw.count(b"\r") < limit:
        return raw, 0  # fewer line ends in the whole mail than fields wanted: most mails
    ended = _HEADER_END.search(raw)
    end = ended.end() if ended else len(raw)  # where the line that ends the header begins
    if raw.count(b"\n", 0, end) + raw.count(b"\r", 0, end) < limit:
        return raw, 0  # fewer line ends than fields wanted, folds included
    count = 1 if _FIRST_FIELD.match(raw) else 0
    for start in _FIELD_START.finditer(raw, 0, end):
        count += 1
        if count > limit:
            return raw[:start.end()] + raw[end:], end - start.end()
    return raw, 0
