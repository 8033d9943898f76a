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
import unicodedata

from charset_normalizer import from_bytes

# Declared charsets read as a wider one: what WHATWG browsers do, and what the senders meant
# (Chinese mailers label GBK as gb2312, Japanese ones cp932 as Shift_JIS, Korean ones cp949 as
# euc-kr); and labels mail uses that Python's codecs do not know (Outlook's iso-8859-8-i).
_WIDER = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "utf-8",
          "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
          "shift_jis": "cp932", "shift-jis": "cp932", "x-sjis": "cp932", "sjis": "cp932",
          "windows-31j": "cp932", "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "big5": "big5hkscs",
          "iso-8859-8-i": "iso8859_8", "iso-8859-6-i": "iso8859_6", "windows-874": "cp874",
          "tis-620": "cp874", "iso-8859-11": "cp874", "iso-8859-9": "cp1254", "x-mac-roman": "mac_roman",
          "x-mac-cyrillic": "mac_cyrillic", "x-mac-ce": "mac_latin2"}
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

_FOLD = re.compile(r"\r?\n[ \t]*")


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
    """The charset of undeclared 8-bit bytes that are not UTF-8, among those mail uses; None
    for Western European text (Windows-1252 reads it).

    charset-normalizer decides for a text with 8 non-ASCII bytes or more. With fewer (a
    subject, a name) it cannot, so the letters decide (``_by_letters``): Windows-1252 unless
    its reading is not text, then the first charset whose reading is. A Western European or
    Central European verdict is checked the same way: Polish read as Windows-1252 has symbols
    inside its words (``przesy³ka``), and ISO-8859-2 and Windows-1250 differ on ą, ś and ź."""
    sample = data[:_DETECT_BYTES]
    if len(_NON_ASCII.findall(sample)) < 8:
        return _by_letters(sample)
    found = from_bytes(sample, cp_isolation=_CANDIDATES, preemptive_behaviour=False)
    if not found:
        return _by_letters(sample)
    scores = {m.encoding: (round(m.chaos, 3), -round(m.coherence, 3)) for m in found}
    top = min(scores.values())
    best = next(c for c in _CANDIDATES if scores.get(c) == top)
    if best in _WESTERN or best in _CENTRAL:
        return _by_letters(sample, prefer=None if best in _WESTERN else best)
    if _reads_as(sample, best):
        return best
    return next((name for name in _SHORT_CANDIDATES if _reads_as(sample, name)), best)


# Read short undeclared text in the first of these whose reading is text (``_reads_as``).
_SHORT_CANDIDATES = ("gb18030", "big5", "cp932", "cp949", "cp1251", "koi8_r", "iso8859_2", "cp1250")
_CENTRAL = frozenset({"iso8859_2", "cp1250"})
_CENTRAL_ORDER = ("iso8859_2", "cp1250")  # 0x80-0x9f make cp1250, which iso8859_2 reads as controls
_POLISH_ONLY = frozenset("ąćęłńśźżĄĆĘŁŃŚŹŻ")
_CZECH_SLOVAK_ONLY = frozenset("řěůťďňšľĺŕčžŘĚŮŤĎŇŠĽĹŔČŽ")
_GLUED_BEFORE_WORDS = frozenset("¿¡«»“”‘’„‚‹›°€£")  # marks that may open a word in Western text
_GLUED_AFTER_WORDS = frozenset("°²³ºª’”»›´·…–—€")  # and that may close one ("m²", "n°", "1ª")
_INSIDE_WORDS = frozenset("’‘·´")  # marks that sit between letters in Western text
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_MIXED_WORD = re.compile(r"[A-Za-z][^\x00-\x7f]|[^\x00-\x7f][A-Za-z]")
_INSIDE_LATIN = re.compile(r"[A-Za-z][^\x00-\x7f][A-Za-z]")
_RUSSIAN = frozenset("абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґў")
_CJK_MARKS = re.compile(r"[\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\u30fb\u30fc"
                        r"\u2018-\u201d\u2026\u2014\u00b7]")


def _by_letters(data: bytes, prefer: str | None = None) -> str | None:
    """None (Windows-1252) when that reading of ``data`` is plausible Western text, else the
    first candidate (``prefer`` first) whose reading is made of the letters of its script."""
    if prefer is None and _reads_as(data, "cp1252"):
        return None
    first = (prefer, *_CENTRAL_ORDER) if prefer in _CENTRAL else (prefer,) if prefer else ()
    found = next((name for name in dict.fromkeys((*first, *_SHORT_CANDIDATES)) if _reads_as(data, name)), prefer)
    if found in ("gb18030", "big5", "cp932", "cp949") and _MIXED_WORD.search(data.decode(found)):
        # a few ideographs glued to Latin letters ("G甓" for "Gęś"): a Central European word
        # read that way is likelier, when it reads as one
        return next((name for name in ("iso8859_2", "cp1250") if _reads_as(data, name)), found)
    return found


