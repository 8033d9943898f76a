"""Attachment names are safe basenames, bounded, never empty."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postdesk.mail.filenames import MAX_FILENAME_LEN, extension_for, safe_filename


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("facture.pdf", "application/pdf", "facture.pdf"),
        ("../../etc/passwd", "text/plain", "passwd"),
        ("..\\..\\Windows\\system32\\evil.dll", "application/octet-stream", "evil.dll"),
        ("/absolute/path/file.txt", "text/plain", "file.txt"),
        (".bashrc", "text/plain", "bashrc"),
        ("...hidden", "text/plain", "hidden"),
        ("in\x07voice\r\n.pdf", "application/pdf", "invoice .pdf"),
        ("photo\u202egpj.exe", "application/octet-stream", "photogpj.exe"),
        ('what?<>:"|*.txt', "text/plain", "what_______.txt"),
        ("trailing. ", "text/plain", "trailing"),
        ("", "image/png", "attachment-3.png"),
        (None, "application/pdf", "attachment-3.pdf"),
        ("../..", "application/x-unknown-thing", "attachment-3.bin"),
        ("....", "application/ms-tnef", "attachment-3.dat"),
        (None, "message/rfc822", "attachment-3.eml"),
        ("Fwd: facture", "message/rfc822", "Fwd_ facture.eml"),
        ("forward.eml", "message/rfc822", "forward.eml"),
        ("winmail.dat", "application/ms-tnef", "winmail.dat"),
        ("Résumé été.docx", "application/octet-stream", "Résumé été.docx"),
    ],
)
def test_safe_filename(name: str | None, content_type: str, expected: str) -> None:
    assert safe_filename(name, 3, content_type) == expected


def test_long_names_keep_their_extension() -> None:
    name = safe_filename("a" * 1000 + ".pdf", 1, "application/pdf")
    assert len(name) == MAX_FILENAME_LEN
    assert name.endswith(".pdf")


def test_extension_for_unknown_type() -> None:
    assert extension_for("application/x-nothing-known") == ".bin"
    assert extension_for("message/delivery-status") == ".txt"


@given(st.one_of(st.none(), st.text(max_size=500)), st.integers(min_value=1, max_value=999))
def test_any_name_is_safe(name: str | None, index: int) -> None:
    cleaned = safe_filename(name, index, "application/octet-stream")
    assert cleaned
    assert len(cleaned) <= MAX_FILENAME_LEN
    assert "/" not in cleaned and "\\" not in cleaned
    assert not cleaned.startswith(".")
    assert cleaned.isprintable()
