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


@pytest.mark.parametrize(("text", "codec"), [
    ("Dzień dobry, przesyłka nie dotarła. Proszę o zwrot pieniędzy, ponieważ czekam już dwa tygodnie.", "iso8859_2"),
    ("Zażółć gęślą jaźń. Świętą ścieżką źle chodzą.", "iso8859_2"),
    ("Zażółć gęślą jaźń. Świętą ścieżką źle chodzą.", "cp1250"),
    ("Faktura za październik", "iso8859_2"),
    ("Reklamacja: uszkodzona przesyłka", "iso8859_2"),
    ("Dziękują", "cp1250"),
    ("Gęś", "iso8859_2"),
    ("Dobrý den, posílám objednávku na příští týden.", "iso8859_2"),
    ("Dobrý den, posílám objednávku na příští týden.", "cp1250"),
])
def test_undeclared_central_european_text_is_not_read_as_western(text: str, codec: str) -> None:
    assert decode_bytes(text.encode(codec))[0] == text


@pytest.mark.parametrize(("text", "codec"), [
    ("打印机", "gbk"), ("发票", "gbk"), ("订单 20261206 退款", "gbk"), ("iPhone手机坏了", "gbk"),
    ("印表機故障", "big5"), ("見積依頼", "shift_jis"), ("Счёт", "koi8_r"), ("Счет на оплату", "cp1251"),
])
def test_short_undeclared_cjk_and_cyrillic_text_is_read_by_its_letters(text: str, codec: str) -> None:
    assert decode_bytes(text.encode(codec))[0] == text


@pytest.mark.parametrize("text", [
    "Réunion", "Müßiggang", "Größe der Lieferung", "AÇÃO URGENTE", "Informações", "São Paulo",
    "cœur et sœur", "Œuvre", "L'HAŸ-LES-ROSES", "¿Qué? ¡Hola! 10 m² n°5 °C «Oui»", "l´été",
    "Smörgåsbord", "Ærø", "prix 5€ TTC, 3£", "Bonjour… à bientôt—Jean", "L’été 2026 — 45 €",
])
def test_short_undeclared_western_text_stays_western(text: str) -> None:
    assert decode_bytes(text.encode("cp1252"))[0] == text


@pytest.mark.parametrize(("raw", "expected"), [
    ("=?us-ascii?Q?ABC / 123?=", "ABC / 123"),
    ("=?utf-8?Q?Caf=C3=A9 cr=C3=A8me?=", "Café crème"),
    ("=?utf-8?Q?Probl=C3=A8me_d\r\n =E2=80=99impression?=", "Problème d’impression"),
    ("=?iso-8859-8-i?B?7uHp+g==?=", "מבית"),
    ("=?gb2312?B?1uzpRrv5?=", "朱镕基"),
    ("=?Shift_JIS?B?h0A=?=", "①"),
])
def test_encoded_words_as_mailers_write_them(raw: str, expected: str) -> None:
    assert decode_words(raw) == expected


def test_raw_iso_2022_jp_header_is_read() -> None:
    stored = "お問い合わせ".encode("iso2022_jp").decode("ascii")
    assert raw_header_text(stored) == "お問い合わせ"
