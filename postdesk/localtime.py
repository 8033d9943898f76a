"""The desk's time zone: times stored in UTC, shown in ``[desk] timezone`` with its label.

Every time postdesk keeps is UTC; a person reads it in the desk's zone (an IANA name such as
``Europe/Paris``), labelled with the zone's abbreviation or offset (``CET``, ``+04``) so no one
has to guess. A naive time is UTC. Pure functions over the standard library's ``zoneinfo``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

STAMP = "%Y-%m-%d %H:%M %Z"


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    """The zone of an IANA name; ``ValueError`` names a wrong one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone name") from None


def local(value: datetime, name: str) -> datetime:
    """``value`` (naive means UTC) in the zone ``name``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone(name))


def local_date(value: datetime, name: str) -> date:
    """The day ``value`` falls on in the zone ``name``."""
    return local(value, name).date()


def stamp(value: datetime | None, name: str, missing: str = "-") -> str:
    """``2026-12-08 06:00 CET``: minutes, in the zone ``name``, labelled."""
    return local(value, name).strftime(STAMP) if value else missing
