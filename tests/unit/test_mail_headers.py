"""clean_header_value: one line, no control characters, collapsed whitespace, bounded length."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postdesk.mail.headers import clean_header_value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello", "Hello"),
        ("  padded  ", "padded"),
        ("Re: x\r\nBcc: victim@example.com", "Re: x Bcc: victim@example.com"),
        ("bare\nlf and bare\rcr", "bare lf and bare cr"),
        ("tab\tand   spaces", "tab and spaces"),
        ("nul\x00byte", "nulbyte"),
        ("bell\x07 esc\x1b[31m", "bell esc[31m"),
        ("line\u2028separator\u2029paragraph", "line separator paragraph"),
        ("next\x85line", "next line"),
        ("c1\x9bcontrol", "c1control"),
        ("zero\u200bwidth", "zerowidth"),
        ("rtl\u202eexe.pdf", "rtlexe.pdf"),
        ("family \U0001F468\u200d\U0001F469", "family \U0001F468\u200d\U0001F469"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("Réponse à « votre » demande", "Réponse à « votre » demande"),
        ("", ""),
        ("\r\n\t ", ""),
    ],
)
def test_clean_header_value(raw: str, expected: str) -> None:
    assert clean_header_value(raw) == expected


def test_cut_to_max_len_without_trailing_blank() -> None:
    assert clean_header_value("a" * 2000) == "a" * 998
    assert clean_header_value("abc def", max_len=4) == "abc"
    assert clean_header_value("abc", max_len=0) == ""


def test_long_value_is_linear() -> None:
    assert len(clean_header_value("x\r\n" * 300_000, max_len=10**7)) == 600_000 - 1


@given(st.text(), st.integers(min_value=0, max_value=2000))
def test_output_has_no_control_characters(raw: str, max_len: int) -> None:
    cleaned = clean_header_value(raw, max_len=max_len)
    assert len(cleaned) <= max_len
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    for ch in cleaned:
        assert unicodedata.category(ch) not in ("Cc", "Zl", "Zp", "Cs")
        assert ch == " " or not ch.isspace()
