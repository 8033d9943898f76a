"""Bytes and encoded-words always come out as readable text, with a note when guessed."""

from __future__ import annotations

import pytest

from postdesk.mail.charsets import decode_bytes, decode_words, raw_header_text


@pytest.mark.parametrize(
    ("data", "declared", "text", "noted"),
    [
        ("café".encode(), "utf-8", "café", False),
        ("café".encode(), None, "café", False),
        ("café".encode("latin-1"), None, "café", False),
        ("café".encode("latin-1"), "iso-8859-1", "café", False),
        ("l’été €".encode("cp1252"), "iso-8859-1", "l’été €", False),
        ("café".encode("latin-1"), "us-ascii", "café", True),
        ("café".encode("latin-1"), "utf-8", "café", True),
        ("café".encode(), "no-such-charset", "café", True),
        (b"plain", "base64", "plain", True),
        ("日本語".encode("shift_jis"), "shift_jis", "日本語", False),
        (b"\x81\x8d\x8f", None, "\x81\x8d\x8f", False),
    ],
)
def test_decode_bytes(data: bytes, declared: str | None, text: str, noted: bool) -> None:
    decoded, note = decode_bytes(data, declared)
    assert decoded == text
    assert (note is not None) == noted


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain subject", "plain subject"),
        ("=?utf-8?q?Caf=C3=A9_cr=C3=A8me?=", "Café crème"),
        ("=?UTF-8?B?Q2Fmw6k=?=", "Café"),
        ("=?utf-8?b?Q2Fmw6k?=", "Café"),
        ("Re: =?iso-8859-1?q?R=E9ponse?= : ok", "Re: Réponse : ok"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        ("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
        ("=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b"),
        ("=?UTF-8?B?w6==?= =?UTF-8?B?qQ==?=", "é"),
        ("=?utf-8*fr?q?bonjour?=", "bonjour"),
        ("=?x-unknown?q?caf=E9?=", "café"),
        ("=?utf-8?B?!!!?= x", "=?utf-8?B?!!!?= x"),
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        ("=?utf-8?x?bad-encoding?=", "=?utf-8?x?bad-encoding?="),
        ("=?utf-8?B?not*b64?= =?utf-8?q?ok?=", "=?utf-8?B?not*b64?= ok"),
        ("=?koi8-r?b?8NLJ18XU?=", "Привет"),
        ("=?utf-8?q?caf\r\n =C3=A9?= ok", "café ok"),
        ("=?utf-8?b?Y2Fm\r\n\tw6k=?=", "café"),
        ("=?utf-8?b?Y2Fm w6k=?=", "café"),
        ("=?utf-8?q?a?= x =?utf-8?q?b?= y", "a x b y"),
        ("=?utf-8?q?open and never closed", "=?utf-8?q?open and never closed"),
    ],
)
def test_decode_words(raw: str, expected: str) -> None:
    assert decode_words(raw) == expected


def test_raw_header_text_decodes_undeclared_8bit() -> None:
    as_stored = "Probl\udce8me".encode("utf-8", "surrogateescape").decode("ascii", "surrogateescape")
    assert raw_header_text(as_stored) == "Problème"
    assert raw_header_text("Probl\udcc3\udca8me") == "Problème"
    assert raw_header_text("ascii") == "ascii"


@pytest.mark.parametrize(("text", "codec"), [
    ("您好，我的打印机坏了，请帮忙", "gb18030"),
    ("您好，我的印表機壞了，請幫忙", "big5"),
    ("こんにちは、プリンターが壊れました。助けてください", "shift_jis"),
    ("Здравствуйте, принтер сломался, помогите", "cp1251"),
    ("안녕하세요 프린터가 고장났어요", "euc_kr"),
    ("Bonjour, l'imprimante est cassée, à l'aide", "latin-1"),
    ("Grüße aus München, der Drucker ist kaputt", "latin-1"),
    ("こんにちは、プリンター", "iso2022_jp"),
])
def test_undeclared_8bit_text_is_detected(text: str, codec: str) -> None:
    assert decode_bytes(text.encode(codec))[0] == text
    assert decode_bytes(text.encode(codec), "us-ascii")[0] == text  # a charset that lies


def test_undeclared_chinese_subject_and_body_read_whole() -> None:
    from postdesk.mail.parse import parse
    raw = ("From: li@client.test\r\nTo: support@desk.test\r\nSubject: 打印机坏了\r\n"
           "Content-Type: text/plain\r\n\r\n您好，我的打印机坏了，请帮忙。\r\n").encode("gb18030")
    mail = parse(raw)
    assert mail.text.strip() == "您好，我的打印机坏了，请帮忙。"


def test_utf7_declared_is_read() -> None:
    assert decode_bytes("Café à Noël".encode("utf-7"), "utf-7")[0] == "Café à Noël"