def _reads_as(data: bytes, codec: str) -> bool:
    """Whether ``data`` read as ``codec`` is text a person writes in that charset's script:
    Western letters (with at most two in a row and no symbol inside a word) for Windows-1252
    and the Central European charsets, Russian/Ukrainian letters in a sensible case for the
    Cyrillic ones, common ideographs, kana or hangul (and CJK punctuation) for the others."""
    try:
        text = data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    if codec in ("cp1252", "iso8859_2", "cp1250"):
        return _western_text(text, longest_run=2 if codec == "cp1252" else 8)
    if codec in ("cp1251", "koi8_r"):  # no Cyrillic letter glued to a Latin one: "przesyіka"
        return not _MIXED_WORD.search(text) and _cyrillic_text(text)
    if _INSIDE_LATIN.search(text):
        return False  # an ideograph inside a Latin word: "pa寮ziernik"
    codec = {"shift_jis": "cp932", "euc_kr": "cp949"}.get(codec, codec)
    return all(ch.isascii() or _CJK_MARKS.match(ch) or _common_cjk(ch, codec) for ch in text)


def _western_text(text: str, longest_run: int) -> bool:
    """Latin letters, at most ``longest_run`` of them non-ASCII in a row (two in Western
    languages: "Größe", "ação"; more in Polish and Czech: "żółć", "příští"), no symbol inside
    a word, no control or unassigned character."""
    for index, run in _non_ascii(text):
        ch = text[index]
        if run > longest_run or unicodedata.category(ch) in ("Cc", "Co", "Cn"):
            return False
        if not ch.isalpha() and ch not in _INSIDE_WORDS and 0 < index < len(text) - 1 \
                and text[index - 1].isalpha() and text[index + 1].isalpha():
            return False  # a symbol inside a word: "przesy³ka", "pa¼dziernik"
        if run >= 2 and not (ch.isalpha() and text[index - 1].isalpha()):
            return False
        if ch == "Ÿ" and text[index - 1:index].islower() or ch in "œŒ" and run >= 2:
            return False  # Windows-1250's ź and ś ("paŸdziernik", "gêœ"): no Western word has them so
        if not ch.isalpha() and ch not in _GLUED_BEFORE_WORDS and text[index + 1:index + 2].isalpha():
            return False  # a symbol opening a word: "¬le" (ISO-8859-2's "Źle")
        if not ch.isalpha() and ch not in _GLUED_AFTER_WORDS and text[index - 1:index].isalpha():
            return False  # a symbol closing a word: "dziêkuj¹" (Windows-1250's "dziękują")
    if longest_run > 2:
        for word in text.split():
            letters = set(word)
            if letters & _POLISH_ONLY and letters & _CZECH_SLOVAK_ONLY:
                return False  # the other Central European charset: "příątí", "dziękujš"
    return True


def _non_ascii(text: str):
    """``(index, place in its run)`` of each non-ASCII character of ``text`` (ASCII skipped in C)."""
    for found in _NON_ASCII_RUN.finditer(text):
        for index in range(found.start(), found.end()):
            yield index, index - found.start() + 1


def _cyrillic_text(text: str) -> bool:
    for word in _NON_ASCII_RUN.findall(text):
        if not all(ch.lower() in _RUSSIAN for ch in word):
            return False
        if not (word.islower() or word.isupper() or (word[0].isupper() and word[1:].islower())):
            return False  # the other Cyrillic charset's reading: "уЮЈФ" for "Счёт"
    return True


def _common_cjk(ch: str, codec: str) -> bool:
    """A character that is frequent in text written in ``codec``: GB2312's ideographs for
    GB18030, Big5's first level for Big5, JIS level 1 and kana for Shift-JIS, hangul
    syllables for Korean."""
    if codec == "cp949":
        return "\uac00" <= ch <= "\ud7a3"
    if codec == "cp932":
        if "\u3040" <= ch <= "\u30ff":
            return True
        encoded = ch.encode(codec, "ignore")
        return len(encoded) == 2 and 0x88 <= encoded[0] <= 0x98 and unicodedata.category(ch) == "Lo"
    if not "\u4e00" <= ch <= "\u9fff":
        return False
    if codec == "big5":
        encoded = ch.encode("big5", "ignore")
        return len(encoded) == 2 and 0xA4 <= encoded[0] <= 0xC6
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


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
        if "\x1b" in text and _ISO_2022_JP.search(text.encode("ascii")):
            return decode_bytes(text.encode("ascii"))[0]  # 7-bit ISO-2022-JP, no encoded-word
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
    """The bytes carried by one encoded-word, or None when they cannot be decoded.

    A fold inside the encoded text is the mailer's, not the text's: it is dropped. Other
    blanks are dropped from base64, and kept in Q text, where a careless mailer wrote the
    sender's spaces as they were (``=?us-ascii?Q?ABC / 123?=``)."""
    payload = _FOLD.sub("", payload)
    try:
        if encoding in "bB":
            payload = "".join(payload.split())
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
