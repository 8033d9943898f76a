"""The desk's time zone: conversion, days and labels (``postdesk.localtime``, ``|datetime``)."""

from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from postdesk.localtime import local, local_date, stamp, zone
from postdesk.templates.filters import format_datetime
from postdesk.templates.render import in_zone

WINTER = datetime(2026, 12, 8, 23, 30, tzinfo=UTC)
SUMMER = datetime(2026, 7, 1, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize("moment, name, expected", [
    (WINTER, "Europe/Paris", "2026-12-09 00:30 CET"),
    (SUMMER, "Europe/Paris", "2026-07-01 07:00 CEST"),
    (WINTER, "UTC", "2026-12-08 23:30 UTC"),
    (WINTER, "Asia/Dubai", "2026-12-09 03:30 +04"),
    (WINTER.replace(tzinfo=None), "Europe/Paris", "2026-12-09 00:30 CET"),  # naive is UTC
])
def test_stamp_is_local_and_labelled(moment, name, expected):
    assert stamp(moment, name) == expected


def test_days_are_days_of_the_zone():
    assert local_date(WINTER, "Europe/Paris").isoformat() == "2026-12-09"
    assert local_date(WINTER, "America/Montreal").isoformat() == "2026-12-08"
    assert stamp(None, "Europe/Paris") == "-"


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "", "europe/paris"])
def test_unknown_zone_is_a_value_error(name):
    with pytest.raises(ValueError, match="IANA"):
        zone(name)


def test_datetime_filter_labels_a_time_that_knows_its_zone():
    paris = local(WINTER, "Europe/Paris")
    assert format_datetime(paris, "fr") == "9 décembre 2026 à 00:30 CET"
    assert format_datetime(paris, "en") == "9 December 2026 at 00:30 CET"
    assert format_datetime(datetime(2025, 3, 3, 9, 12), "fr") == "3 mars 2025 à 09:12"


def test_values_move_to_the_zone_inside_dicts_and_lists():
    values = {"ticket": {"created_at": WINTER, "tags": [WINTER, "x"]}, "n": 1}
    moved = in_zone(values, "Europe/Paris")
    assert moved["ticket"]["created_at"].utcoffset().total_seconds() == 3600
    assert moved["ticket"]["tags"][1] == "x" and moved["n"] == 1
    assert moved["ticket"]["created_at"] == WINTER  # the same instant


def test_any_mapping_is_walked_and_plain_values_are_kept():
    values = MappingProxyType({"at": WINTER, "none": None, "yes": True, "ratio": 0.5, "pair": (WINTER, 2)})
    moved = in_zone(values, "Europe/Paris")
    assert moved["at"].utcoffset().total_seconds() == 3600 and moved["pair"][0] == WINTER
    assert (moved["none"], moved["yes"], moved["ratio"], moved["pair"][1]) == (None, True, 0.5, 2)
