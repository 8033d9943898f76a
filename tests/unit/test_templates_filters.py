"""Our template filters: dates, sizes and labels written the way each language writes them."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from postdesk.templates.filters import (format_date, format_datetime, format_filesize,
                                        filters_for)


@pytest.mark.parametrize(("value", "locale", "shown"), [
    (date(2025, 3, 1), "fr", "1er mars 2025"),
    (date(2025, 8, 15), "fr", "15 août 2025"),
    (date(2025, 3, 1), "en", "1 March 2025"),
    (datetime(2025, 12, 3, 9, 5), "fr", "3 décembre 2025"),
    ("2025-03-14", "fr", "14 mars 2025"),
    ("pas une date", "fr", "pas une date"),
    (None, "en", ""),
])
def test_format_date(value: object, locale: str, shown: str) -> None:
    assert format_date(value, locale) == shown


@pytest.mark.parametrize(("value", "locale", "shown"), [
    (datetime(2025, 3, 3, 9, 12), "fr", "3 mars 2025 à 09:12"),
    (datetime(2025, 3, 3, 21, 0), "en", "3 March 2025 at 21:00"),
    ("2025-03-03T09:12:00", "en", "3 March 2025 at 09:12"),
    (date(2025, 3, 3), "fr", "3 mars 2025"),
])
def test_format_datetime(value: object, locale: str, shown: str) -> None:
    assert format_datetime(value, locale) == shown


@pytest.mark.parametrize(("value", "locale", "shown"), [
    (812, "fr", "812 octets"),
    (512_000, "fr", "500 Ko"),
    (1_572_864, "fr", "1,5 Mo"),
    (1_572_864, "en", "1.5 MB"),
    (18_874_368, "en", "18 MB"),
    (3 * 1024 ** 3, "en", "3 GB"),
    ("beaucoup", "fr", "beaucoup"),
    (True, "en", "True"),
])
def test_format_filesize(value: object, locale: str, shown: str) -> None:
    assert format_filesize(value, locale) == shown


def test_labels_in_each_language_and_unknown_codes_unchanged() -> None:
    fr, en = filters_for("fr"), filters_for("en")
    assert fr["status_label"]("pending") == "en attente"
    assert en["status_label"]("resolved") == "resolved"
    assert fr["priority_label"]("urgent") == "urgente"
    assert fr["step_label"]("verifying") == "Vérification de la résolution"
    assert en["step_label"]("engineering") == "With our engineering team"
    assert fr["status_label"]("archived") == "archived"
    assert fr["status_label"](None) == ""
