"""Turn the bytes of a mail into readable text: body parts, raw header values, encoded-words.

Mail lies about its charset, or says nothing: a body declared ``us-ascii`` full of Latin-1,
an 8-bit header with no encoded-word, an encoded-word naming a charset that does not exist,
a UTF-8 character split across two encoded-words. Every function here always returns text:
it tries the declared charset, then UTF-8, then Windows-1252, then Latin-1 (which cannot
fail), and says which fallback it used so the parser can record it as a defect.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re

from charset_normalizer import from_bytes

# Declared charsets read as a wider one: what WHATWG browsers do, and what the senders meant.
_WIDER = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "utf-8"}
_FALLBACKS = ("utf-8", "cp1252", "latin-1")
_ISO_2022_JP = re.compile(rb"\x1b\$[@B]|\x1b\([BJ]")
_DETECT_BYTES = 16384
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# The charsets undeclared mail comes in, most frequent first: a tie goes to the earlier one.
_CANDIDATES = ["cp1252", "iso8859_15", "gb18030", "big5", "shift_jis", "euc_jp", "cp1251",
               "koi8_r", "euc_kr", "iso8859_2", "cp1250", "iso8859_7", "cp1253", "iso8859_9"]
_WESTERN = frozenset({"cp1252", "iso8859_15", "iso8859_1", "latin_1", "iso8859_9"})
# The encoded text may hold blanks and folds a careless mailer put inside the word: they are
# dropped (``_word_bytes``), as Python's email package and mail clients read such words too.
_ENCODED_WORD = re.compile(
    r"=\?([^?\s*]{1,64})(?:\*[^?\s]{0,32})?\?([bBqQ])\?((?:[^?\s]|\r?\n[ \t]|[ \t]){0,4096})\?="
)


def decode_bytes(data: bytes, declared: str | None = None) -> tuple[str, str | None]:
    """Decode ``data`` as text; return it with a note when the declared charset did not fit.

    Bytes in no declared charset (or in "us-ascii" that lies) that are not UTF-8 are given to
    charset-normalizer, which tells a Chinese, Japanese, Korean or Cyrillic text from Western
    European; ISO-2022-JP, 7-bit with escape sequences, is recognised by those."""
    wanted = _codec_name(declared)
    if wanted in (None, "utf-8") and _ISO_2022_JP.search(data[:65536]):
        wanted = "iso2022_jp"
    elif wanted in (None, "utf-8") and not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            wanted = _detected(data) or wanted
    for name in dict.fromkeys((wanted or "utf-8", *_FALLBACKS)):
        try:
            text = data.decode(name)
        except (UnicodeError, LookupError):
            continue
        if declared and name != wanted:
            return text, f"charset {declared.strip()[:40]!r} did not fit, read as {name}"
        return text, None
    return data.decode("latin-1"), None  # not reached: latin-1 maps every byte


def _detected(data: bytes) -> str | None:
    """The charset charset-normalizer finds for undeclared 8-bit bytes, among those mail uses;
    None when it finds none or a Western European one (Windows-1252 reads those)."""
    if len(_NON_ASCII.findall(data[:_DETECT_BYTES])) < 8:
        return None  # too little to tell: a name, an accented word or two
    found = from_bytes(data[:_DETECT_BYTES], cp_isolation=_CANDIDATES, preemptive_behaviour=False)
    if not found:
        return None
    scores = {m.encoding: (round(m.chaos, 3), -round(m.coherence, 3)) for m in found}
    top = min(scores.values())
    best = next(c for c in _CANDIDATES if scores.get(c) == top)
    return None if best in _WESTERN else best


def _codec_name(declared: str | None) -> str | None:
    """Python's codec name for a declared charset, or None when unknown or not a text codec."""
    if not declared:
        return None
    label = declared.strip().strip('"').lower()
    label = _WIDER.get(label, label)
    if label in ("us-ascii", "unknown-8bit", "x-unknown", "default"):
        return "utf-8"
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None


def raw_header_text(value: object) -> str:
    """A raw header value as stored by ``email`` (str with surrogate-escaped 8-bit bytes) as text.

    Undeclared 8-bit bytes (a Latin-1 subject sent without encoded-words) are decoded with the
    same fallbacks as bodies instead of being dropped.
    """
    text = str(value)
    if text.isascii():
        return text
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return decode_bytes(data)[0]


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words in ``text``; malformed words are left as written.

    Blanks between two adjacent encoded-words are dropped (RFC 2047 section 6.2), and adjacent
    words in the same charset are joined before decoding, so a multi-byte character split
    across two words still comes out whole. Blanks and folds inside a word's encoded text (a
    careless mailer folding a long word) are dropped, so such a word still decodes.
    """
    if "=?" not in text:
        return text
    pieces: list[str] = []
    pending: list[bytes] = []
    charset = ""
    position = 0
    for match in _ENCODED_WORD.finditer(text):
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            continue
        between = text[position : match.start()]
        adjacent = bool(pending) and not between.strip(" \t\r\n")
        if not adjacent or match.group(1).lower() != charset:
            pieces.append(_flush(pending, charset))
            pending = []
        if not adjacent:
            pieces.append(between)
        pending.append(data)
        charset = match.group(1).lower()
        position = match.end()
    pieces.append(_flush(pending, charset))
    pieces.append(text[position:])
    return "".join(pieces)


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    """The bytes carried by one encoded-word, or None when they cannot be decoded."""
    payload = "".join(payload.split())
    try:
        if encoding in "bB":
            padded = payload + "=" * (-len(payload) % 4)
            return base64.b64decode(padded.encode("ascii"), validate=True)
        return quopri.decodestring(payload.replace("_", " ").encode("ascii"), header=False)
    except (binascii.Error, ValueError, UnicodeError):
        return None


def _flush(pending: list[bytes], charset: str) -> str:
    """Decode the collected bytes of adjacent encoded-words sharing one charset."""
    if not pending:
        return ""
    return decode_bytes(b"".join(pending), charset)[0]
